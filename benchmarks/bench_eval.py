"""Evaluation time per job and per metric at the paper's shape (d = 768,
m = 6144, k = 64, clips of T = 16 x N = 256 tokens), for a standard SAE (every
metric, the post-hoc smoothings included) and a temporal one.

It writes a synthetic feature file (bench_train.py's), trains the two jobs for
a few steps (the weights do not matter for the timing), runs `stsae eval` with
OMP_NUM_THREADS=--cores, and prints eval.h5's /seconds per part, per clip, and
extrapolated to --paper-clips evaluation clips (the paper: a 10K-clip set, 80%
for the probes' training split).

usage: /usr/bin/python3 benchmarks/bench_eval.py --stsae build/stsae
           [--cores 2] [--train-clips 48] [--test-clips 16] [--paper-clips 10000]
"""
import argparse
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import make_features  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--train-clips", type=int, default=48)
    ap.add_argument("--test-clips", type=int, default=16)
    ap.add_argument("--paper-clips", type=int, default=10000)
    ap.add_argument("--workdir", default="/tmp/bench_eval")
    a = ap.parse_args()
    w = a.workdir
    shutil.rmtree(os.path.join(w, "run"), ignore_errors=True)
    os.makedirs(w, exist_ok=True)
    n = a.train_clips + a.test_clips
    feats = os.path.join(w, f"features_{n}.h5")
    if not os.path.exists(feats):
        make_features(feats, n)
        with h5py.File(feats, "a") as f:
            rng = np.random.default_rng(0)
            f["labels"][...] = rng.integers(0, 10, n).astype(np.int32)
            f["split"][a.train_clips:] = 1
            del f["label_names"]
            f["label_names"] = np.array([f"a{i}" for i in range(10)], dtype=object).astype(h5py.string_dtype())
            f["text_embeddings"] = rng.standard_normal((10, 512)).astype(np.float32)
    deck = os.path.join(w, "deck.yaml")
    open(deck, "w").write(f"""run_dir: {w}/run
train:
  features: {feats}
  layer: 11
  max_steps: 2
  seeds: [0]
  progress_every: 1000
  grid:
    - {{variant: standard}}
    - {{variant: temporal, lambda: 0.1}}
eval:
  progress_every: 1000
""")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.cores))
    for stage in ("train", "eval"):
        p = subprocess.run([a.stsae, stage, deck], env=env, capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(p.stdout[-2000:] + p.stderr[-2000:])
    clips = a.train_clips + a.test_clips
    scale = a.paper_clips / clips
    print(f"eval at d=768, m=6144, k=64, T=16, N=256: {a.train_clips} train + {a.test_clips} test clips, "
          f"{a.cores} threads; last column: x{scale:.0f} for {a.paper_clips} clips")
    for job in sorted(os.listdir(os.path.join(w, "run", "jobs"))):
        with h5py.File(os.path.join(w, "run", "jobs", job, "eval.h5")) as f:
            sec = f["seconds"][...]
            names = f.attrs["seconds_names"]
        names = names.decode() if isinstance(names, bytes) else names
        print(f"\n{job}\n{'part':<20} {'seconds':>9} {'ms/clip':>9} {'paper s':>9}")
        for nm, s in zip(names.split(","), sec):
            print(f"{nm:<20} {s:>9.2f} {1e3 * s / clips:>9.1f} {s * scale:>9.0f}")


if __name__ == "__main__":
    main()
