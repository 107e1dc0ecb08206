#!/usr/bin/env bash
# The GPU script: on a machine with an NVIDIA GPU, its driver, Python 3 and numpy (no Node needed;
# torch, where installed, for the cuBLAS and SDPA baselines), checks every kernel and end-to-end
# logits of a tiny Bamba and of a narrow model of Bamba-9B's head, state and chunk sizes against the
# CPU engine, then times prefill (4096 tokens) and decode (batch 1 and 8) of a Bamba-9B-shaped model
# against their floors, kernel by kernel, as a CUDA graph and per kernel beside the cost model and
# torch, in under 8 minutes.
# It replays what `npx tsx bench/gpu/prepare.ts` wrote into bench/gpu/work/ (carry that folder).
#   bash bench/gpu/run.sh [--dry-run] [--out results.json] [--budget seconds]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$here/driver.py" --work "$here/work" "$@"
