"""Prints Vitrina's models and the peers side by side from bench/out (see peers.sh)."""

import json
import os
import sys

PRIMARY = {"leave-last-out": "ndcg@10", "random-80-20": "ndcg@20"}


def main(out):
    print("| dataset | protocol | model | ndcg@10 | hr@10 | hr@20 | recall@20 | ndcg@20 | train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for name in sorted(os.listdir(out)):
        for protocol in ("leave-last-out", "random-80-20"):
            d = os.path.join(out, name, protocol)
            if not os.path.exists(os.path.join(d, "vitrina.json")):
                continue
            key = PRIMARY[protocol]
            vit = json.load(open(os.path.join(d, "vitrina.json")))
            peers = [json.loads(l) for l in open(os.path.join(d, "peers.jsonl")) if l.strip()]
            timings = json.load(open(os.path.join(d, "timings.json")))
            pp = os.path.join(d, "peer-params.json")
            peer_params = json.load(open(pp)) if os.path.exists(pp) else {}
            rows = []
            for m in vit["models"]:
                rows.append(("vitrina " + m["name"], m["metrics"], m["stdErrors"], m["trainSeconds"]))
            names = {"implicit-als": "als", "implicit-bpr": "bpr", "implicit-item-knn": "item-knn", "numpy-ease": "ease"}
            for p in peers:
                t = timings.get(names.get(p["name"], ""), {})
                rows.append((p["name"], p["metrics"], p["stdErrors"],
                             t.get("trainSeconds", t.get("trainAndScoreSeconds", float("nan")))))
            for label, m, e, secs in rows:
                cells = " | ".join(f"{m[k]:.4f}±{e[k]:.4f}" for k in ("ndcg@10", "hr@10", "hr@20", "recall@20", "ndcg@20"))
                print(f"| {name} | {protocol} | {label} | {cells} | {secs:.2f} |")
            best_v = max(vit["models"], key=lambda m: m["metrics"][key])
            best_p = max(peers, key=lambda p: p["metrics"][key])
            ratio = best_v["metrics"][key] / max(best_p["metrics"][key], 1e-12)
            if peer_params:
                verdicts.append(f"- {name} {protocol}: peer params chosen on validation: {json.dumps(peer_params)}")
            verdicts.append(f"- {name} {protocol}: best Vitrina `{best_v['name']}` {key} "
                            f"{best_v['metrics'][key]:.4f} vs best peer `{best_p['name']}` "
                            f"{best_p['metrics'][key]:.4f} → ratio {ratio:.3f} "
                            f"({'meets' if ratio >= 1.05 else 'MISSES'} the +5 % goal)")
    print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/out")
