#!/usr/bin/env python3
"""Print criterion results of one benchmark group as ratios to its baseline.

Usage: python3 benches/ratios.py GROUP [BASELINE]

Reads target/criterion/<group>/.../new/estimates.json (the last run;
criterion writes a group named a/b under a_b).
Where a group's functions take parameters, each function's parameters are
divided by its parameter named BASELINE (default: 'untracked'); where they
take none, every function is divided by the function named BASELINE.
"""
import json
import pathlib
import sys


def median(path):
    return json.loads(path.read_text())["median"]["point_estimate"]


def line(title, results, baseline):
    base = results.get(baseline)
    cells = []
    for name, ns in sorted(results.items(), key=lambda kv: kv[1]):
        ratio = f" ({ns / base:.2f}x)" if base else ""
        cells.append(f"{name} {ns / 1e6:.3f} ms{ratio}")
    print(f"{title}: " + ", ".join(cells))


def main():
    group = sys.argv[1]
    baseline = sys.argv[2] if len(sys.argv) > 2 else "untracked"
    root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion" / group.replace("/", "_")
    if not root.is_dir():
        sys.exit(f"no results for {group}: run `cargo bench -p bench_suite` first")
    functions = sorted(p for p in root.iterdir() if p.is_dir() and p.name != "report")
    plain = {f.name: median(f / "new" / "estimates.json") for f in functions if (f / "new").is_dir()}
    if plain:
        line(group, plain, baseline)
    for function in functions:
        results = {p.parent.parent.name: median(p) for p in function.glob("*/new/estimates.json")}
        if results:
            line(function.name, results, baseline)


if __name__ == "__main__":
    main()
