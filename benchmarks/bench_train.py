"""Throughput of `stsae train` on a grid at the paper's shape (d = 768,
m = 6144, k = 64, T = 16, N = 256; the paper's batches: 4096 tokens, 8 clips,
2048 pairs), on 1 rank and on 2 ranks (2 ranks per job: data parallel; and 2
groups of 1 rank: job parallel), the same cores in each case.

It writes a synthetic feature file (float16 Gaussian tokens plus a drifting
low-rank part per clip, like bench_step), runs a grid of four variants for
--epochs epochs each (every job sees the same tokens, as in a real grid), and
prints per configuration: grid tokens/s (all jobs' tokens over the wall time
of the whole run, start-up and the input-scale pass included), each job's own
tokens/s (model.h5), and the stage table's allreduce share.

--lockstep: instead, many SAEs per data pass (train_job.h): a grid of six
token jobs with the same batches ({variant: [standard, standard+M, frozen],
k: [32, 64]}) on 1 rank, one job at a time (train.lockstep 1) and together
(train.lockstep 8); per configuration the grid tokens/s, the wall time, the
stage table's data seconds (reading and scaling batches) and the feature
bytes read (batches read x batch bytes as float16).

usage: /usr/bin/python3 benchmarks/bench_train.py --stsae build/stsae
           [--cores 2] [--epochs 1] [--clips 24] [--lockstep] [--workdir /tmp/bench_train]
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import time

import h5py
import numpy as np

GRID = """    - {variant: standard}
    - {variant: standard+M}
    - {variant: temporal, lambda: 0.1}
    - {variant: raster, lambda: 0.1}
"""


def make_features(path, clips, T=16, N=256, d=768, seed=0):
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("features/layer_11", (clips, T, N, d), np.float16, chunks=(1, T, N, d))
        basis = rng.standard_normal((32, d)).astype(np.float32)
        for c in range(clips):
            coef = np.cumsum(rng.standard_normal((T, N, 32)).astype(np.float32) * 0.3, axis=0)
            ds[c] = (rng.standard_normal((T, N, d)).astype(np.float32) + coef @ basis * 0.5).astype(np.float16)
        f["labels"] = np.zeros(clips, np.int32)
        f["split"] = np.zeros(clips, np.uint8)
        f["done"] = np.ones(clips, np.uint8)
        f["clip_ids"] = np.array([f"c{i}" for i in range(clips)], dtype=object).astype(h5py.string_dtype())
        f["label_names"] = np.array(["none"], dtype=object).astype(h5py.string_dtype())
        for k, v in dict(T=T, H=16, W=16, N=N, d=d).items():
            f.attrs[k] = v


LOCKSTEP_GRID = """    - {variant: [standard, standard+M, frozen], k: [32, 64]}
"""


def run(a, w, name, np_, rpj, threads, over=()):
    run_dir = os.path.join(w, name)
    shutil.rmtree(run_dir, ignore_errors=True)
    deck = os.path.join(w, "deck.yaml")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(np_), a.stsae, "train", deck,
           f"run_dir={run_dir}", f"train.ranks_per_job={rpj}"] + list(over)
    t0 = time.time()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode:
        raise SystemExit(p.stdout[-2000:] + p.stderr[-2000:])
    tokens, per_job = 0, {}
    for m in sorted(glob.glob(os.path.join(run_dir, "jobs", "*", "model.h5"))):
        with h5py.File(m) as f:
            tokens += int(f.attrs["tokens"])
            per_job[os.path.basename(os.path.dirname(m))] = float(f.attrs["train_tokens_per_s"])
    table = {}
    for line in p.stdout.splitlines():
        q = re.match(r"^(data|step|allreduce|optimizer|checkpoint|total)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)%", line)
        if q:
            table[q.group(1)] = (float(q.group(3)), float(q.group(5)))
    passes = re.search(r"# (\d+) feature passes", p.stdout)
    table["passes"] = int(passes.group(1)) if passes else 0
    return wall, tokens, per_job, table


def lockstep(a, w):
    """One job at a time against the cohort in lockstep, 1 rank."""
    print(f"grid of 6 token jobs x {a.epochs} epoch(s) of {a.clips} x 4096 tokens at d=768, m=6144; 1 rank x "
          f"{a.cores} threads")
    print(f"{'configuration':<34} {'grid tok/s':>11} {'wall s':>7} {'data s':>7} {'passes':>6} {'GB read':>8}")
    for name, ls in (("one job at a time (lockstep 1)", 1), ("cohort in lockstep (lockstep 8)", 8)):
        wall, tokens, _, table = run(a, w, f"lockstep{ls}", 1, 1, a.cores, [f"train.lockstep={ls}"])
        gb = table["passes"] * a.epochs * a.clips * 16 * 256 * 768 * 2 / 1e9
        print(f"{name:<34} {tokens / wall:>11,.0f} {wall:>7.1f} {table.get('data', (0, 0))[0]:>7.2f} "
              f"{table['passes']:>6} {gb:>8.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--lockstep", action="store_true", help="many SAEs per data pass (see the header)")
    ap.add_argument("--workdir", default="/tmp/bench_train")
    a = ap.parse_args()
    w = a.workdir
    os.makedirs(w, exist_ok=True)
    feats = os.path.join(w, "features.h5")
    if not os.path.exists(feats):
        make_features(feats, a.clips)
    open(os.path.join(w, "deck.yaml"), "w").write(f"""run_dir: {w}/run
train:
  features: {feats}
  layer: 11
  expansion: 8
  k: 64
  epochs: {a.epochs}
  seeds: [0]
  progress_every: 1000
  grid:
{LOCKSTEP_GRID if a.lockstep else GRID}""")
    if a.lockstep:
        return lockstep(a, w)
    configs = [("1 rank", 1, 1, a.cores), ("2 ranks per job", 2, 2, a.cores // 2), ("2 groups of 1 rank", 2, 1, a.cores // 2)]
    print(f"grid of 4 jobs x {a.epochs} epoch(s) of {a.clips} x 4096 tokens at d=768, m=6144, k=64; "
          f"{a.cores} cores in every configuration")
    print(f"{'configuration':<22} {'grid tok/s':>11} {'wall s':>7}  {'allreduce s (share)':>20}  per-job tok/s")
    for name, np_, rpj, threads in configs:
        wall, tokens, per_job, table = run(a, w, name.replace(" ", "_"), np_, rpj, threads)
        ar = table.get("allreduce", (0, 0))
        jobs = ", ".join(f"{k.split('_')[0]} {v:,.0f}" for k, v in per_job.items())
        print(f"{name:<22} {tokens / wall:>11,.0f} {wall:>7.1f}  {ar[0]:>10.2f} ({ar[1]:4.1f}%)  {jobs}")


if __name__ == "__main__":
    main()
