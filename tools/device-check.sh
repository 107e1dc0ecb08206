#!/usr/bin/env bash
# The one device check: run on the GPU machine (PyTorch + transformers, no Node) with `.device`
# carried. Prepare it here first:  npx tsx tools/hf-check/make.ts
# Then, through the device tool:   bash tools/device-check.sh   (carry: [".device"])
set -uo pipefail
export PYTHONUNBUFFERED=1
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())'
python3 tools/hf-check/compare.py .device/hf-check 2>&1 | tee "${OUT:-/tmp}/hf-check.log"
