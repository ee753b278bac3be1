"""Writes a small feature file in the layout of SPEC §3 with h5py, for the
training and evaluation tests (no extraction needed).

Tokens are sparse sums of ground-truth atoms that persist over time (each
patch keeps its atoms for a few steps), plus noise, so an SAE has something
to learn and the temporal losses something to find. Labels follow the atoms
that dominate a clip.

usage: make_features.py OUT.h5 [--clips 12 --T 4 --H 2 --W 3 --d 8 --layers 0
                                 --seed 0 --test-frac 0.25 --nan CLIP]
"""
import argparse

import h5py
import numpy as np


def make(path, clips=12, T=4, H=2, W=3, d=8, layers=(0,), seed=0, test_frac=0.25, nan_clip=-1, n_labels=3):
    rng = np.random.default_rng(seed)
    N = H * W
    n_atoms = 4 * d
    atoms = rng.standard_normal((n_atoms, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    labels = rng.integers(0, n_labels, clips).astype(np.int32)
    split = np.zeros(clips, np.uint8)
    n_test = int(round(test_frac * clips))
    split[rng.permutation(clips)[:n_test]] = 1
    feats = {}
    for layer in layers:
        x = np.zeros((clips, T, N, d))
        for c in range(clips):
            # the clip's label favours a block of atoms
            favoured = labels[c] * (n_atoms // n_labels) + rng.integers(0, n_atoms // n_labels, 3)
            for p in range(N):
                act = rng.choice(favoured, 2)
                for t in range(T):
                    if rng.random() < 0.3:
                        act = rng.choice(np.concatenate([favoured, rng.integers(0, n_atoms, 2)]), 2)
                    x[c, t, p] = (atoms[act] * rng.uniform(0.5, 2.0, (2, 1))).sum(0)
        x += 0.05 * rng.standard_normal(x.shape) + 0.3 * (layer + 1)
        feats[layer] = x.astype(np.float16)
    if nan_clip >= 0:
        for layer in layers:
            feats[layer][nan_clip, T // 2, N // 2, d // 2] = np.nan
    with h5py.File(path, "w") as f:
        for layer in layers:
            f.create_dataset(f"features/layer_{layer:02d}", data=feats[layer], chunks=(1, T, N, d))
        f["labels"] = labels
        f["split"] = split
        f["done"] = np.ones(clips, np.uint8)
        f["clip_ids"] = np.array([f"clip{c:04d}" for c in range(clips)], dtype=object).astype(h5py.string_dtype())
        f["label_names"] = np.array([f"action {i}" for i in range(n_labels)], dtype=object).astype(h5py.string_dtype())
        for k, v in dict(T=T, H=H, W=W, N=N, d=d).items():
            f.attrs[k] = v
        f.attrs["layers"] = np.array(layers, np.int32)
        f.attrs["backbone"] = "test"
    return feats, labels, split


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--H", type=int, default=2)
    ap.add_argument("--W", type=int, default=3)
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--layers", type=int, nargs="+", default=[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-frac", type=float, default=0.25)
    ap.add_argument("--nan", type=int, default=-1)
    a = ap.parse_args()
    make(a.out, a.clips, a.T, a.H, a.W, a.d, tuple(a.layers), a.seed, a.test_frac, a.nan)
