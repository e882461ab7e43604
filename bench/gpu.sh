#!/usr/bin/env bash
# ResNet-50 training throughput on one GPU: 224 px, bfloat16 mixed precision, XLA.
# Supervised (default): synthetic data, prints "images/s: N". Anchor: NVIDIA's TensorFlow ResNet-50
# reaches about 2,400 images/s on one A100 with mixed precision and XLA.
# FixMatch (--program fixmatch): the FixMatch step at uratio 5 on synthetic data and fed by the real
# input pipeline (RandAugment over generated ImageNet-like JPEGs), the pipeline's own rate and the
# cores it used, and whether the step is input-bound.
#
#   bash bench/gpu.sh                          # defaults: batch 256, 20 warm-up + 100 timed steps
#   bash bench/gpu.sh --batch_size 128 --steps 200
#   bash bench/gpu.sh --program fixmatch       # 32 labeled + 2 x 160 unlabeled images per step
#   bash bench/gpu.sh --smoke [--program fixmatch]   # CPU check: resnet_tiny, 32 px, a few steps
#   PYTHON=/path/to/venv/bin/python bash bench/gpu.sh
#
# Needs TensorFlow 2.21 with GPU support (`pip install -e . && pip install 'tensorflow[and-cuda]'`
# on Linux). All flags: bash bench/gpu.sh --help
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c "import tensorflow" >/dev/null 2>&1; then
  echo "error: '$PYTHON' cannot import tensorflow. Install the project (pip install -e '$REPO')" \
       "or point PYTHON at an interpreter that has it." >&2
  exit 2
fi

# One private GPU thread pool per device keeps kernel launches off the busy inter-op pool
# (the setting NVIDIA's own TensorFlow benchmarks use); harmless on CPU.
export TF_GPU_THREAD_MODE="${TF_GPU_THREAD_MODE:-gpu_private}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" "$REPO/bench/gpu_resnet.py" "$@"
