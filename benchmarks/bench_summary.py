"""Combine the results.json of the three NAS-Bench-201 benches into one markdown table.

    python benchmarks/bench_summary.py benchmarks/results/bench_nb201_cifar10 \
        benchmarks/results/bench_nb201_cifar100 benchmarks/results/bench_nb201_imagenet16_120
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+", help="bench output directories")
    ap.add_argument("--at", type=int, nargs="+", default=[100, 300], help="query counts")
    args = ap.parse_args()
    results = [json.loads((Path(d) / "results.json").read_text()) for d in args.dirs]
    labels: list[str] = []
    for r in results:
        labels += [k for k in r["strategies"] if k not in labels]
    head = ["strategy"]
    for r in results:
        name = r["name"].replace("bench_nb201_", "")
        head += [f"{name} @{n}" for n in args.at]
    print("| " + " | ".join(head) + " |")
    print("|---" * len(head) + "|")
    print("| table optimum | " + " | ".join(
        f"{r['optimum']:.2f}" for r in results for _ in args.at) + " |")
    for label in labels:
        cells = []
        for r in results:
            s = r["strategies"].get(label)
            for n in args.at:
                if s is None or n > len(s["mean"]):
                    cells.append("-")
                else:
                    cells.append(f"{s['mean'][n - 1]:.2f} +- {s['sem'][n - 1]:.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    walls = ", ".join(f"{r['name']}: {r.get('wall_seconds')} s" for r in results)
    print(f"\nseeds: {len(results[0]['seeds'])}; bench wall time {walls}")


if __name__ == "__main__":
    main()
