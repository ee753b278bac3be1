"""`stsae eval` and `stsae report` end to end, against numpy and scikit-learn
written here: a small grid is trained on a feature file from
tests/ref/make_features.py (with label text embeddings), evaluated on 1 and on
2 ranks (identical files), and every metric of a job is recomputed
independently from model.h5 and the features:

  encode (TopK, or BatchTopK's fixed threshold theta) and decode in numpy
  float64 -> R^2, clip-pooled R^2, L0, dead fraction, lag-1 and its low
  fraction, MonoSemanticity (pairwise formula), top-8 clips, Jaccard, EMA
  smoothing's lag-1; scikit-learn's LogisticRegression(C=1, lbfgs) on
  standardized clip values -> probe accuracy, and the causal ablation with
  its weights; the raw row likewise. results.csv must have every SPEC §6
  column and one row per job plus raw.

With --stsae-emu (the program on the CUDA emulation, cmake/CudaEmu.cmake; on
a GPU machine stsae itself), the same models are evaluated with device: cuda
on 1 and 2 ranks: every number of every eval.h5 within 1e-4 relative of the
CPU's (sums in other orders on the GPU), top-8 clips and timeline latents the
same, and 1 and 2 ranks the same files.
"""
import argparse
import csv
import itertools
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
from make_features import make  # noqa: E402

SPEC_COLUMNS = ("job, variant, lambda, tau, high_frac, seed, r2, r2_clip, lag1, frac_lag1_below_0.3, ms, "
                "purity_mean, purity_max, probe, probe_recon, probe_high, l0, dead_frac, jaccard, ablate_top_10, "
                "ablate_top_50, ablate_top_100, ablate_top_500, ablate_rand_10, ablate_rand_50, ablate_rand_100, "
                "ablate_rand_500, r_at_1, r_at_5, train_tokens_per_s").split(", ")


def encode(x, P, variant, k, theta):
    pre = (x - P["b_dec"]) @ P["W_enc"].T + P["b_enc"]
    a = np.maximum(pre, 0)
    if variant.endswith("+M"):
        return np.where(a > theta, a, 0)
    z = np.zeros_like(a)
    idx = np.argpartition(-a, k - 1, axis=1)[:, :k]
    rows = np.arange(a.shape[0])[:, None]
    z[rows, idx] = a[rows, idx]
    return z


def lag1(z):  # z [clips, T, N, m]
    flat = z.reshape(-1, z.shape[-1])
    mu, var = flat.mean(0), flat.var(0)
    cov = ((z[:, :-1] - mu) * (z[:, 1:] - mu)).mean((0, 1, 2))
    ok = var > 1e-12 * (flat ** 2).mean(0)
    rho = cov[ok] / var[ok]
    return rho.mean(), (rho < 0.3).mean()


def ms_mean(V, E):
    out = []
    for j in range(V.shape[1]):
        lo, hi = V[:, j].min(), V[:, j].max()
        if hi <= lo:
            continue
        w = (V[:, j] - lo) / (hi - lo)
        G = E @ E.T
        W = np.outer(w, w)
        np.fill_diagonal(W, 0)
        if W.sum() > 0:
            out.append((W * G).sum() / W.sum())
    return np.mean(out)


def probe(Xtr, ytr, Xte, yte):
    sc = StandardScaler().fit(Xtr)
    lr = LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000, tol=1e-10, multi_class="multinomial")
    lr.fit(sc.transform(Xtr), ytr)
    return lr, sc, float((lr.predict(sc.transform(Xte)) == yte).mean())


def check(name, got, want, tol, fails):
    err = abs(got - want) / max(abs(want), 1e-12) if want != got else 0.0
    ok = err <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: stsae {got:.6g}, reference {want:.6g} (rel {err:.1e})")
    fails.append(not ok)


