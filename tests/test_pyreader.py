"""analysis/stsae.py (the Python reader) against stsae itself.

A small grid (standard, standard+M, temporal, sparsemax, entmax15) is trained,
evaluated and reported by the real `stsae` on a feature file from
tests/ref/make_features.py; then, for every job, the reader's codes and
reconstructions of every token of every clip are compared with stsae's own
encode and decode of the same tokens (tests/pyreader_encode.c: model_load,
x * s, sae_encode with theta, sae_decode, * 1/s, exactly eval's path), to
1e-5 of the largest value; and the reader's view of eval's outputs is checked
against what it recomputes: eval.h5's mean_clip_value (the mean clip value
of each latent over the test clips), the timeline of the first test clip,
l0 and r2; results.csv's and results.h5's rows and per-latent arrays.

--plant NAME breaks the reader on purpose (the planted tests must then fail):
  no_scale      encode without the input scale s (tokens not multiplied by s)
  no_unscale    decode without dividing by s
  theta_topk    BatchTopK jobs encoded with TopK (the training selection's
                per-token form) instead of the evaluation threshold theta
"""
import argparse
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "ref"))
sys.path.insert(0, os.path.join(HERE, "..", "analysis"))
from make_features import make  # noqa: E402

import stsae  # noqa: E402

TOL = 1e-5


def plant(name):
    if name == "no_scale":
        orig_pre = stsae.Model.pre_activations

        def pre(self, x):
            s, self.scale = self.scale, np.float32(1)
            try:
                return orig_pre(self, x)
            finally:
                self.scale = s

        stsae.Model.pre_activations = pre
    elif name == "no_unscale":
        orig_dec = stsae.Model.decode

        def dec(self, z, n_latents=None):
            return orig_dec(self, z, n_latents) * self.scale

        stsae.Model.decode = dec
    elif name == "theta_topk":
        stsae.Model.selection = property(lambda self: "topk" if self.variant.endswith("+M") else
                                         self.variant if self.variant in ("sparsemax", "entmax15") else "topk")
    elif name:
        raise SystemExit(f"unknown plant {name}")


