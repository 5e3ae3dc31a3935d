#!/usr/bin/env python3
"""Print criterion results of one benchmark group as ratios to its baseline.

Usage: python3 benches/ratios.py GROUP [BASELINE]

Reads target/criterion/<group>/<function>/<parameter>/new/estimates.json
(the last run) and, for each function, divides every parameter's median by
the baseline parameter's median (default: the one named 'untracked', or a
function named '*baseline*' for groups whose baseline is a function).
"""
import json
import pathlib
import sys


def median(path):
    return json.loads(path.read_text())["median"]["point_estimate"]


def main():
    group = sys.argv[1]
    baseline = sys.argv[2] if len(sys.argv) > 2 else "untracked"
    root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion" / group
    if not root.is_dir():
        sys.exit(f"no results for {group}: run `cargo bench -p benches` first")
    for function in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "report"):
        results = {p.parent.parent.name: median(p) for p in function.glob("*/new/estimates.json")}
        if not results:
            continue
        base = results.get(baseline)
        cells = []
        for name, ns in sorted(results.items(), key=lambda kv: kv[1]):
            ratio = f" ({ns / base:.2f}x)" if base else ""
            cells.append(f"{name} {ns / 1e6:.2f} ms{ratio}")
        print(f"{function.name}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