def findings_agree(rows, md):
    """results.md's findings section against the same findings computed here
    from results.csv (means over seeds per configuration)."""
    conf = {}
    for r in rows:
        name = re.sub(r"_seed\d+$", "", r["job"])
        conf.setdefault(name, {"variant": r["variant"], "rows": []})["rows"].append(r)

    def mean(name, col):
        v = [float(r[col]) for r in conf[name]["rows"] if r.get(col, "") != ""]
        return float(np.mean(v)) if v else float("nan")
    contrastive = [n for n, c in conf.items() if c["variant"] in ("temporal", "separate", "raster", "temporal+M",
                                                                  "separate+M") and mean(n, "lambda") > 0]
    std = next(n for n, c in conf.items() if c["variant"] == "standard")
    want = {}  # finding: (the parts of its figure, separated by '|'; the verdict)
    d1 = mean(std, "lag1") / mean("raw", "lag1") - 1
    want[1] = (f"{100 * d1:+.1f}%", "yes" if d1 < 0 else "no")
    tm = [n for n in contrastive if conf[n]["variant"] == "temporal+M"]
    best = max(tm, key=lambda n: mean(n, "lambda")) if tm else max(contrastive, key=lambda n: mean(n, "lag1"))
    want[2] = (f"{best} {mean(best, 'lag1'):.3f}", "yes" if mean(best, "lag1") > mean(std, "lag1") else "no")
    groups = {}
    for n in contrastive:
        groups.setdefault(re.sub(r"_lambda[^_]*", "", n), []).append(n)
    groups = {k: sorted(v, key=lambda n: mean(n, "lambda")) for k, v in groups.items() if len(v) > 1}
    mono = [all(mean(b, "r2") <= mean(a, "r2") and mean(b, "lag1") >= mean(a, "lag1") for a, b in zip(g, g[1:]))
            for g in groups.values()]
    want[3] = (f"{sum(mono)} of {len(mono)} monotonic", "yes" if all(mono) else "no")
    pp = 100 * (mean(std, "probe") - mean("raw", "probe"))
    br = max((n for n in conf if n != "raw"), key=lambda n: mean(n, "r_at_1"))
    rb, rr = mean(br, "r_at_1"), mean("raw", "r_at_1")
    fig = f"; R@1 {rb / rr:.2f}x raw" if rr > 0 else f"; R@1 {br} {rb:.3f}, raw 0"
    want[4] = (f"standard {pp:+.1f} pp|{fig}", "yes" if pp >= 0 and rb > rr else "no")
    got = {}
    for line in md.split("## Findings", 1)[-1].split("## Table 1")[0].splitlines():
        c = [x.strip() for x in line.strip("|").split("|")]
        if len(c) == 5 and c[0].isdigit():
            got[int(c[0])] = (c[3], c[4])
    ok = md.index("## Findings") < md.index("## Table 1") and sorted(got) == [1, 2, 3, 4]
    for i, (fig, verdict) in want.items():
        agree = i in got and all(part in got[i][0] for part in fig.split("|")) and got[i][1] == verdict
        print(f"{'ok  ' if agree else 'FAIL'} finding {i}: results.md '{got.get(i)}' vs here ('{fig}', {verdict})")
        ok &= agree
    return ok


def same_eval(f1, f2, tol):
    """The names of the eval.h5 numbers that differ (relative tol; integers:
    exactly), timings aside."""
    bad = []
    for k in f1.attrs:
        u, v = f1.attrs[k], f2.attrs.get(k)
        if k == "train_tokens_per_s" or isinstance(u, str):
            continue
        if v is None or not np.allclose(u, v, rtol=tol, atol=tol * 1e-2, equal_nan=True):
            bad.append(f"{k}: {u} vs {v}")
    for k in f1:
        if k == "seconds":
            continue
        u, v = f1[k][...], f2[k][...]
        exact = k in ("top_clips", "timeline_latents")
        if u.shape != v.shape or not (np.array_equal(u, v) if exact else
                                      np.allclose(u, v, rtol=tol, atol=tol * 1e-2, equal_nan=True)):
            bad.append(f"/{k}: max difference {np.nanmax(np.abs(u - v)) if u.shape == v.shape else 'shape'}")
    return bad