def report(name, diff, scale, fails, tol=TOL):
    rel = diff / max(scale, 1e-30)
    ok = rel <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |diff| {diff:.3e} (relative to max |value| {scale:.3e}: {rel:.1e})")
    fails.append(not ok)
    return rel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--encode", required=True, help="tests/pyreader_encode.c built")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--plant", default="")
    a = ap.parse_args()
    plant(a.plant)
    w = os.path.abspath(a.workdir)
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    feats, labels, split = make(os.path.join(w, "f.h5"), clips=24, T=4, H=3, W=3, d=12, seed=7, test_frac=0.3,
                                n_labels=3)
    deck = os.path.join(w, "deck.yaml")
    open(deck, "w").write(f"""run_dir: {w}/run
train:
  features: {w}/f.h5
  layer: 0
  expansion: 4
  k: 5
  k_aux: 8
  epochs: 3
  batch_tokens: 72
  batch_clips: 4
  streams: 4
  mix_clips: 2
  seeds: [0]
  progress_every: 1000
  grid:
    - {{variant: standard}}
    - {{variant: standard+M, high_frac: 0.25}}
    - {{variant: temporal, lambda: 0.5}}
    - {{variant: sparsemax, T_s: 0.5}}
    - {{variant: entmax15, T_s: 0.5}}
eval:
  ablate_n: [2]
  random_draws: 2
  smoothing: [0.5]
""")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for cmd in ([a.stsae, "train", deck], [a.stsae, "eval", deck], [a.stsae, "report", f"{w}/run"]):
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode:
            print(p.stdout[-3000:], p.stderr[-3000:])
            raise SystemExit(f"FAIL: {' '.join(cmd)} exited {p.returncode}")

    fails = []
    run = stsae.Run(f"{w}/run")
    jobs = run.jobs()
    print(f"jobs: {jobs}")
    ok = len(jobs) == 5
    print(f"{'ok  ' if ok else 'FAIL'} Run.jobs() lists the 5 trained jobs")
    fails.append(not ok)
    x = feats[0].astype(np.float16).astype(np.float32)  # the file's float16 values
    clips, T, N, d = x.shape
    te = np.nonzero(split == 1)[0]
    tokens = os.path.join(w, "tokens.h5")
    with h5py.File(tokens, "w") as f:
        f["x"] = x.reshape(-1, d)
    # the reader reads the feature file itself
    ok = np.array_equal(stsae.read_clip(f"{w}/f.h5", 0, 3), x[3])
    print(f"{'ok  ' if ok else 'FAIL'} read_clip equals the file's clip")
    fails.append(not ok)
    worst = 0.0
    for job in jobs:
        m = run.model(job)
        out = os.path.join(w, f"{job}.stsae.h5")
        p = subprocess.run([a.encode, m.path, tokens, out], capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f"FAIL: {a.encode} exited {p.returncode}: {p.stderr}")
        with h5py.File(out) as f:
            z_c, xh_c = f["z"][...], f["xhat"][...]
        z = m.encode(x.reshape(-1, d))
        xh = m.decode(z)
        print(f"-- {m!r}, selection {m.selection}, theta {float(m.theta):.4g}, "
              f"L0 {np.count_nonzero(z_c) / len(z_c):.2f}")
        worst = max(worst, report(f"{job} codes", float(np.abs(z - z_c).max()), float(np.abs(z_c).max()), fails))
        same_support = np.array_equal(z != 0, z_c != 0)
        print(f"{'ok  ' if same_support else 'FAIL'} {job} the same kept latents for every token")
        fails.append(not same_support)
        worst = max(worst, report(f"{job} reconstructions", float(np.abs(xh - xh_c).max()), float(np.abs(xh_c).max()),
                                  fails))
        # eval.h5 through the reader, against the reader's own codes
        ev = run.eval(job)
        Z = z.reshape(clips, T, N, m.m)
        V = Z[te].mean((1, 2))  # clip values (mean over tokens), test clips
        report(f"{job} eval.h5 mean_clip_value", float(np.abs(V.mean(0) - ev["mean_clip_value"]).max()),
               float(np.abs(ev["mean_clip_value"]).max()), fails)
        lat = ev["timeline_latents"].astype(int)
        zc = Z[te[0]]
        tl = np.zeros((T, len(lat)), np.float32)
        for q, j in enumerate(lat):
            pb = int(np.argmax(zc[:, :, j].sum(0)))
            tl[:, q] = zc[:, pb, j]
        report(f"{job} eval.h5 timeline", float(np.abs(tl - ev["timeline"]).max()),
               float(np.abs(ev["timeline"]).max()), fails)
        l0 = np.count_nonzero(Z[te]) / (len(te) * T * N)
        report(f"{job} eval.h5 l0", abs(l0 - ev.attrs["l0"]), abs(ev.attrs["l0"]), fails)
        xt = x[te].reshape(-1, d).astype(np.float64) * float(m.scale)
        ht = xh.reshape(clips, T, N, d)[te].reshape(-1, d).astype(np.float64) * float(m.scale)
        r2 = 1 - ((xt - ht) ** 2).sum() / ((xt - xt.mean(0)) ** 2).sum()
        report(f"{job} eval.h5 r2", abs(r2 - ev.attrs["r2"]), 1.0, fails)
    # results.csv and results.h5
    rows = run.results()
    ok = [r["job"] for r in rows] == ["raw"] + sorted(jobs) or sorted(r["job"] for r in rows) == sorted(["raw"] + jobs)
    print(f"{'ok  ' if ok else 'FAIL'} results.csv: rows {[r['job'] for r in rows]}")
    fails.append(not ok)
    res = run.results_h5()
    ok = sorted(res["rows"]) == sorted(r["job"] for r in rows) and res["table"].shape == (len(rows), len(res["columns"]))
    for r in rows:
        i = res["rows"].index(r["job"])
        for c in ("r2", "l0", "probe"):
            if c in res["columns"]:
                u, v = res["table"][i, res["columns"].index(c)], r[c]
                ok = ok and (np.isnan(u) and np.isnan(v) or abs(u - v) <= 1e-5 * max(1, abs(v)))  # results.csv: 6 digits
    for job in jobs:
        ev = run.eval(job)
        ok = ok and all(np.allclose(res["per_latent"][job][k], ev[k].astype(np.float32), equal_nan=True) for k in
                        ("rho", "ms", "mean_clip_value") if k in ev)
    print(f"{'ok  ' if ok else 'FAIL'} results.h5: rows, table and per-latent arrays agree with results.csv and eval.h5")
    fails.append(not ok)
    print(f"largest relative difference of codes and reconstructions: {worst:.1e} (tolerance {TOL:g})")
    if any(fails):
        raise SystemExit(f"FAIL: {sum(fails)} of {len(fails)} checks")
    print(f"ok: {len(fails)} checks")


if __name__ == "__main__":
    main()
