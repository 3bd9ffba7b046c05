"""Summarise a bench/gpu_check.sh run: tests passed/failed per test file, failures, benchmark geomeans,
the training benchmark's table.

    python bench/gpu_summary.py OUT_DIR      # writes OUT_DIR/summary.md and prints it
"""

from __future__ import annotations

import collections
import json
import os
import sys
import xml.etree.ElementTree as ET


def test_table(junit: str) -> list[str]:
    if not os.path.exists(junit):
        return ["no junit.xml: the test run did not finish (see tests.log)"]
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        group = case.get("classname", "?").split(".")[0]
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                failures.append(f"- {case.get('classname')}::{case.get('name')}: "
                                f"{(child.get('message') or '').splitlines()[0][:300] if child.get('message') else ''}")
            elif child.tag == "skipped":
                outcome = "skipped"
        counts[group][outcome] += 1
    lines = ["| test file | passed | failed | skipped |", "|---|---:|---:|---:|"]
    for group in sorted(counts):
        c = counts[group]
        lines.append(f"| {group} | {c['passed']} | {c['failed']} | {c['skipped']} |")
    total = sum((c for c in counts.values()), collections.Counter())
    lines.append(f"| **total** | {total['passed']} | {total['failed']} | {total['skipped']} |")
    return lines + ([""] + ["failures:"] + failures[:40] if failures else [])


def bench_table(jsonl: str) -> list[str]:
    if not os.path.exists(jsonl):
        return ["no benchmark results"]
    rows = [json.loads(ln) for ln in open(jsonl) if ln.strip()]
    ok = [r for r in rows if "error" not in r]
    lines = ["| group | rows | errors | geomean torch/ours | worst (ratio) |", "|---|---:|---:|---:|---|"]
    for g in sorted({r["group"] for r in rows}):
        rs = [r for r in ok if r["group"] == g]
        errs = sum(1 for r in rows if r["group"] == g and "error" in r)
        geo = 1.0
        if rs:
            import math

            geo = math.exp(sum(math.log(r["ratio"]) for r in rs) / len(rs))
        worst = min(rs, key=lambda r: r["ratio"]) if rs else None
        lines.append(f"| {g} | {len(rs)} | {errs} | {geo:.2f} | "
                     + (f"{worst['name']} ({worst['ratio']:.2f})" if worst else "") + " |")
    worst3 = sorted(ok, key=lambda r: r["ratio"])[:3]
    lines += ["", "three worst ratios: " + "; ".join(f"{r['group']} {r['name']}: {r['ratio']:.2f}" for r in worst3)]
    return lines


def main() -> None:
    out = sys.argv[1]
    env = open(os.path.join(out, "env.txt")).read().strip() if os.path.exists(os.path.join(out, "env.txt")) else ""
    lines = ["# GPU check summary", "", "```", env, "```", "", "## Tests (CUDA, every autotune config)", ""]
    lines += test_table(os.path.join(out, "junit.xml"))
    collected = os.path.join(out, "collected.txt")
    if os.path.exists(collected):
        lines += ["", f"collected before the run: {open(collected).read().strip() or 'unknown'}"]
    lines += ["", "## Benchmarks (bench/kernels.py)", ""] + bench_table(os.path.join(out, "kernels.jsonl"))
    train = os.path.join(out, "train.md")
    lines += ["", "## LeNet training (bench/train.py)", ""] + (
        [ln for ln in open(train).read().splitlines() if ln.startswith("|")] if os.path.exists(train)
        else ["no training results (see train.log)"])
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
