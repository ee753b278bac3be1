#!/usr/bin/python3
"""Plain-PyTorch baseline for the speed of the backbone forward.

Runs the forward of tests/ref/backbone_ref.py (torch.nn.functional: conv
patch embedding, F.interpolate of the position grid, batched-matmul attention,
F.layer_norm, F.gelu) in float32 under torch.no_grad() at the shapes of
bench_backbone.c: ViT-B (hidden 768, 12 blocks, 12 heads, MLP 3072) with
random weights; DINOv2 on clips of 16 frames of 224 px (16 images of 257
tokens, position grid 37 x 37 resampled to 16 x 16), VideoMAE on 16 frames of
224 px with tubelet 2 (one sequence of 1568 tokens); layers 3, 7, 11 emitted.

  /usr/bin/python3 benchmarks/bench_torch_backbone.py [--threads N] [--reps 3]
        [--clips 1] [--models dinov2,videomae] [--layers 3,7,11] [--device cpu|cuda]

--device cuda: the same forward on GPU 0 in float32 with PyTorch's default
matmul precision (fp32: TF32 off), the baseline of `bench_backbone --device
cuda`; each timed call includes the clip's upload and the features' download
(torch.cuda.synchronize before the clock stops), as there.

One JSON line per model:
  {"backbone": ..., "clips": ..., "seconds": ..., "clips_per_s": ..., "threads": ...}
where seconds is the median over --reps timed calls after one warm-up call.
"""

import argparse
import json
import os
import statistics
import sys
import time


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())),
                    help="torch threads (default: OMP_NUM_THREADS, else all cores)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--clips", type=int, default=1)
    ap.add_argument("--models", default="dinov2,videomae")
    ap.add_argument("--layers", default="3,7,11")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    return ap.parse_args(argv)


# Threads are fixed before torch starts (see bench_torch_step.py: passive
# waiting keeps torch's OpenMP pool from spinning against its BLAS).
ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import backbone_ref as R  # noqa: E402

CONFIGS = {
    "dinov2": R.dinov2_config(hidden=768, layers=12, heads=12, mlp_ratio=4, patch=14, image=518),
    "videomae": R.videomae_config(hidden=768, layers=12, heads=12, intermediate=3072, patch=16,
                                  image=224, frames=16, tubelet=2),
}


def main(args):
    torch.set_num_threads(args.threads)
    layers = [int(x) for x in args.layers.split(",")]
    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.standard_normal((args.clips, 16, 3, 224, 224), dtype=np.float32))
    for name in [m for m in args.models.split(",") if m]:
        cfg = CONFIGS[name]
        tensors = R.random_weights(cfg, seed=1, scale=0.5)
        times = []
        with torch.no_grad():
            for rep in range(args.reps + 1):          # rep 0 is the warm-up
                t0 = time.perf_counter()
                out = R.forward(cfg, tensors, pixels, layers, dtype=torch.float32, device=args.device)
                for v in out.values():                 # the features back on the host
                    v.cpu()
                if args.device == "cuda":
                    torch.cuda.synchronize()
                if rep:
                    times.append(time.perf_counter() - t0)
        sec = statistics.median(times)
        print(json.dumps({"backbone": name, "clips": args.clips, "seconds": round(sec, 4),
                          "clips_per_s": round(args.clips / sec, 4), "threads": args.threads,
                          "device": args.device}), flush=True)
        del tensors


if __name__ == "__main__":
    main(ARGS)
