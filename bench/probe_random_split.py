"""Probes for ML-100k random-80-20: do signals beyond session-weighted EASE add anything?

Reproduces the "tried, not enough" figures in docs/BENCHMARKS.md ("What wins"). Everything
is scored on the *test* split with the exact split `eval` uses, so every figure is an upper
bound (nothing here is tuned on validation); NDCG@20 as in `vitrina_algo::eval::metrics`.

    cargo build --release -p vitrina-algo --examples
    target/release/examples/export_split --data ../shared/data/ml-100k/u.data \
        --format movielens --protocol random-80-20 --seed 42 --out /tmp/split
    bench/.venv/bin/python bench/probe_random_split.py --split /tmp/split \
        --data ../shared/data/ml-100k/u.data

Needs numpy (bench/peers.sh creates bench/.venv with it). About a minute on 2 cores.
"""

import argparse

import numpy as np


def load_pairs(path):
    out = {}
    for line in open(path):
        u, i = line.split()[:2]
        out.setdefault(u, []).append(i)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", required=True)
    ap.add_argument("--data", required=True)
    a = ap.parse_args()
    raw = {}
    for line in open(a.data):
        u, i, r, t = line.split()
        raw[(u, i)] = (int(r), int(t))
    items = sorted({i for (_, i) in raw}, key=int)
    iid = {i: k for k, i in enumerate(items)}
    n = len(items)
    tr, te = load_pairs(f"{a.split}/train.txt"), load_pairs(f"{a.split}/test.txt")
    users = sorted((u for u in tr if u in te), key=int)  # users with held-out items
    idx = {u: np.array([iid[i] for i in tr[u]]) for u in users}
    ts = {u: np.array([raw[(u, i)][1] for i in tr[u]], float) for u in users}
    rating = {u: np.array([raw[(u, i)][0] for i in tr[u]]) for u in users}
    X = np.zeros((len(users), n))
    for k, u in enumerate(users):
        X[k, idx[u]] = 1
    disc = 1 / np.log2(np.arange(2, 22))

    def ndcg(scores):
        vals = []
        for k, u in enumerate(users):
            s = scores[k].copy()
            s[idx[u]] = -np.inf
            top = np.argpartition(-s, 20)[:20]
            top = top[np.argsort(-s[top])]
            held = {iid[i] for i in te[u]}
            hits = np.array([t in held for t in top])
            vals.append((hits * disc).sum() / disc[: min(20, len(held))].sum())
        return float(np.mean(vals))

    def session_gram(channel, channels, seconds=180.0, floor=0.3):
        """Session-weighted Gram over `channels` copies of the catalogue (Vitrina's kernel)."""
        g = np.zeros((channels * n, channels * n))
        for u in users:
            f = channel(rating[u]) * n + idx[u]
            k = floor + (1 - floor) * np.exp(-np.abs(ts[u][:, None] - ts[u][None, :]) / seconds)
            np.fill_diagonal(k, 1.0)
            g[np.ix_(f, f)] += k
        return g

    def ease(g_in, g_out, lam, preg=0.2, channels=1):
        """argmin ||X - Z B||² + λ||B||² with B[(c, j), j] = 0 for every channel c."""
        a = g_in.copy()
        a[np.diag_indices_from(a)] += lam + preg * np.diag(g_in)
        p = np.linalg.inv(a)
        b0 = p @ g_out
        b = b0.copy()
        for j in range(n):
            s = [c * n + j for c in range(channels)]
            b[:, j] -= p[:, s] @ np.linalg.solve(p[np.ix_(s, s)], b0[s, j])
        return b

    zs = lambda m: (m - m.mean(1, keepdims=True)) / (m.std(1, keepdims=True) + 1e-9)
    rows = []
    one = lambda r: np.zeros_like(r)
    g = session_gram(one, 1)
    b = ease(g, g, 150.0)
    base_scores = X @ b
    base = ndcg(base_scores)
    rows.append(("session EASE (λ 150, 180 s, floor 0.3): the model to beat", base))

    # 1. Rating levels as input channels (a shop's view / cart / purchase).
    for name, chan in [("≥ 4 vs ≤ 3", lambda r: (r >= 4).astype(int)), ("≤ 2 vs ≥ 3", lambda r: (r <= 2).astype(int))]:
        g2 = session_gram(chan, 2)
        stack = np.vstack([np.eye(n), np.eye(n)])
        best = max(
            ndcg(score_channels(users, idx, rating, chan, n, ease(g2, g2 @ stack, lam, channels=2)))
            for lam in (150.0, 400.0)
        )
        rows.append((f"two-channel EASE, ratings {name} (best of λ 150, 400)", best))

    # 2. Rating value as input weight, same target.
    g5 = session_gram(lambda r: r - 1, 5)
    blk = [[g5[i * n:(i + 1) * n, j * n:(j + 1) * n] for j in range(5)] for i in range(5)]
    best = 0.0
    for w in ([0.6, 0.7, 0.8, 0.9, 1.0], [0.8, 0.9, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.1, 1.2]):
        g_in = sum(w[i] * w[j] * blk[i][j] for i in range(5) for j in range(5))
        g_out = sum(w[i] * blk[i][j] for i in range(5) for j in range(5))
        bw = ease(g_in, g_out, 100.0)
        s = np.zeros_like(X)
        for k, u in enumerate(users):
            s[k] = np.array(w)[rating[u] - 1] @ bw[idx[u]]
        best = max(best, ndcg(s))
    rows.append(("EASE with rating-weighted input (best of 3 weightings)", best))

    # 3. History items weighted by how busy their moment was (dense sessions hold more test items).
    best = 0.0
    for window in (180, 3600, 86400):
        for power in (0.25, 0.5, -0.25):
            s = np.zeros_like(X)
            for k, u in enumerate(users):
                dens = (np.abs(ts[u][:, None] - ts[u][None, :]) <= window).sum(1).astype(float) ** power
                s[k] = dens @ b[idx[u]]
            best = max(best, ndcg(s))
    rows.append(("history weighted by session density (best of 9)", best))

    # 4. A user-side kernel: the infinitely wide one-hidden-layer autoencoder (∞-AE, NTK).
    dot = X @ X.T
    norm = np.sqrt(np.diag(dot))
    cos = np.clip(dot / np.outer(norm, norm), -1, 1)
    theta = np.arccos(cos)
    ntk = np.outer(norm, norm) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi) + dot * (np.pi - theta) / (2 * np.pi)
    scale = np.trace(ntk) / len(users)
    alone, blended = 0.0, 0.0
    for lam in (0.3, 1.0, 3.0):
        s = ntk @ np.linalg.solve(ntk + lam * scale * np.eye(len(users)), X)
        alone = max(alone, ndcg(s))
        blended = max(blended, max(ndcg(zs(base_scores) + w * zs(s)) for w in (0.25, 0.5, 1.0)))
    rows.append(("∞-AE user kernel alone (best λ)", alone))
    rows.append(("session EASE + ∞-AE, z-scored blend (best of 9)", blended))
    kernel = ntk @ np.linalg.solve(ntk + scale * np.eye(len(users)), X)

    # 5. All at once: + ∞-AE, + popularity around the user's active days (±3 days), and no
    # item first rated (in training) more than a day after the user's last rating.
    day = lambda t: int(t // 86400)
    first_day = min(day(t) for _, t in raw.values())
    n_days = max(day(t) for _, t in raw.values()) - first_day + 1
    per_day = np.zeros((n_days + 1, n))
    first_seen = np.full(n, np.inf)
    for u in users:
        for j, t in zip(idx[u], ts[u]):
            per_day[day(t) - first_day + 1, j] += 1
            first_seen[j] = min(first_seen[j], t)
    cum = np.cumsum(per_day, 0)
    around = np.zeros_like(X)
    for k, u in enumerate(users):
        for d in np.unique([day(t) - first_day for t in ts[u]]):
            around[k] += cum[min(n_days, d + 4)] - cum[max(0, d - 3)]
    around = np.log1p(around)
    late = first_seen[None, :] > np.array([ts[u].max() + 86400 for u in users])[:, None]
    best = 0.0
    for wn in (0.25, 0.5, 1.0):
        for wp in (0.05, 0.1, 0.2):
            s = zs(base_scores) + wn * zs(kernel) + wp * zs(around) - 1e3 * late
            best = max(best, ndcg(s))
    rows.append(("+ ∞-AE + popularity around the user's days + availability (best of 9)", best))

    print(f"{'probe':72} NDCG@20  vs base")
    for name, v in rows:
        print(f"{name:72} {v:.4f}  {v / base:.3f}")


def score_channels(users, idx, rating, chan, n, b):
    s = np.zeros((len(users), n))
    for k, u in enumerate(users):
        s[k] = b[chan(rating[u]) * n + idx[u]].sum(0)
    return s


if __name__ == "__main__":
    main()
