"""The label-free metrics of SPEC §2 (src/metrics/metrics.c, through `stsae
check-metrics`) against numpy brute force written here from the SPEC's
formulas: lag-1 coherence per latent and its summaries, MonoSemanticity by the
pairwise sum over clips c != c', top-8 clips (stable ties), action purity,
Jaccard uniqueness over all pairs of live latents, L0, clip values (mean and
max), and the EMA smoothing by its recurrence. Random sparse codes with
persistent supports, a dead latent, a constant latent and tied clip values.
And the reconstruction R² (src/metrics/r2.c), streamed and whole, against
scikit-learn's r2_score(multioutput="variance_weighted") and a float64 numpy
formula, on rows with a constant channel and channels scaled 1e-3 .. 1e3.
"""
import argparse
import itertools
import os
import subprocess
import sys

import h5py
import numpy as np
from sklearn.metrics import r2_score


def make_case(rng, clips, T, N, m, e, use_max):
    Z = np.zeros((clips, T, N, m), np.float32)
    for c in range(clips):
        for p in range(N):
            sup = rng.choice(m - 2, 3, replace=False)
            for t in range(T):
                if rng.random() < 0.3:
                    sup = rng.choice(m - 2, 3, replace=False)
                Z[c, t, p, sup] = rng.uniform(0.1, 2.0, 3)
    Z[:, :, :, m - 1] = 0.0          # dead
    Z[:, :, :, m - 2] = 0.5          # constant: zero variance
    Z[3] = Z[2]                      # tied clip values
    labels = rng.integers(0, 3, clips)
    E = rng.standard_normal((clips, e))
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    return Z, labels, E.astype(np.float32)


def reference(Z, labels, E, a, use_max):
    clips, T, N, m = Z.shape
    z = Z.astype(np.float64)
    flat = z.reshape(-1, m)
    mu, var = flat.mean(0), flat.var(0)
    cov = ((z[:, :-1] - mu) * (z[:, 1:] - mu)).mean((0, 1, 2))
    live_var = var > 1e-12 * (flat ** 2).mean(0)
    rho = np.where(live_var, cov / np.where(live_var, var, 1), np.nan)
    V = z.max((1, 2)) if use_max else z.mean((1, 2))
    ms = np.full(m, np.nan)
    for j in range(m):
        lo, hi = V[:, j].min(), V[:, j].max()
        if hi <= lo:
            continue
        w = (V[:, j] - lo) / (hi - lo)
        num = den = 0.0
        for c in range(clips):
            for c2 in range(clips):
                if c != c2:
                    num += w[c] * w[c2] * float(E[c] @ E[c2])
                    den += w[c] * w[c2]
        ms[j] = num / den if den > 0 else np.nan
    top = np.stack([np.argsort(-V[:, j], kind="stable")[:8] for j in range(m)])
    order = np.argsort(-V.mean(0), kind="stable")[:3]
    pur = [max(np.sum(labels[top[j]] == labels[top[j][q]]) for q in range(8)) / 8 for j in order]
    live = (flat != 0).any(0)
    idx = np.nonzero(live)[0]
    jac = [len(set(top[i]) & set(top[j])) / len(set(top[i]) | set(top[j])) for i, j in itertools.combinations(idx, 2)]
    ema = np.zeros_like(z)
    ema[:, 0] = z[:, 0]
    for t in range(1, T):
        ema[:, t] = a * ema[:, t - 1] + (1 - a) * z[:, t]
    ok = ~np.isnan(rho)
    return dict(rho=rho, lag1=rho[ok].mean(), frac_low=(rho[ok] < 0.3).mean(), ms=ms, ms_mean=np.nanmean(ms),
                top_clips=top, purity_mean=np.mean(pur), purity_max=np.max(pur), jaccard=np.mean(jac),
                l0=(flat != 0).sum(1).mean(), ema_codes=ema, clip_values=V)


def make_r2_case(rng, n, d):
    """Inputs x [n, d] (a constant channel, reconstructed exactly, scales 1e-3 ..
    1e3, an offset) and a reconstruction xhat with errors of a few percent, both
    float32."""
    scale = 10.0 ** rng.uniform(-3, 3, d)
    x = rng.standard_normal((n, d)) * scale + rng.uniform(-5, 5, d) * scale
    x[:, 0] = 2.5
    xhat = x + rng.standard_normal((n, d)) * 0.1 * scale
    xhat[:, 0] = x[:, 0]  # r2_score leaves a constant channel's errors out; ours counts them
    return x.astype(np.float32), xhat.astype(np.float32)


def r2_reference(x, xhat):
    x, xhat = x.astype(np.float64), xhat.astype(np.float64)
    ours = 1 - ((x - xhat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    return ours, r2_score(x, xhat, multioutput="variance_weighted")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    fails = 0
    for seed, (clips, T, N, m, e, use_max, ema) in enumerate(
            [(12, 4, 3, 10, 5, 0, 0.5), (10, 5, 2, 14, 7, 1, 0.8), (16, 3, 4, 9, 4, 0, 0.8)]):
        rng = np.random.default_rng(seed)
        Z, labels, E = make_case(rng, clips, T, N, m, e, use_max)
        inp, out = os.path.join(a.workdir, f"in{seed}.h5"), os.path.join(a.workdir, f"out{seed}.h5")
        with h5py.File(inp, "w") as f:
            f["codes"] = Z
            f["labels"] = labels.astype(np.float32)
            f["embeddings"] = E
            f.attrs["ema"] = ema
            f.attrs["use_max"] = use_max
            x, xhat = make_r2_case(rng, clips * T * N + seed, 3 + 2 * seed)
            f["x"], f["xhat"] = x, xhat
        p = subprocess.run([a.stsae, "check-metrics", inp, out], capture_output=True, text=True)
        if p.returncode:
            print(p.stderr)
            fails += 1
            continue
        ref = reference(Z, labels, E, ema, use_max)
        with h5py.File(out) as f:
            for k, v in ref.items():
                got = f[k][...]
                v = np.asarray(v, np.float64)
                if k == "top_clips":
                    err = float(np.abs(got - v).max())
                else:
                    both_nan = np.isnan(got) & np.isnan(v)
                    if (np.isnan(got) != np.isnan(v)).any():
                        err = np.inf
                    else:
                        d = np.abs(np.where(both_nan, 0, got) - np.where(both_nan, 0, v))
                        err = float(d.max() / max(np.abs(np.where(both_nan, 0, v)).max(), 1e-12))
                tol = 0 if k == "top_clips" else 1e-5
                ok = err <= tol
                fails += not ok
                if not ok or k in ("lag1", "ms_mean", "jaccard", "purity_mean"):
                    print(f"{'ok  ' if ok else 'FAIL'} case {seed} {k}: rel err {err:.1e}"
                          + (f" (value {float(np.nanmean(v)):.4f})" if np.ndim(v) == 0 else ""))
        with h5py.File(out) as f:
            numpy_r2, sklearn_r2 = r2_reference(x, xhat)
            for k in ("r2", "r2_rows"):
                got = float(f[k][()])
                err = max(abs(got - numpy_r2), abs(got - sklearn_r2))
                ok = err <= 1e-9
                fails += not ok
                print(f"{'ok  ' if ok else 'FAIL'} case {seed} {k}: {got:.12f}, numpy {numpy_r2:.12f}, "
                      f"sklearn {sklearn_r2:.12f} (abs err {err:.1e})")
    print(f"metrics: {'FAILED' if fails else 'passed'}")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
