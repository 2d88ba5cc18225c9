"""Score a trained Burgers checkpoint on the 256 x 100 x-t grid in float32 and under bfloat16 autocast.

    python benchmarks/evaluate_precision.py path/to/last.ckpt

Separates what bf16-mixed does to training from what it does to evaluation: Lightning's
bf16-mixed also runs validation under autocast, so a validation error mixes the two.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from lightning_pinn import PINNModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    args = parser.parse_args()
    module = PINNModule.load_from_checkpoint(args.checkpoint, weights_only=True).float().eval()
    x, t = np.meshgrid(np.linspace(-1, 1, 256), np.linspace(0, 1, 100), indexing="ij")
    points = np.stack([x.ravel(), t.ravel()], 1)
    reference = module.problem.reference(x=points[:, 0], t=points[:, 1])
    coords = torch.tensor(points, dtype=torch.float32)
    with torch.no_grad():
        fp32 = module(coords).numpy()[:, 0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = module(coords).float().numpy()[:, 0]
    for name, u in (("float32", fp32), ("bfloat16 autocast", bf16)):
        print(f"{name:>18}: relative L2 error {np.linalg.norm(u - reference) / np.linalg.norm(reference):.3e}")


if __name__ == "__main__":
    main()
