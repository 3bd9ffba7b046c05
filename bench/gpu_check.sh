#!/usr/bin/env bash
# One call on a lent GPU machine: install the project (offline, no deps), run the whole test suite on
# CUDA over every autotune config, then the kernel benchmarks and the LeNet training benchmark; full
# results under $OUT, a short table printed last. Installs nothing else (the machine has torch, triton,
# numpy, h5py, pytest, hypothesis). The sm_90 compile gate is left out: on a GPU every kernel and config
# is compiled for real by the tests.
#
#   OUT=/some/dir bash bench/gpu_check.sh       # T_TESTS / T_BENCH / T_TRAIN: time limits in seconds
#
# With the defaults the whole script needs about 420 s plus the machine's start.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
T_TESTS=${T_TESTS:-210}
T_BENCH=${T_BENCH:-120}
T_TRAIN=${T_TRAIN:-80}
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
# how many tests there are, so the summary can say how many a time limit left out
timeout 60 python3 -m pytest --collect-only -q -p no:cacheprovider $TESTS 2>/dev/null | tail -1 >"$OUT/collected.txt"
echo "== tests on CUDA, every autotune config ($TESTS, limit ${T_TESTS}s) =="
# SIGINT first: pytest stops and still writes the junit report of the tests that ran
timeout -s INT -k 20 "$T_TESTS" python3 -m pytest -q -p no:cacheprovider $xdist --junitxml="$OUT/junit.xml" \
  --deselect tests/test_compile_gate.py::test_every_kernel_and_config_compiles_for_sm90 $TESTS \
  >"$OUT/tests.log" 2>&1
echo "pytest exit: $?" | tee -a "$OUT/tests.log"
tail -5 "$OUT/tests.log"

echo "== kernel benchmarks (limit ${T_BENCH}s) =="
timeout "$T_BENCH" python3 bench/kernels.py --out "$OUT" --budget-s $((T_BENCH - 45)) >"$OUT/bench.log" 2>&1
echo "bench exit: $?"

echo "== LeNet training: TritonBackend vs PyTorch eager (limit ${T_TRAIN}s) =="
timeout "$T_TRAIN" python3 bench/train.py --device cuda --windows 3 --window-iters 20 --out "$OUT/train.md" \
  >"$OUT/train.log" 2>&1
echo "train exit: $?"

python3 bench/gpu_summary.py "$OUT"
