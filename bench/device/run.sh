#!/bin/bash
# On the device machine, from the repository root, after bench/device/pack.sh here; one call:
#   run(command="bash bench/device/run.sh", carry=[".devcarry"], timeout_s=540)
# Installs the carried wheels into /tmp/site, unpacks the mini suite into a fresh home and runs
# the bench's scale part (random-init models, no real weights needed; PARTS=... for
# others once tiny.en's weights are there too) with `evaluate --device auto`. The report and the
# log land in $OUT (or /tmp).
set -euo pipefail
c=.devcarry
out="${OUT:-/tmp}"
py="${PYTHON:-python3}"
if [ -z "${SKIP_WHEELS:-}" ]; then  # SKIP_WHEELS=1: a rehearsal in an environment that has them all
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$c"/wheels/*.whl
  export PYTHONPATH=/tmp/site
fi
export AUDIOSAEBENCH_HOME="${AUDIOSAEBENCH_HOME:-/tmp/asb-home}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
data=$("$py" -c "from audiosaebench import paths; print(paths.data_dir())")
model=$("$py" -c "from audiosaebench.models.loading import mini_whisper_dir; print(mini_whisper_dir())")
mkdir -p "$data" "$model"
xz -dc "$c/mini-data.tar.xz" | tar -C "$data" -xf -
cp "$c"/model/* "$model/"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
"$py" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)"
"$py" bench/run.py --parts "${PARTS:-scale}" --scale-limit "${SCALE_LIMIT:-8}" --out "$out/device-bench.json" 2>&1 | tee "$out/device-bench.log"
