#!/usr/bin/python3
"""The layer analysis: `layer` as a list-valued grid key, each job reading its
own layer of the one feature file (tests/ref/make_features.py: layers 0 and
2, different content), through `stsae check`, train (2 ranks), eval (2
ranks) and report:

  check   the job names (standard_layer0_seed0, ..., and a job with no layer
          on train.layer), and a grid layer the file lacks refused naming the
          file and the layer;
  train   each model.h5 records its job's layer; the jobs of one layer share
          that layer's input scale and the two layers' scales differ;
  eval    each job's R² and L0 recomputed in numpy from model.h5 on its own
          layer's test tokens (1e-4), and NOT matching on the other layer (so
          the check can fail); a raw row per layer (`raw` for train.layer,
          `raw_layer0`) whose probe matches scikit-learn on that layer's
          clip means; every row's `layer` column;
  report  results.md's findings and tables of train.layer only, and the
          layer table with every configuration at each layer.

  test_layers.py --stsae BIN --workdir DIR [--mpirun M --mpi-flags F]
"""
import argparse
import csv
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "ref"))
sys.path.insert(0, HERE)
from make_features import make  # noqa: E402
from test_eval import encode, probe  # noqa: E402

DECK = """run_dir: {w}/run
train:
  features: {w}/f.h5
  layer: 2
  expansion: 2
  k: 4
  k_aux: 8
  epochs: 3
  batch_tokens: 48
  batch_clips: 2
  streams: 2
  mix_clips: 2
  seeds: [0]
  progress_every: 1000
  grid:
    - {{variant: standard, layer: [0, 2]}}
    - {{variant: temporal, lambda: 0.1, layer: {temporal_layer}}}
    - {{variant: standard+M, high_frac: 0.25}}
eval:
  ablate_n: [2]
  random_draws: 2
"""
JOBS = {"standard_layer0_seed0": 0, "standard_layer2_seed0": 2, "temporal_lambda0.1_layer0_seed0": 0,
        "standard+M_high_frac0.25_seed0": 2}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--mpi-flags", default="--oversubscribe")
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    w = os.path.abspath(a.workdir)
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    feats, labels, split = make(f"{w}/f.h5", clips=30, T=4, H=2, W=3, d=8, layers=(0, 2), seed=4, test_frac=0.3)
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    fails = 0

    def report(name, ok, info=""):
        nonlocal fails
        print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + info if info and not ok else ''}")
        fails += not ok

    def run(*cmd):
        p = subprocess.run(list(cmd), env=env, capture_output=True, text=True)
        return p.returncode, p.stdout, p.stderr

    open(f"{w}/deck.yaml", "w").write(DECK.format(w=w, temporal_layer=0))
    open(f"{w}/bad.yaml", "w").write(DECK.format(w=w, temporal_layer="[0, 7]"))
    rc, out, err = run(a.stsae, "check", f"{w}/deck.yaml")
    names = re.findall(r"^#\s+\d+\s+(\S+_seed\d+)\s", out, flags=re.M)
    report("check: job names by layer", rc == 0 and sorted(names) == sorted(JOBS), f"exit {rc}, {names}, {err}")
    rc, out, err = run(a.stsae, "check", f"{w}/bad.yaml")
    report("check: a layer the file lacks", rc == 1 and "f.h5" in err and "layer 7" in err, f"exit {rc}: {err.strip()}")
    rc, out, err = run(a.stsae, "train", f"{w}/bad.yaml", f"run_dir={w}/bad")
    report("train: a layer the file lacks, before any job trains",
           rc == 1 and "layer 7" in err and not os.path.exists(f"{w}/bad/jobs"), f"exit {rc}: {err.strip()[-300:]}")

    mpi = [a.mpirun] + a.mpi_flags.split() + ["-np", "2"]
    for cmd in (mpi + [a.stsae, "train", f"{w}/deck.yaml"], mpi + [a.stsae, "eval", f"{w}/deck.yaml"],
                [a.stsae, "report", f"{w}/run"]):
        rc, out, err = run(*cmd)
        if rc:
            print(out[-3000:], err[-3000:])
            raise SystemExit(f"FAIL: {' '.join(cmd)} exited {rc}")

    scale = {}
    for job, layer in JOBS.items():
        with h5py.File(f"{w}/run/jobs/{job}/model.h5") as f:
            got = int(f.attrs["layer"])
            scale.setdefault(layer, set()).add(float(f.attrs["scale"]))
        report(f"train: {job} model.h5 layer {got}", got == layer)
    report("train: one input scale per layer, different between layers",
           all(len(v) == 1 for v in scale.values()) and scale[0] != scale[2], str(scale))

    te, tr = split == 1, split == 0
    T, N, d = 4, 6, 8
    for job, layer in JOBS.items():
        with h5py.File(f"{w}/run/jobs/{job}/model.h5") as f:
            P = {k: f["params/" + k][...].astype(np.float64) for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
            s, theta, k, variant = float(f.attrs["scale"]), float(f.attrs["theta"]), int(f.attrs["k"]), f.attrs["variant"]
        with h5py.File(f"{w}/run/jobs/{job}/eval.h5") as f:
            g = dict(f.attrs)

        def r2_l0(x):
            xt = x[te].astype(np.float64).reshape(-1, d)
            z = encode(s * xt, P, variant, k, theta)
            xh = (z @ P["W_dec"].T + P["b_dec"]) / s
            return 1 - ((xt - xh) ** 2).sum() / ((xt - xt.mean(0)) ** 2).sum(), (z != 0).sum(-1).mean()

        r2, l0 = r2_l0(feats[layer])
        r2_other, _ = r2_l0(feats[2 - layer])
        ok = abs(g["r2"] - r2) <= 1e-4 * max(1.0, abs(r2)) and abs(g["l0"] - l0) <= 1e-6 * max(1.0, l0)
        report(f"eval: {job} on layer {layer}: r2 {g['r2']:.6f} (numpy {r2:.6f}), l0 {g['l0']:.3f} (numpy {l0:.3f})", ok)
        report(f"eval: {job}: the other layer gives another r2 ({r2_other:.4f})", abs(g["r2"] - r2_other) > 1e-3)
        report(f"eval: {job} layer column", int(g["layer"]) == layer, str(g.get("layer")))

    rows = list(csv.DictReader(open(f"{w}/run/results.csv")))
    by = {r["job"]: r for r in rows}
    report("report: rows raw, raw_layer0, then the jobs in grid order",
           [r["job"] for r in rows] == ["raw", "raw_layer0"] + list(JOBS), str([r["job"] for r in rows]))
    for raw, layer in (("raw", 2), ("raw_layer0", 0)):
        x = feats[layer].astype(np.float64)
        _, _, acc = probe(x[tr].mean((1, 2)), labels[tr], x[te].mean((1, 2)), labels[te])
        r = by.get(raw, {})
        ok = r and int(float(r["layer"])) == layer and abs(float(r["probe"]) - acc) <= 1e-3
        report(f"report: {raw}: layer {r.get('layer')}, probe {r.get('probe')} (scikit-learn on layer {layer}: {acc:.4f})",
               bool(ok))
    md = open(f"{w}/run/results.md").read()
    main_tables = md.split("## Layers")[0]
    report("report: the findings and tables 1-6 are of train.layer only",
           "standard_layer0" not in main_tables and "raw_layer0" not in main_tables and
           "standard_layer2" in main_tables and "of layer 2 (train.layer)" in main_tables)
    layer_table = md.split("## Layers")[1] if "## Layers" in md else ""
    listed = re.findall(r"^\| (\S+) \| (\d+)\.000 \|", layer_table, flags=re.M)
    want = [("raw_layer0", "0"), ("standard_layer0", "0"), ("temporal_lambda0.1_layer0", "0"), ("raw", "2"),
            ("standard_layer2", "2"), ("standard+M_high_frac0.25", "2")]
    report("report: the layer table, every configuration at each layer", listed == want, str(listed))
    print("layers: " + ("FAILED" if fails else "passed"))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
