#!/usr/bin/env bash
# Chorus on a CUDA GPU in a few minutes: the GPU tests, a CUDA training smoke run (DDP over NCCL when
# there are two or more GPUs, otherwise a one-rank NCCL process group), and the CLIP throughput benchmark.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default OUT_DIR: runs/gpu_check
#
# Run from the repository root in an environment with Chorus's dependencies and a CUDA build of torch.
# If CHORUS_OPENCLIP_PYTHON names a Python that also has open_clip, the throughput step compares with
# OpenCLIP; otherwise it measures Chorus alone (throughput and MFU). Every step runs even if an earlier
# one failed; the summary at the end lists each step's exit code, and the script exits 1 if any failed,
# 2 if there is no GPU. Outputs: OUT_DIR/{env.txt,tests.txt,smoke/,smoke.txt,clip_throughput_gpu.*}.
set -u
OUT=${1:-runs/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
declare -A STATUS

step() {  # step NAME LOGFILE COMMAND...: run, keep the log, remember the exit code
    local name=$1 log=$2; shift 2
    echo "== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$log"
    STATUS[$name]=${PIPESTATUS[0]}
    echo "== $name: exit ${STATUS[$name]} after $((SECONDS - start)) s"
}

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "error: no CUDA device visible to torch ($("$PY" -c 'import torch; print(torch.__version__)' 2>&1))" >&2
    exit 2
fi
NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())")
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'nccl', torch.cuda.nccl.version())"
    "$PY" -c "import chorus; print('chorus', chorus.__file__)"
} | tee "$OUT/env.txt"

# 1. Tests that need a GPU (they skip themselves without one), found by what they check.
GPU_TESTS=$(grep -l "cuda.is_available" tests/test_*.py | tr '\n' ' ')
step tests "$OUT/tests.txt" timeout 300 "$PY" -m pytest -q -rs $GPU_TESTS

# 2. CUDA training smoke run: the offline demo CLIP (scikit-learn digits) trained by chorus.train.Trainer
#    on cuda, launched by torchrun so that the NCCL process group is used; with 2+ GPUs the Trainer wraps
#    the model in DistributedDataParallel.
step smoke "$OUT/smoke.txt" timeout 300 "$PY" -m torch.distributed.run --standalone --nproc_per_node="$NGPU" \
    -m chorus.cli demo --json --epochs 3 --run-dir "$OUT/smoke"

# 3. Throughput: both configs, fp32 and bf16 (autocast), 3 alternating rounds.
VARIANTS=(--variants chorus)
OC_PY=${CHORUS_OPENCLIP_PYTHON:-}
if [ -n "$OC_PY" ] && "$OC_PY" -c "import open_clip" 2>/dev/null; then VARIANTS=(); PY_TP=$OC_PY; else PY_TP=$PY; fi
step throughput "$OUT/throughput.txt" timeout 600 "$PY_TP" benchmarks/clip_throughput.py --config all \
    --precision fp32 bf16 --rounds 3 "${VARIANTS[@]}" --out "$OUT/clip_throughput_gpu"

echo "== summary"
failed=0
for name in tests smoke throughput; do
    echo "$name: exit ${STATUS[$name]}"
    [ "${STATUS[$name]}" = 0 ] || failed=1
done
exit $failed
