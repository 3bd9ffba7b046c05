"""bench/kernels.py --smoke runs every benchmark row once on tiny shapes (in the interpreter here), so the
GPU benchmark script cannot break unnoticed between the rare sessions that have a GPU."""

import json
import os
import subprocess
import sys

BENCH = os.path.join(os.path.dirname(__file__), os.pardir, "bench", "kernels.py")


def test_every_benchmark_row_runs(tmp_path):
    proc = subprocess.run([sys.executable, BENCH, "--smoke", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "kernels.jsonl").read_text().splitlines()]
    errors = [row for row in rows if "error" in row]
    assert not errors, errors
    groups = {row["group"] for row in rows}
    assert groups >= {"conv_fwd", "conv_dgrad", "conv_wgrad", "ip_fwd", "ip_bwd", "pool", "loss", "softmax",
                      "neuron", "copy", "solver", "lrn", "combine"}, groups
    assert len([row for row in rows if row["group"] == "solver"]) == 5
