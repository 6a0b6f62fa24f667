"""Train peer recommenders on a split exported by Vitrina and write their top-20 lists.

Peers: implicit's ALS, BPR and item-kNN (cosine), and an EASE reference in numpy. Lists are
written as `user item1 ... item20` (training items excluded) and scored by Vitrina's own
metric code (`--example score_lists`), so every number comes from the same code.

    peers.py --train DIR/train.txt --test DIR/test.txt --out DIR [--threads 2] [--tune --k 10]

With --tune each peer's main parameters are picked on DIR/val_train.txt / DIR/val_test.txt
(the validation split carved from the training data that Vitrina's --tune uses), by NDCG@k.

Also `peers.py --als-speed FILE.bin --users N --items N` trains implicit ALS on a binary
(int32 user, int32 item) pair file and prints the seconds as JSON.
"""

import argparse
import json
import os
import time

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


def load_pairs(path):
    users, items, rows, cols = {}, {}, [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            u = users.setdefault(parts[0], len(users))
            i = items.setdefault(parts[1], len(items))
            rows.append(u)
            cols.append(i)
    return users, items, np.array(rows, dtype=np.int32), np.array(cols, dtype=np.int32)


def csr(rows, cols, n_users, n_items):
    data = np.ones(len(rows), dtype=np.float32)
    m = sp.csr_matrix((data, (rows, cols)), shape=(n_users, n_items), dtype=np.float32)
    m.sum_duplicates()
    m.data[:] = 1.0  # duplicates count once
    return m.tocsr()


def ease_lists(x, uidx, lam, n=20):
    g = (x.T @ x).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))
    b[np.diag_indices_from(b)] = 0.0
    out = []
    for start in range(0, len(uidx), 1024):
        chunk = uidx[start:start + 1024]
        xu = x[chunk]
        scores = np.asarray(xu @ b)
        scores[xu.nonzero()] = -np.inf
        top = np.argpartition(-scores, n, axis=1)[:, :n]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out.extend(np.take_along_axis(top, order, axis=1))
    return out


GRIDS = {
    "als": [{"regularization": r, "alpha": a} for r in (0.01, 0.1, 1.0, 10.0) for a in (1.0, 5.0, 20.0)],
    "bpr": [{"learning_rate": lr, "regularization": reg} for lr in (0.01, 0.05) for reg in (0.01, 0.001)],
    "item-knn": [{"K": k} for k in (50, 100, 200, 400)],
    "ease": [{"lambda": lam} for lam in (50.0, 100.0, 200.0, 500.0, 1000.0)],
}


def run_peer(name, params, a, train_path, test_path):
    """Trains one peer on a split; returns ({user: [items]}, timings)."""
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import CosineRecommender

    users, items, rows, cols = load_pairs(train_path)
    user_names, item_names = list(users), list(items)
    x = csr(rows, cols, len(users), len(items))
    test_users = set()
    with open(test_path) as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] in users:
                test_users.add(users[parts[0]])
    uidx = np.array(sorted(test_users), dtype=np.int32)
    t = time.perf_counter()
    # numpy's BLAS gets the threads for EASE; implicit runs its own threads over 1-thread BLAS
    with threadpool_limits(a.threads if name == "ease" else 1, "blas"):
        if name == "ease":
            ids = ease_lists(x, uidx, params.get("lambda", a.ease_lambda))
            timings = {"trainAndScoreSeconds": time.perf_counter() - t}
        else:
            if name == "als":
                model = AlternatingLeastSquares(factors=a.factors, iterations=a.iterations,
                                                num_threads=a.threads, random_state=a.seed, **params)
            elif name == "bpr":
                model = BayesianPersonalizedRanking(factors=a.factors, num_threads=a.threads,
                                                    random_state=a.seed, **params)
            elif name == "item-knn":
                model = CosineRecommender(num_threads=a.threads, **({"K": a.knn_k} | params))
            else:
                raise SystemExit(f"unknown peer {name}")
            model.fit(x, show_progress=False)
            trained = time.perf_counter()
            ids, _ = model.recommend(uidx, x[uidx].tocsr(), N=20, filter_already_liked_items=True)
            timings = {"trainSeconds": trained - t, "scoreSeconds": time.perf_counter() - trained}
    lists = {user_names[u]: [item_names[i] for i in row if i >= 0] for u, row in zip(uidx, ids)}
    return lists, timings


def ndcg(lists, test_path, k):
    """Mean NDCG@k over test users (binary relevance, ideal DCG over min(k, |test|) hits):
    the same definition as vitrina_algo::eval::metrics, used here only to pick peer params."""
    test = {}
    with open(test_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                test.setdefault(parts[0], []).append(parts[1])
    total = 0.0
    for user, held in test.items():
        ranked = lists.get(user, [])[:20]
        dcg = sum(1.0 / np.log2(ranked.index(i) + 2) for i in held if i in ranked and ranked.index(i) < k)
        ideal = sum(1.0 / np.log2(r + 2) for r in range(min(k, len(held))))
        total += dcg / ideal if ideal > 0 else 0.0
    return total / max(len(test), 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train")
    ap.add_argument("--test")
    ap.add_argument("--out")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--ease-lambda", type=float, default=500.0)
    ap.add_argument("--knn-k", type=int, default=100)
    ap.add_argument("--models", default="als,bpr,item-knn,ease")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--tune", action="store_true",
                    help="pick each peer's parameters on val_train.txt/val_test.txt beside --train")
    ap.add_argument("--k", type=int, default=10, help="NDCG cut-off used for --tune")
    ap.add_argument("--als-speed")
    ap.add_argument("--users", type=int)
    ap.add_argument("--items", type=int)
    a = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    from implicit.cpu.als import AlternatingLeastSquares

    if a.als_speed:
        pairs = np.fromfile(a.als_speed, dtype=np.int32).reshape(-1, 2)
        x = csr(pairs[:, 0], pairs[:, 1], a.users, a.items)
        del pairs
        model = AlternatingLeastSquares(factors=a.factors, iterations=a.iterations, num_threads=a.threads,
                                        random_state=a.seed)
        with threadpool_limits(1, "blas"):  # what implicit recommends for its own threads
            t = time.perf_counter()
            model.fit(x, show_progress=False)
            secs = time.perf_counter() - t
        print(json.dumps({"peer": "implicit-als", "seconds": secs, "nnz": int(x.nnz),
                          "factors": a.factors, "iterations": a.iterations, "threads": a.threads}))
        return

    os.makedirs(a.out, exist_ok=True)
    timings, chosen = {}, {}
    base = os.path.dirname(a.train)
    for name in a.models.split(","):
        params = {}
        if a.tune:
            best = -1.0
            for cand in GRIDS[name]:
                lists, _ = run_peer(name, cand, a, os.path.join(base, "val_train.txt"),
                                    os.path.join(base, "val_test.txt"))
                score = ndcg(lists, os.path.join(base, "val_test.txt"), a.k)
                if score > best:
                    best, params = score, cand
        lists, timings[name] = run_peer(name, params, a, a.train, a.test)
        chosen[name] = params
        with open(os.path.join(a.out, f"{name}.txt"), "w") as f:
            for user, items in lists.items():
                f.write(user + " " + " ".join(items) + "\n")
    with open(os.path.join(a.out, "timings.json"), "w") as f:
        json.dump(timings, f, indent=1)
    with open(os.path.join(a.out, "peer-params.json"), "w") as f:
        json.dump(chosen, f, indent=1)


if __name__ == "__main__":
    main()
