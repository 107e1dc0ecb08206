"""Compares archc's CPU logits with transformers' BambaForCausalLM on the checkpoints that
tools/hf-check/make.ts wrote. Each packed sequence is run alone through Hugging Face (the meaning
of padding-free mode), in float32 with eager attention and the torch (non-kernel) Mamba path.
Prints the max abs / relative error per case; exits 1 if any exceeds the tolerance.
Usage: python3 tools/hf-check/compare.py .device/hf-check
"""
import json
import pathlib
import sys

import numpy as np
import torch
from transformers import BambaConfig, BambaForCausalLM

TOL = 1e-4  # relative to the largest |logit| of the sequence; fp32 vs fp32, different summation orders


def main(root: pathlib.Path) -> int:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    failed = 0
    for case in json.loads((root / "manifest.json").read_text()):
        ckpt = root / case["name"]
        config = BambaConfig.from_pretrained(ckpt)
        config.use_mamba_kernels = False
        model = BambaForCausalLM.from_pretrained(ckpt, config=config, torch_dtype=torch.float32, attn_implementation="eager")
        model = model.to(device).eval()
        ours = np.load(ckpt / "archc-logits.npy")
        row, worst = 0, 0.0
        for seq in case["seqs"]:
            ids = torch.tensor([seq], device=device)
            with torch.no_grad():
                ref = model(input_ids=ids, use_cache=False).logits[0].float().cpu().numpy()
            got = ours[row:row + len(seq)]
            err = float(np.abs(got - ref).max() / (1.0 + np.abs(ref).max()))
            worst = max(worst, err)
            row += len(seq)
        ok = worst <= TOL
        failed += not ok
        print(f"{case['name']}: max relative error {worst:.3e} {'ok' if ok else 'FAIL'}")
    print(f"{len(json.loads((root / 'manifest.json').read_text())) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".device/hf-check")))
