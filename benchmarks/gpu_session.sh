#!/usr/bin/env bash
# The prepared GPU run: everything the open GPU-only checks need, in priority order, each stage under its own
# time limit, so that a session lent a GPU (the `device` tool: 15 minutes of device time, machine start
# included) spends it measuring, not debugging.
#
# Here, once per session (needs ../shared/data/casting and pip access to PyPI):
#     bash benchmarks/gpu_session.sh --prepare
#   copies the real casting images to .device_data/casting and downloads the notebooks' IPython wheels
#   (the device image has torch, sklearn, matplotlib, PIL, but no IPython) to .whl/ (both git-ignored).
# On the device (one call, ~9 minutes):
#     run(command="bash benchmarks/gpu_session.sh", carry=[".device_data", ".whl"], timeout_s=600)
#   or name stages: `bash benchmarks/gpu_session.sh train eval notebook recipe`.
# Test it here first (tiny sizes, CPU; RESULTS.md is restored afterwards by git):
#     PY=.venv/bin/python QUICK_RUN=1 RADLIB_PROFILE_OVERRIDES="epochs=1,n_train=48,n_test=32,width=16" \
#         OUT=/tmp/gs bash benchmarks/gpu_session.sh; git checkout benchmarks/RESULTS.md
# What comes back under $OUT: one log per stage, the executed notebook's output, and RESULTS.md with every
# `--record` row appended (copy the new rows into benchmarks/RESULTS.md here, and the notebook's time and
# headline numbers into notebooks/README.md).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--prepare" ]]; then
    set -e
    mkdir -p .device_data .whl
    rsync -a ../shared/data/casting .device_data/ 2>/dev/null || cp -r ../shared/data/casting .device_data/
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 --platform any -d .whl \
        ipython ipython-pygments-lexers decorator jedi parso matplotlib-inline pexpect ptyprocess prompt-toolkit \
        wcwidth stack-data executing asttokens pure-eval traitlets
    du -sh .device_data .whl
    exit 0
fi

OUT="${OUT:-runs/gpu_session}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONWARNINGS=ignore
PY="${PY:-python3}"
QUICK=()  # QUICK_RUN=1: tiny sizes, to test this script on a CPU (add RADLIB_PROFILE_OVERRIDES for the notebook)
[[ -n "${QUICK_RUN:-}" ]] && QUICK=(--quick)
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
CASTING=.device_data
STAGES=("$@")
[[ ${#STAGES[@]} -eq 0 ]] && STAGES=(train eval notebook recipe)

stage() {  # name, seconds, command...
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "=== $name (limit ${limit}s)"
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$OUT/$name.log"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  $PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
          'cuda', torch.cuda.is_available())"; } | tee "$OUT/env.log"

for s in "${STAGES[@]}"; do
    case $s in
        # issue 3: COBRA training-step throughput at 32 and 224 px
        train) stage train 150 $PY benchmarks/bench_train.py --record "${QUICK[@]}" ;;
        # issue 4: attack throughput (fp32), and whether bf16 keeps robust AUROC within 1 point
        eval) stage eval 200 $PY benchmarks/bench_eval.py --precision-check --record "${QUICK[@]}" ;;
        # issue 5: one notebook in the lab profile, timed (run as a script: asserts active, figures to Agg)
        notebook) stage notebook 200 env RADLIB_PROFILE=lab RADLIB_DATA="$PWD/$CASTING" \
                      $PY notebooks/00_quickstart.py ;;
        # issue 6: the lab recipe on casting, one seed, with every reference row
        recipe) stage recipe 240 $PY benchmarks/bench_recipe.py --profile lab --seeds 0 --data casting \
                    --scores own knn --random-init --casting-root "$CASTING" --record "${QUICK[@]}" ;;
        *) echo "unknown stage $s (train, eval, notebook, recipe)"; exit 2 ;;
    esac
done
cp benchmarks/RESULTS.md "$OUT/RESULTS.md"
