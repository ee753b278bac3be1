"""The plots of a run (called by `stsae report RUN_DIR`; also by hand:
/usr/bin/python3 analysis/plots.py RUN_DIR). Reads RUN_DIR/results.h5 and
writes RUN_DIR/plots/*.png:

  frontier.png   R^2 vs lag-1 of every configuration (mean over seeds), by
                 variant, labelled with lambda / tau, the Pareto front drawn
  lambda.png     probe accuracy and lag-1 against lambda (tau 0.1) per
                 contrastive variant, the standard SAE and raw features as lines
  ablation.png   probe accuracy with the top-n (solid) or n random (dashed)
                 latents zeroed, for the best configuration of each variant
  timelines.png  activation of the 8 most active latents over the frames of
                 one test clip, each at its busiest position, standard vs
                 temporal+M (the flicker figure: 0 = not kept)
  montage_*.png  the top-8 clips of chosen features, frames from the videos
                 (when results.h5 holds /montage, written by stsae report)
"""
import os
import sys

import h5py
import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(run_dir):
    with h5py.File(os.path.join(run_dir, "results.h5")) as f:
        cols = [c.decode() if isinstance(c, bytes) else c for c in f["columns"][...]]
        rows = [r.decode() if isinstance(r, bytes) else r for r in f["rows"][...]]
        variants = [v.decode() if isinstance(v, bytes) else v for v in f["variants"][...]]
        table = f["table"][...]
        per = {}
        if "per_latent" in f:
            for job in f["per_latent"]:
                per[job] = {k: f["per_latent"][job][k][...] for k in f["per_latent"][job]}
        montage = {k: f["montage"][k][...] for k in f["montage"]} if "montage" in f else None
    return cols, rows, variants, table, per, montage


def configs(cols, rows, variants, table):
    """Mean over seeds per configuration (the job name without _seedN)."""
    out = {}
    for r, job in enumerate(rows):
        name = job.rsplit("_seed", 1)[0]
        out.setdefault(name, {"variant": variants[r], "rows": []})["rows"].append(r)
    for name, c in out.items():
        c["mean"] = {col: np.nanmean(table[c["rows"], i]) if not np.all(np.isnan(table[c["rows"], i])) else np.nan
                     for i, col in enumerate(cols)}
    return out


def colours(variants):
    vs = sorted(set(variants))
    cmap = plt.get_cmap("tab10")
    return {v: cmap(i % 10) for i, v in enumerate(vs)}


def frontier(cfg, out):
    pts = [(c["mean"].get("r2", np.nan), c["mean"].get("lag1", np.nan), n, c) for n, c in cfg.items()]
    pts = [p for p in pts if not np.isnan(p[0]) and not np.isnan(p[1])]
    if not pts:
        return
    col = colours([p[3]["variant"] for p in pts])
    fig, ax = plt.subplots(figsize=(8, 6))
    for r2, l1, name, c in pts:
        ax.scatter(r2, l1, color=col[c["variant"]], s=30)
        lab = []
        if not np.isnan(c["mean"].get("lambda", np.nan)):
            lab.append(f"λ{c['mean']['lambda']:g}")
        if not np.isnan(c["mean"].get("tau", np.nan)):
            lab.append(f"τ{c['mean']['tau']:g}")
        if lab:
            ax.annotate(" ".join(lab), (r2, l1), fontsize=6, xytext=(3, 2), textcoords="offset points")
    front = sorted([p for p in pts if not any(q[0] >= p[0] and q[1] >= p[1] and (q[0] > p[0] or q[1] > p[1])
                                               for q in pts)])
    ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1, label="Pareto front")
    for v, c in col.items():
        ax.scatter([], [], color=c, label=v)
    ax.set_xlabel("R² (held-out tokens)")
    ax.set_ylabel("lag-1 temporal coherence")
    ax.set_title("Reconstruction vs temporal coherence")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "frontier.png"), dpi=120)
    plt.close(fig)


