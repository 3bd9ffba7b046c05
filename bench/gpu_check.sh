#!/usr/bin/env bash
# One call on a lent GPU machine: install the project (offline, no deps), run the whole test suite on
# CUDA over every autotune config, then the kernel benchmarks; full results under $OUT, a short table
# printed last. Installs nothing else (the machine has torch, triton, numpy, h5py, pytest, hypothesis).
#
#   OUT=/some/dir bash bench/gpu_check.sh            # T_TESTS / T_BENCH: time limits in seconds
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
T_TESTS=${T_TESTS:-240}
T_BENCH=${T_BENCH:-200}
TESTS=${TESTS:-tests}
export PYTHONUNBUFFERED=1 TRITON_DEFAULT_FP_FUSION=1 MOCHA_TRITON_ALL_CONFIGS=1 HYPOTHESIS_PROFILE=ci
mkdir -p "$OUT"

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  python3 -c "import sys, torch, triton, numpy; print('python', sys.version.split()[0], '| torch', torch.__version__, \
'| triton', triton.__version__, '| numpy', numpy.__version__, '| cuda', torch.version.cuda)"
} 2>&1 | tee "$OUT/env.txt"

python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 \
  || { echo "editable install failed:"; tail -20 "$OUT/install.log"; }

xdist=""
python3 -c "import xdist" 2>/dev/null && xdist="-n 8"
echo "== tests on CUDA, every autotune config ($TESTS, limit ${T_TESTS}s) =="
timeout "$T_TESTS" python3 -m pytest -q -p no:cacheprovider $xdist --junitxml="$OUT/junit.xml" $TESTS \
  >"$OUT/tests.log" 2>&1
echo "pytest exit: $?" | tee -a "$OUT/tests.log"
tail -5 "$OUT/tests.log"

echo "== kernel benchmarks (limit ${T_BENCH}s) =="
timeout "$T_BENCH" python3 bench/kernels.py --out "$OUT" --budget-s $((T_BENCH - 45)) >"$OUT/bench.log" 2>&1
echo "bench exit: $?"

python3 bench/gpu_summary.py "$OUT"