def device_eval(a, deck, w, env, mpi):
    """device: cuda on 1 and 2 ranks against the CPU's 1-rank evaluation."""
    fails = []
    for np_ in (1, 2):
        run = f"{w}/rund{np_}"
        shutil.copytree(f"{w}/run", run, ignore=shutil.ignore_patterns("eval.h5", "results*", "plots"))
        p = subprocess.run(mpi + ["-np", str(np_), a.stsae_emu, "eval", deck, f"run_dir={run}", "device=cuda"],
                           env=env, capture_output=True, text=True)
        if p.returncode or "# device cuda:" not in p.stdout:
            print(p.stdout[-3000:], p.stderr[-3000:])
            raise SystemExit(f"FAIL: eval with device: cuda on {np_} ranks exited {p.returncode} (or no device line)")
    worst = 0.0
    for j in sorted(os.listdir(f"{w}/run/jobs")):
        with h5py.File(f"{w}/run1/jobs/{j}/eval.h5") as f1, h5py.File(f"{w}/rund1/jobs/{j}/eval.h5") as f2:
            bad = same_eval(f1, f2, 1e-4)
            for k in ("r2", "lag1", "ms", "lag1_union", "lag1_ema0.5"):
                if k in f1.attrs and k in f2.attrs:
                    worst = max(worst, abs(f1.attrs[k] - f2.attrs[k]) / max(abs(f1.attrs[k]), 1e-30))
        with h5py.File(f"{w}/rund1/jobs/{j}/eval.h5") as f1, h5py.File(f"{w}/rund2/jobs/{j}/eval.h5") as f2:
            bad2 = same_eval(f1, f2, 0.0)
        print(f"{'FAIL' if bad or bad2 else 'ok  '} eval of {j} on the GPU vs the CPU (1e-4)"
              f"{': ' + '; '.join(bad[:6]) if bad else ''}; 2 ranks vs 1{': ' + '; '.join(bad2[:3]) if bad2 else ''}")
        fails.append(bool(bad or bad2))
    print(f"     worst relative difference of r2, lag1, ms, lag1_union, lag1_ema0.5: {worst:.2e}")
    return fails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--mpi-flags", default="--oversubscribe")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--stsae-emu", help="stsae on the CUDA emulation: also evaluate with device: cuda")
    a = ap.parse_args()
    w = os.path.abspath(a.workdir)
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    feats, labels, split = make(os.path.join(w, "f.h5"), clips=40, T=4, H=3, W=3, d=12, seed=5, test_frac=0.3,
                                n_labels=4)
    rng = np.random.default_rng(0)
    with h5py.File(os.path.join(w, "f.h5"), "a") as f:
        f["text_embeddings"] = rng.standard_normal((4, 6)).astype(np.float32)
    deck = os.path.join(w, "deck.yaml")
    open(deck, "w").write(f"""run_dir: {w}/run
train:
  features: {w}/f.h5
  layer: 0
  expansion: 3
  k: 4
  k_aux: 8
  epochs: 4
  batch_tokens: 72
  batch_clips: 4
  streams: 4
  mix_clips: 2
  seeds: [0, 1]
  progress_every: 1000
  grid:
    - {{variant: standard}}
    - {{variant: standard+M, high_frac: 0.25}}
    - {{variant: temporal, lambda: [0.1, 0.5]}}
eval:
  ablate_n: [2, 5]
  random_draws: 3
  smoothing: [0.5]
""")
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    mpi = [a.mpirun] + a.mpi_flags.split()
    for cmd in ([a.stsae, "train", deck], mpi + ["-np", "2", a.stsae, "eval", deck, f"run_dir={w}/run"],
                [a.stsae, "report", f"{w}/run"]):
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode:
            print(p.stdout[-3000:], p.stderr[-3000:])
            raise SystemExit(f"FAIL: {' '.join(cmd)} exited {p.returncode}")
    # the same evaluation on 1 rank (copy of the models, fresh eval files)
    shutil.copytree(f"{w}/run", f"{w}/run1", ignore=shutil.ignore_patterns("eval.h5", "results*"))
    p = subprocess.run([a.stsae, "eval", deck, f"run_dir={w}/run1"], env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr)
    fails = []
    # MonoSemanticity with imported clip embeddings (eval.embeddings: clip)
    clip_emb = np.random.default_rng(3).standard_normal((40, 5)).astype(np.float32)
    with h5py.File(os.path.join(w, "f.h5"), "a") as f:
        f["clip_embeddings"] = clip_emb
    shutil.copytree(f"{w}/run", f"{w}/runc", ignore=shutil.ignore_patterns("eval.h5", "results*", "plots"))
    p = subprocess.run([a.stsae, "eval", deck, f"run_dir={w}/runc", "eval.embeddings=clip"], env=env,
                       capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr)
    for j in ["raw"] + sorted(os.listdir(f"{w}/run/jobs")):
        e2 = f"{w}/run/{'raw' if j == 'raw' else 'jobs/' + j}/eval.h5"
        e1 = e2.replace("/run/", "/run1/")
        with h5py.File(e1) as f1, h5py.File(e2) as f2:
            eq = lambda u, v: u == v if isinstance(u, str) else np.array_equal(u, v, equal_nan=True)  # noqa: E731
            same = all(eq(f1.attrs[k], f2.attrs[k]) for k in f1.attrs if k != "train_tokens_per_s") and \
                all(eq(f1[k][...], f2[k][...]) for k in f1 if k != "seconds")
        fails.append(not same)
        if not same:
            print(f"FAIL eval of {j}: 1 and 2 ranks differ")
    print(f"{'ok  ' if not any(fails) else 'FAIL'} eval on 1 and 2 ranks: identical files")
    if a.stsae_emu:
        fails += device_eval(a, deck, w, env, mpi)

    # report under 3 ranks: one writer (rank 0), the same results, exit 0 everywhere
    shutil.copytree(f"{w}/run", f"{w}/run3", ignore=shutil.ignore_patterns("results*", "plots"))
    p = subprocess.run(mpi + ["-np", "3", a.stsae, "report", f"{w}/run3"], env=env, capture_output=True, text=True)
    same = p.returncode == 0 and open(f"{w}/run3/results.csv").read() == open(f"{w}/run/results.csv").read() \
        and not [t for t in os.listdir(f"{w}/run3") if t.endswith(".tmp")]
    print(f"{'ok  ' if same else 'FAIL'} report on 3 ranks: exit {p.returncode}, the same results.csv, no temporary")
    fails.append(not same)

    # results.csv: every SPEC column, a row per job and raw
    rows = list(csv.DictReader(open(f"{w}/run/results.csv")))
    missing = [c for c in SPEC_COLUMNS if c not in rows[0]]
    ok = not missing and len(rows) == 9 and rows[0]["job"] == "raw"
    print(f"{'ok  ' if ok else 'FAIL'} results.csv: {len(rows)} rows, missing columns {missing}")
    fails.append(not ok)
    md = open(f"{w}/run/results.md").read()
    ok = all(f"## Table {i}" in md for i in range(1, 7)) and "frontier" in md
    print(f"{'ok  ' if ok else 'FAIL'} results.md has tables 1-6 and the frontier")
    fails.append(not ok)
    fails.append(not findings_agree(rows, md))
    plots = sorted(os.listdir(f"{w}/run/plots")) if os.path.isdir(f"{w}/run/plots") else []
    ok = all(f"{p}.png" in plots for p in ("frontier", "lambda", "ablation", "timelines"))
    print(f"{'ok  ' if ok else 'FAIL'} plots: {plots}")
    fails.append(not ok)

    # independent recomputation
    x = feats[0].astype(np.float64)
    clips, T, N, d = x.shape
    tr, te = np.nonzero(split == 0)[0], np.nonzero(split == 1)[0]
    ytr, yte = labels[tr], labels[te]
    E = x[te].mean((1, 2))
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    with h5py.File(f"{w}/run/raw/eval.h5") as f:
        r = dict(f.attrs)
    lr_, _, acc = probe(x[tr].mean((1, 2)), ytr, x[te].mean((1, 2)), yte)
    check("raw probe", r["probe"], acc, 1e-3, fails)
    check("raw lag1", r["lag1"], lag1(x[te])[0], 1e-5, fails)
    check("raw ms", r["ms"], ms_mean(x[te].mean((1, 2)), E), 1e-4, fails)
    for job in ("standard_seed0", "standard+M_hf0.25_seed1", "temporal_lambda0.5_seed0"):
        path = f"{w}/run/jobs/{job}"
        if not os.path.exists(path):
            job = next(n for n in os.listdir(f"{w}/run/jobs") if n.startswith(job.split("_")[0] + "_") and "seed" in n)
            path = f"{w}/run/jobs/{job}"
        with h5py.File(f"{path}/model.h5") as f:
            P = {k: f["params/" + k][...].astype(np.float64) for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
            s, theta, k, variant = float(f.attrs["scale"]), float(f.attrs["theta"]), int(f.attrs["k"]), f.attrs["variant"]
            m_high = int(f.attrs["m_high"])
        with h5py.File(f"{path}/eval.h5") as f:
            g = dict(f.attrs)
            top_got = f["top_clips"][...]
        m = P["W_enc"].shape[0]
        Z = np.stack([encode((s * x[c]).reshape(-1, d), P, variant, k, theta) for c in range(clips)]).reshape(
            clips, T, N, m)
        xh = (Z.reshape(-1, m) @ P["W_dec"].T + P["b_dec"]).reshape(clips, T, N, d) / s
        xt, ht = x[te].reshape(-1, d), xh[te].reshape(-1, d)
        check(f"{job} r2", g["r2"], 1 - ((xt - ht) ** 2).sum() / ((xt - xt.mean(0)) ** 2).sum(), 1e-4, fails)
        cx, ch = x[te].mean((1, 2)), xh[te].mean((1, 2))
        check(f"{job} r2_clip", g["r2_clip"], 1 - ((cx - ch) ** 2).sum() / ((cx - cx.mean(0)) ** 2).sum(), 1e-4, fails)
        zt = Z[te]
        check(f"{job} l0", g["l0"], (zt != 0).sum(-1).mean(), 1e-6, fails)
        check(f"{job} dead_frac", g["dead_frac"], 1 - (zt != 0).reshape(-1, m).any(0).mean(), 1e-6, fails)
        l1, lo = lag1(zt)
        check(f"{job} lag1", g["lag1"], l1, 1e-4, fails)
        check(f"{job} frac_lag1_below_0.3", g["frac_lag1_below_0.3"], lo, 1e-6, fails)
        V = zt.mean((1, 2))
        check(f"{job} ms", g["ms"], ms_mean(V, E), 1e-4, fails)
        Ec = clip_emb[te] / np.linalg.norm(clip_emb[te], axis=1, keepdims=True)
        with h5py.File(f"{w}/runc/jobs/{job}/eval.h5") as f:
            check(f"{job} ms with /clip_embeddings", f.attrs["ms"], ms_mean(V, Ec.astype(np.float64)), 1e-4, fails)
        top = np.stack([np.argsort(-V[:, j], kind="stable")[:8] for j in range(m)])
        same_top = np.array_equal(top, top_got)
        print(f"{'ok  ' if same_top else 'FAIL'} {job} top-8 clips equal")
        fails.append(not same_top)
        live = np.nonzero((zt != 0).reshape(-1, m).any(0))[0]
        jac = np.mean([len(set(top[i]) & set(top[j])) / len(set(top[i]) | set(top[j]))
                       for i, j in itertools.combinations(live, 2)])
        check(f"{job} jaccard", g["jaccard"], jac, 1e-6, fails)
        Vtr = Z[tr].mean((1, 2))
        lr, sc, acc = probe(Vtr, ytr, V, yte)
        check(f"{job} probe", g["probe"], acc, 1e-3, fails)
        _, _, acc_r = probe(xh[tr].mean((1, 2)), ytr, ch, yte)
        check(f"{job} probe_recon", g["probe_recon"], acc_r, 1e-3, fails)
        if m_high:
            _, _, acc_h = probe(Vtr[:, :m_high], ytr, V[:, :m_high], yte)
            check(f"{job} probe_high", g["probe_high"], acc_h, 1e-3, fails)
        order = np.argsort(-np.linalg.norm(lr.coef_, axis=0), kind="stable")
        for n in (2, 5):
            Va = V.copy()
            Va[:, order[:n]] = 0
            check(f"{job} ablate_top_{n}", g[f"ablate_top_{n}"], float((lr.predict(sc.transform(Va)) == yte).mean()),
                  1e-3, fails)
        if variant == "standard":
            zs = zt.copy()
            for t in range(1, T):
                zs[:, t] = 0.5 * zs[:, t - 1] + 0.5 * zt[:, t]
            check(f"{job} lag1_ema0.5", g["lag1_ema0.5"], lag1(zs)[0], 1e-4, fails)
            # union TopK: at t > 0, the top k of relu(max(pre_t-1, pre_t)) over the union of the supports
            pre = ((s * x).reshape(-1, d) - P["b_dec"]) @ P["W_enc"].T + P["b_enc"]
            pre = pre.reshape(clips, T, N, m)
            zu = Z.copy()
            for c in range(clips):
                for t in range(1, T):
                    for q in range(N):
                        cand = np.nonzero((Z[c, t - 1, q] != 0) | (Z[c, t, q] != 0))[0]
                        a_ = np.maximum(np.maximum(pre[c, t - 1, q, cand], pre[c, t, q, cand]), 0)
                        keep = cand[np.argsort(-a_, kind="stable")[:k]]
                        zu[c, t, q] = 0
                        zu[c, t, q, keep] = np.maximum(np.maximum(pre[c, t - 1, q, keep], pre[c, t, q, keep]), 0)
            check(f"{job} lag1_union", g["lag1_union"], lag1(zu[te])[0], 1e-4, fails)
            _, _, acc_u = probe(zu[tr].mean((1, 2)), ytr, zu[te].mean((1, 2)), yte)
            check(f"{job} probe_union", g["probe_union"], acc_u, 1e-3, fails)
            zs_tr = Z[tr].copy()
            for t in range(1, T):
                zs_tr[:, t] = 0.5 * zs_tr[:, t - 1] + 0.5 * Z[tr][:, t]
            _, _, acc_e = probe(zs_tr.mean((1, 2)), ytr, zs.mean((1, 2)), yte)
            check(f"{job} probe_ema0.5", g["probe_ema0.5"], acc_e, 1e-3, fails)
    # retrieval's label embeddings: the file's; without them the hashed stand-in
    # (text_hash.h), or none with eval.text_stand_in=none (last: the feature
    # file loses its /text_embeddings; the job hashes hold its path)
    with h5py.File(f"{w}/run/raw/eval.h5") as f:
        emb = {"file": (f.attrs.get("text_embedder", ""), float(f.attrs["r_at_1"]))}
    with h5py.File(f"{w}/f.h5", "a") as f:
        del f["text_embeddings"]
    for mode in ("hashed", "none"):
        shutil.copytree(f"{w}/run", f"{w}/runt_{mode}", ignore=shutil.ignore_patterns("eval.h5", "results*", "plots"))
        p = subprocess.run([a.stsae, "eval", deck, f"run_dir={w}/runt_{mode}", f"eval.text_stand_in={mode}"],
                           env=env, capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(p.stderr)
        with h5py.File(f"{w}/runt_{mode}/raw/eval.h5") as f:
            emb[mode] = (f.attrs.get("text_embedder", ""), float(f.attrs.get("r_at_1", np.nan)))
    ok = ("/text_embeddings" in emb["file"][0] and "hashed" in emb["hashed"][0] and np.isfinite(emb["hashed"][1])
          and emb["none"][0] == "" and np.isnan(emb["none"][1]))
    print(f"{'ok  ' if ok else 'FAIL'} label text embeddings: file / stand-in / none: {emb}")
    fails.append(not ok)

    print(f"eval: {'FAILED' if any(fails) else 'passed'}")
    sys.exit(1 if any(fails) else 0)


if __name__ == "__main__":
    main()