def by_lambda(cfg, out):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    col = colours([c["variant"] for c in cfg.values()])
    drawn = False
    for v in sorted({c["variant"] for c in cfg.values()}):
        pts = sorted((c["mean"]["lambda"], c["mean"].get("probe", np.nan), c["mean"].get("lag1", np.nan))
                     for c in cfg.values() if c["variant"] == v and not np.isnan(c["mean"].get("lambda", np.nan))
                     and abs(c["mean"].get("tau", 0.1) - 0.1) < 1e-9)
        if len(pts) < 1:
            continue
        drawn = True
        lam = [p[0] for p in pts]
        axes[0].plot(lam, [p[1] for p in pts], "o-", color=col[v], label=v)
        axes[1].plot(lam, [p[2] for p in pts], "o-", color=col[v], label=v)
    for name, ls in (("standard", "--"), ("raw", ":")):
        if name in cfg:
            for i, key in enumerate(("probe", "lag1")):
                val = cfg[name]["mean"].get(key, np.nan)
                if not np.isnan(val):
                    axes[i].axhline(val, ls=ls, color="grey", label=name)
    if not drawn:
        plt.close(fig)
        return
    for ax, key in zip(axes, ("linear-probe accuracy", "lag-1 coherence")):
        ax.set_xscale("log")
        ax.set_xlabel("λ (τ = 0.1)")
        ax.set_ylabel(key)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "lambda.png"), dpi=120)
    plt.close(fig)


def ablation(cfg, out):
    ns = sorted({int(k.rsplit("_", 1)[1]) for c in cfg.values() for k in c["mean"] if k.startswith("ablate_top_")})
    if not ns:
        return
    best = {}
    for name, c in cfg.items():
        p = c["mean"].get("probe", np.nan)
        if np.isnan(c["mean"].get(f"ablate_top_{ns[0]}", np.nan)):
            continue
        if c["variant"] not in best or p > best[c["variant"]][1]["mean"]["probe"]:
            best[c["variant"]] = (name, c)
    col = colours(list(best))
    fig, ax = plt.subplots(figsize=(7, 5))
    for v, (name, c) in sorted(best.items()):
        x = [0] + ns
        ax.plot(x, [c["mean"]["probe"]] + [c["mean"][f"ablate_top_{n}"] for n in ns], "o-", color=col[v], label=name)
        ax.plot(x, [c["mean"]["probe"]] + [c["mean"][f"ablate_rand_{n}"] for n in ns], "x--", color=col[v])
    ax.set_xscale("symlog", linthresh=max(ns[0], 1))
    ax.set_xlabel("latents zeroed (solid: top by probe weight; dashed: random)")
    ax.set_ylabel("probe accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "ablation.png"), dpi=120)
    plt.close(fig)


def timelines(rows, per, out):
    pick = []
    for want in ("standard", "temporal+M"):
        job = next((r for r in rows if r.startswith(want + "_") and r in per and "timeline" in per[r]), None)
        if job:
            pick.append(job)
    if not pick:
        return
    fig, axes = plt.subplots(1, len(pick), figsize=(6 * len(pick), 4), squeeze=False)
    for ax, job in zip(axes[0], pick):
        tl, lat = per[job]["timeline"], per[job]["timeline_latents"]
        for q in range(tl.shape[1]):
            ax.plot(np.arange(tl.shape[0]), tl[:, q], "-o", ms=3, label=f"latent {int(lat[q])}")
        ax.set_title(job)
        ax.set_xlabel("frame (time step)")
        ax.set_ylabel("activation at the latent's busiest position")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "timelines.png"), dpi=120)
    plt.close(fig)


def montages(montage, out):
    if not montage:
        return
    frames, jobs, lat = montage["frames"], montage["jobs"], montage["latents"]
    for i in range(frames.shape[0]):
        job = jobs[i].decode() if isinstance(jobs[i], bytes) else str(jobs[i])
        fig, axes = plt.subplots(1, frames.shape[1], figsize=(2 * frames.shape[1], 2.3))
        for c in range(frames.shape[1]):
            axes[c].imshow(frames[i, c])
            axes[c].axis("off")
        fig.suptitle(f"{job}: latent {int(lat[i])}, top-{frames.shape[1]} clips", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"montage_{job}_latent{int(lat[i])}.png"), dpi=100)
        plt.close(fig)


def main():
    run_dir = sys.argv[1]
    out = os.path.join(run_dir, "plots")
    os.makedirs(out, exist_ok=True)
    cols, rows, variants, table, per, montage = load(run_dir)
    cfg = configs(cols, rows, variants, table)
    frontier(cfg, out)
    by_lambda(cfg, out)
    ablation(cfg, out)
    timelines(rows, per, out)
    montages(montage, out)
    print(f"plots: {', '.join(sorted(os.listdir(out)))} in {out}")


if __name__ == "__main__":
    main()
