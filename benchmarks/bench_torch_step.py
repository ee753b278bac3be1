#!/usr/bin/python3
"""Plain-PyTorch baseline for the speed of one SAE training step.

Times forward + backward (autograd) of one step of tests/ref/sae_ref.py in
float32 on random data at the paper's shape (d=768, m=6144, k=64, k_aux=512,
10% of latents dead): standard, standard+M (and frozen, sparsemax, entmax15)
on 4096 tokens; temporal, separate and their +M on 8 clips of T=16, H=W=16
(32768 tokens); raster on 2048 adjacent pairs (4096 tokens). The reference is
written for clarity (dense codes, dense decoder matmul, dense InfoNCE logits per
time step), which is what a straightforward PyTorch implementation does;
sparsemax/entmax15 find their threshold by sorting (sort_threshold below), as
the `entmax` package does, not by the tests' bisection.

  /usr/bin/python3 benchmarks/bench_torch_step.py [--threads N] [--reps 3]
        [--variants standard,temporal] [--scale 0.25] [--seed 0]

One JSON line per variant:
  {"variant": ..., "tokens": ..., "seconds": ..., "tokens_per_s": ..., "threads": ...}
where seconds is the median over --reps timed steps after one warm-up step.
"""

import argparse
import json
import os
import statistics
import sys
import time

SPEC_VARIANTS = ["standard", "temporal", "separate", "raster",
                 "standard+M", "temporal+M", "separate+M"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="CPU threads for torch and BLAS (default: all cores)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions (median reported)")
    ap.add_argument("--variants", default=",".join(SPEC_VARIANTS),
                    help="comma-separated; also frozen, sparsemax, entmax15")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of the paper's tokens per batch (e.g. 0.25 for a quick run)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


# Threads must be fixed before torch (and its BLAS) start. torch's OpenMP
# threads and a pthreads OpenBLAS (Debian's torch) otherwise spin-wait against
# each other between calls: passive waiting makes 2-thread steps ~1.5-2.5x
# faster on a 2-core machine (an explicit OMP_WAIT_POLICY is respected).
ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import sae_ref as R  # noqa: E402

D, M, K, K_AUX = 768, 6144, 64, 512
DEAD_FRAC = 0.10


def batch_shape(variant, scale):
    """Shape of batch/x at the paper's batch sizes times `scale` (tokens)."""
    if variant in ("temporal", "separate", "temporal+M", "separate+M"):
        B, T = 8, 16
        if scale >= 1.0 / B:
            B = max(1, round(B * scale))
        else:                                   # fewer than one clip: shorten it
            B, T = 1, max(2, round(T * B * scale))
        return (B, T, 16 * 16, D)
    if variant == "raster":
        return (max(1, round(2048 * scale)), 2, D)
    return (max(1, round(4096 * scale)), D)


def make_problem(variant, scale, gen):
    """Random float32 parameters (unit decoder columns, W_enc = W_dec^T as
    in SPEC's initialization), data and dead mask."""
    cfg = {"variant": variant, "k": K, "k_aux": K_AUX, "alpha": 1.0 / 32, "beta": 1.0,
           "high_frac": 0.2, "lambda_t": 0.1, "lambda_s": 0.1, "lambda_r": 0.1,
           "tau": 0.1, "T_s": 1.0, "T": 16, "H": 16, "W": 16,
           "optim_steps": 0, "lr": 0.0, "warmup_steps": 1,
           "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_eps": 1e-8}
    W_dec = torch.randn(D, M, generator=gen)
    W_dec /= W_dec.norm(dim=0, keepdim=True)
    params = {"W_enc": W_dec.T.contiguous(), "b_enc": 0.01 * torch.randn(M, generator=gen),
              "W_dec": W_dec, "b_dec": 0.1 * torch.randn(D, generator=gen)}
    x = torch.randn(batch_shape(variant, scale), generator=gen)
    dead = torch.zeros(M, dtype=torch.bool)
    dead[torch.randperm(M, generator=gen)[: int(DEAD_FRAC * M)]] = True
    return cfg, params, x, dead


def sort_threshold(w, power):
    """Exact sparsemax (power 1) / entmax-1.5 (power 2, on w = v/2) threshold
    per row by sorting, as the `entmax` package computes it (Peters et al.
    2019): the plain-PyTorch way, used here instead of the test reference's
    bisection so that the baseline is a fair one."""
    ws, _ = torch.sort(w, dim=1, descending=True)
    k = torch.arange(1, w.shape[1] + 1, dtype=w.dtype).unsqueeze(0)
    cum = ws.cumsum(dim=1)
    if power == 1:
        support = (1.0 + k * ws > cum).sum(dim=1, keepdim=True)
        return (cum.gather(1, support - 1) - 1.0) / support
    mean = cum / k
    ss = k * ((ws * ws).cumsum(dim=1) / k - mean * mean)
    tau = mean - torch.sqrt(torch.clamp((1.0 - ss) / k, min=0.0))
    support = (tau <= ws).sum(dim=1, keepdim=True)
    return tau.gather(1, support - 1)


def time_step(cfg, params, x, dead, reps):
    """Median wall time of R.step (selection, forward, autograd backward)."""
    R.step(cfg, params, x, dead)                # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        R.step(cfg, params, x, dead)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(args):
    torch.set_num_threads(args.threads)
    R._bisect_threshold = sort_threshold
    gen = torch.Generator().manual_seed(args.seed)
    for variant in [v for v in args.variants.split(",") if v]:
        if variant not in R.VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; known: {', '.join(R.VARIANTS)}")
        cfg, params, x, dead = make_problem(variant, args.scale, gen)
        tokens = x.numel() // D
        seconds = time_step(cfg, params, x, dead, args.reps)
        print(json.dumps({"variant": variant, "tokens": tokens, "seconds": round(seconds, 4),
                          "tokens_per_s": round(tokens / seconds, 1),
                          "threads": args.threads}), flush=True)
        del cfg, params, x, dead


if __name__ == "__main__":
    main(ARGS)
