#!/usr/bin/env python3
"""Crash trials: SIGKILL the server in the middle of mixed single and batch tracking, restart
it, and check that every acknowledged event is stored exactly once.

Usage (from the repository root, after `cargo build --release --bin vitrina`):
    python3 bench/crash.py [--trials 100] [--bin target/release/vitrina]

Each trial: start `vitrina serve` on the same data directory, send single events and batches
of 20 from 4 threads (each thread its own visitor per trial, unique eventIds) for a random
0.3-1.5 s, kill -9 the server while requests are in flight, restart it, time how long until
/health answers, then read every trial visitor's history and compare it with what was
acknowledged. Loopback only; bounded by --trials.
"""
import argparse, json, os, random, shutil, signal, subprocess, tempfile, threading, time, urllib.request

def start(bin_path, data):
    p = subprocess.Popen([bin_path, "serve", "--addr", "127.0.0.1:0", "--data-dir", data],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "error"})
    started = time.monotonic()
    for line in p.stdout:
        line = line.decode()
        if line.startswith("vitrina listening on "):
            base = line.split(" on ", 1)[1].strip()
            break
    else:
        raise SystemExit("the server exited before listening")
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as r:
                if r.status == 200:
                    return p, base, time.monotonic() - started
        except Exception:
            pass
        if time.monotonic() - started > 300:
            raise SystemExit("the server did not become healthy within 300 s")
        time.sleep(0.02)

def post(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status

def worker(base, user, acked, stop, rng):
    n = 0
    while not stop.is_set():
        try:
            if rng.random() < 0.3:
                ids = [f"{user}-e{n + i}" for i in range(20)]
                events = [{"eventId": e, "userId": user, "activityType": "view", "productId": f"product-{1 + (n + i) % 10}"}
                          for i, e in enumerate(ids)]
                n += 20
                if post(base, "/api/v1/activity/track/batch", {"events": events}) == 200:
                    acked.extend(ids)
            else:
                e = f"{user}-e{n}"
                n += 1
                if post(base, "/api/v1/activity/track", {"eventId": e, "userId": user, "activityType": "view",
                                                        "productId": f"product-{1 + n % 10}"}) in (200, 201):
                    acked.append(e)
        except Exception:
            return  # the server died: what was acknowledged so far is what must survive
        if n >= 900:
            return

def history(base, user):
    with urllib.request.urlopen(f"{base}/api/v1/recommendations/activity/{user}?limit=1000", timeout=30) as r:
        return [a["eventId"] for a in json.load(r)["activities"]]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--bin", default="target/release/vitrina")
    args = ap.parse_args()
    rng = random.Random(7)
    data = tempfile.mkdtemp()
    lost = dup = acked_total = 0
    restarts = []
    pending = []  # (user, acked ids) of the last trial, checked after the restart
    try:
        proc, base, _ = start(args.bin, data)
        for trial in range(args.trials):
            stop = threading.Event()
            runs = []
            for w in range(4):
                user, acked = f"crash-t{trial}-w{w}", []
                t = threading.Thread(target=worker, args=(base, user, acked, stop, random.Random(rng.random())))
                t.start()
                runs.append((user, acked, t))
            time.sleep(rng.uniform(0.3, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            stop.set()
            for _, _, t in runs:
                t.join()
            proc, base, took = start(args.bin, data)
            restarts.append(took)
            for user, acked, _ in runs:
                stored = history(base, user)
                missing = set(acked) - set(stored)
                lost += len(missing)
                dup += len(stored) - len(set(stored))
                acked_total += len(acked)
            print(f"trial {trial + 1}: {sum(len(a) for _, a, _ in runs)} acknowledged, restart {took:.2f} s, "
                  f"lost so far {lost}, duplicated so far {dup}", flush=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    finally:
        shutil.rmtree(data, ignore_errors=True)
    restarts.sort()
    print(f"crash trials: {args.trials}, acknowledged events: {acked_total}, lost: {lost}, duplicated: {dup}")
    print(f"restart to healthy, s: median {restarts[len(restarts) // 2]:.2f}, max {restarts[-1]:.2f}")
    raise SystemExit(1 if lost or dup else 0)

if __name__ == "__main__":
    main()
