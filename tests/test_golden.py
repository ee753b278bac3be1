"""A fixed deck with every variant through `stsae train`, `eval` and `report`,
against a golden summary kept in tests/golden/every_variant.json: the guard
that a change meant to move code (not behaviour) moved nothing.

  test_golden.py --stsae BIN --workdir DIR [--exact] [--write]

The features come from tests/ref/make_features.py (seeded numpy, the same on
every machine); one rank, one thread. For each job the golden file keeps, per
parameter tensor, its sum, sum of squares and 16 sampled entries, plus theta,
the step count and the final losses; and every column of results.csv except
the timings (train_tokens_per_s). On the machine that wrote the golden file a
pure refactor gives the same bits (--exact: any difference fails); on another
CPU (another OpenBLAS kernel, other FMA contractions) training drifts a little,
so the default tolerance is a relative 2e-3 on the parameters' summaries and
on the metrics, with every difference printed. --write rewrites the golden
file from this build (only when a change is meant to change the numbers: say
so in its commit).
"""
import argparse
import csv
import glob
import json
import math
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "ref"))
from make_features import make  # noqa: E402

GOLDEN = os.path.join(HERE, "golden", "every_variant.json")
TIMINGS = {"train_tokens_per_s"}

DECK = """run_dir: {w}/run
train:
  features: {w}/f.h5
  layer: 0
  expansion: 4
  k: 4
  k_aux: 8
  dead_tokens: 400
  epochs: 3
  batch_tokens: 64
  batch_clips: 4
  batch_pairs: 32
  streams: 4
  mix_clips: 2
  seeds: [7]
  progress_every: 1000
  grid:
    - {{variant: standard}}
    - {{variant: frozen}}
    - {{variant: temporal, lambda: 0.3}}
    - {{variant: separate, lambda: 0.2}}
    - {{variant: raster, lambda: 0.4}}
    - {{variant: standard+M, high_frac: 0.25}}
    - {{variant: temporal+M, lambda: 0.3}}
    - {{variant: separate+M, lambda: 0.2, tau: 0.05}}
    - {{variant: sparsemax, lambda: 0.1, T_s: 0.5}}
    - {{variant: entmax15, lambda: 0}}
eval:
  ablate_n: [2, 5]
  random_draws: 2
  smoothing: [0.5]
"""


def summary(path):
    out = {}
    with h5py.File(path, "r") as f:
        for k in ("W_enc", "b_enc", "W_dec", "b_dec"):
            x = f["params/" + k][...].astype(np.float64).ravel()
            idx = np.linspace(0, x.size - 1, 16).astype(int)
            out[k] = {"sum": float(x.sum()), "sumsq": float((x * x).sum()), "sample": x[idx].tolist()}
        for k in ("theta", "steps", "scale"):
            out[k] = float(f.attrs[k])
    return out


def run_all(a, w):
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    make(os.path.join(w, "f.h5"), clips=24, T=4, H=2, W=3, d=12, seed=11, test_frac=0.25, n_labels=3)
    with h5py.File(os.path.join(w, "f.h5"), "a") as f:
        f["text_embeddings"] = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    deck = os.path.join(w, "deck.yaml")
    open(deck, "w").write(DECK.format(w=w))
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    for cmd in ([a.stsae, "train", deck], [a.stsae, "eval", deck], [a.stsae, "report", f"{w}/run"]):
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if p.returncode:
            print(p.stdout[-3000:], p.stderr[-3000:])
            raise SystemExit(f"FAIL: {' '.join(cmd)} exited {p.returncode}")
    jobs = {os.path.basename(os.path.dirname(p)): summary(p)
            for p in sorted(glob.glob(f"{w}/run/jobs/*/model.h5"))}
    rows = [{k: v for k, v in r.items() if k not in TIMINGS} for r in csv.DictReader(open(f"{w}/run/results.csv"))]
    return {"jobs": jobs, "results": rows}


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def close(got, want, tol):
    if want == got or (isinstance(want, float) and math.isnan(want) and math.isnan(got)):
        return 0.0
    return abs(got - want) / max(abs(want), 1.0) if tol is not None else math.inf


def compare(got, want, tol):
    """Every difference beyond tol (relative to max(|want|, 1)); returns the list and the worst."""
    bad, worst = [], 0.0
    if sorted(got["jobs"]) != sorted(want["jobs"]):
        return [f"jobs differ: {sorted(got['jobs'])} vs {sorted(want['jobs'])}"], math.inf
    for j, g in got["jobs"].items():
        for k, gv in g.items():
            wv = want["jobs"][j][k]
            pairs = [(k, gv, wv)] if not isinstance(gv, dict) else \
                [(f"{k}.sum", gv["sum"], wv["sum"]), (f"{k}.sumsq", gv["sumsq"], wv["sumsq"])] + \
                [(f"{k}.sample[{i}]", x, y) for i, (x, y) in enumerate(zip(gv["sample"], wv["sample"]))]
            for name, x, y in pairs:
                e = close(x, y, tol)
                worst = max(worst, e)
                if e > tol:
                    bad.append(f"{j} {name}: {x!r} vs golden {y!r} (rel {e:.1e})")
    if len(got["results"]) != len(want["results"]):
        return bad + [f"results.csv has {len(got['results'])} rows, golden {len(want['results'])}"], math.inf
    for rg, rw in zip(got["results"], want["results"]):
        for c, wv in rw.items():
            gv = rg.get(c)
            x, y = num(gv) if gv is not None else None, num(wv)
            if x is None or y is None:
                if gv != wv:
                    bad.append(f"results.csv {rw.get('job')} {c}: {gv!r} vs golden {wv!r}")
                    worst = math.inf
                continue
            e = close(x, y, tol)
            worst = max(worst, e)
            if e > tol:
                bad.append(f"results.csv {rw.get('job')} {c}: {gv} vs golden {wv} (rel {e:.1e})")
    return bad, worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--exact", action="store_true", help="any difference fails (the golden file's machine)")
    ap.add_argument("--write", action="store_true", help="rewrite the golden file from this build")
    ap.add_argument("--tol", type=float, default=2e-3)
    a = ap.parse_args()
    got = run_all(a, os.path.abspath(a.workdir))
    if a.write:
        os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
        with open(GOLDEN, "w") as f:
            json.dump(got, f, indent=1, sort_keys=True)
        print(f"wrote {GOLDEN}: {len(got['jobs'])} jobs, {len(got['results'])} result rows")
        return 0
    with open(GOLDEN) as f:
        want = json.load(f)
    bad, worst = compare(got, want, 0.0 if a.exact else a.tol)
    for b in bad[:40]:
        print("FAIL " + b)
    print(f"{'FAIL' if bad else 'ok  '} {len(got['jobs'])} jobs and results.csv against {os.path.relpath(GOLDEN, HERE)}:"
          f" worst relative difference {worst:.2e} (tolerance {0.0 if a.exact else a.tol:g}; {len(bad)} beyond)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
