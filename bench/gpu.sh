#!/usr/bin/env bash
# The clips stage on an NVIDIA GPU, end to end, in one run:
#   1. installs the `gpu` extra (onnxruntime-gpu replaces the CPU build in .venv; both own `onnxruntime`);
#   2. checks that a face detector's onnxruntime session really runs on CUDAExecutionProvider, and stops
#      loudly (exit 1) where it fell back to the CPU;
#   3. prints frames/s of 720p through `bench/clips.py` (FERV39k's settings, configs/ferv39k.yaml) for one
#      source and for N sources at once, with the GPU's utilisation sampled by nvidia-smi meanwhile;
#   4. installs NVIDIA's PyNvVideoCodec and measures its NVDEC decoding against PyAV's (`bench/decoders.py`):
#      where the GPU takes the detector, decoding is what bounds the stage.
# On a machine without an NVIDIA GPU it says so in one line and exits 0 (CI runs it that way, so it cannot rot).
#
#   bash bench/gpu.sh [N_SOURCES=4] [SECONDS=60]
set -euo pipefail
cd "$(dirname "$0")/.."
n_sources=${1:-4}
seconds=${2:-60}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  echo "no GPU: nvidia-smi lists no NVIDIA GPU on this machine; nothing to measure"
  exit 0
fi
nvidia-smi -L

./run setup >/dev/null
export UV_PYTHON=${PYTHON:-python3.11}
.tools/bin/uv pip uninstall -q -p .venv/bin/python onnxruntime
.tools/bin/uv pip install -q -p .venv/bin/python "onnxruntime-gpu[cuda,cudnn]>=1.18"

.venv/bin/python - <<'EOF'
import sys

import onnxruntime as ort

from pipeline.faces import load_detector, models_dir
from pipeline.models import fetch_model
from schemas.config import FacesConfig

print("onnxruntime", ort.__version__, "providers available:", ort.get_available_providers())
cfg = FacesConfig(backend="centerface", device="cuda", precision="fp32")
fetch_model("centerface", models_dir(cfg))
detector = load_detector(cfg)
print("face detector session providers:", detector.providers)
if "CUDAExecutionProvider" not in detector.providers:
    sys.exit("FAILED: onnxruntime fell back to the CPU (CUDA or cuDNN libraries missing?): no GPU figures")
EOF

util=$(mktemp)
nvidia-smi --query-gpu=utilization.gpu,utilization.decoder,memory.used --format=csv,noheader,nounits -lms 500 \
  >"$util" &
sampler=$!
trap 'kill $sampler 2>/dev/null || true; rm -f "$util"' EXIT
for sources in 1 "$n_sources"; do
  : >"$util"
  .venv/bin/python bench/clips.py --config configs/ferv39k.yaml --seconds "$seconds" --sources "$sources"
  awk -F', ' -v n="$sources" '{g += $1; d += $2; m = ($3 > m ? $3 : m); k++}
    END {if (k) printf "GPU while %d source(s) ran: utilisation %.0f%% (decoder %.0f%%), memory up to %d MiB, %d samples\n",
         n, g / k, d / k, m, k}' "$util"
done

if .tools/bin/uv pip install -q -p .venv/bin/python "PyNvVideoCodec>=2"; then
  .venv/bin/python bench/decoders.py --seconds "$seconds"
else
  echo "PyNvVideoCodec could not be installed: NVDEC not measured"
fi
