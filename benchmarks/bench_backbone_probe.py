#!/usr/bin/python3
"""Which download-free backbone lets the demo's clip-pooled features tell the
synthetic actions apart: the linear probe on raw features, per backbone.

The demo's synthetic set (inputs/demo.yaml's synth section) is extracted by
`stsae extract` with the `pixels` backbone (16 frames at 64 px, patch 16) and
the `motion` backbone (the demo's own extract section); from the pixel tokens
this script also builds
  random-tubelet  a fixed random projection (seed 0, Gaussian / sqrt(fan-in),
                  bias N(0, 0.25)) of each 2-frame tubelet, then ReLU: d = 768;
  random-videomae a random-weight VideoMAE (transformers' VideoMAEModel, seed
                  0: 768 wide, 4 blocks, tubelet 2), every hidden state;
                  only where `transformers` and `torch` import in a second
                  Python (--venv-python), else said and skipped.
Each clip's value is the mean over its tokens (SPEC §2); the probe is a
multinomial logistic regression (scikit-learn, C = 1, standardized features)
on the deck's train split, accuracy on its test split, against chance 1/14.

  /usr/bin/python3 benchmarks/bench_backbone_probe.py --stsae build/stsae \
      [--workdir /tmp/bench_bb] [--venv-python ~/.cache/stsae/venv-saelens/bin/python]

One line per backbone: accuracy, x chance, token width.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DECK = os.path.join(ROOT, "inputs", "demo.yaml")

VIDEOMAE = r"""
import sys, numpy as np, torch
from transformers import VideoMAEConfig, VideoMAEModel
torch.manual_seed(0)
P = np.load(sys.argv[1])["P"]
cfg = VideoMAEConfig(image_size=64, patch_size=16, num_frames=16, tubelet_size=2, hidden_size=768,
                     num_hidden_layers=4, num_attention_heads=12, intermediate_size=3072)
m = VideoMAEModel(cfg).eval()
outs = []
with torch.no_grad():
    for i in range(0, len(P), 32):
        o = m(torch.from_numpy(P[i:i + 32]), output_hidden_states=True)
        outs.append([h.mean(1).numpy() for h in o.hidden_states])
np.savez(sys.argv[2], **{f"l{l}": np.concatenate([o[l] for o in outs]) for l in range(len(outs[0]))})
"""


def stsae(binary, *args):
    subprocess.run([binary, *args], check=True, stdout=subprocess.DEVNULL)


def probe(F, y, split):
    tr, te = split == 0, split == 1
    s = StandardScaler().fit(F[tr])
    m = LogisticRegression(C=1.0, max_iter=3000).fit(s.transform(F[tr]), y[tr])
    return m.score(s.transform(F[te]), y[te])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--venv-python", default=os.path.expanduser("~/.cache/stsae/venv-saelens/bin/python"))
    a = ap.parse_args()
    w = os.path.abspath(a.workdir or tempfile.mkdtemp(prefix="stsae-bench-bb-"))
    os.makedirs(w, exist_ok=True)
    stsae(a.stsae, "synth", DECK, f"run_dir={w}")
    stsae(a.stsae, "extract", DECK, f"run_dir={w}", "extract.out=motion.h5")
    stsae(a.stsae, "extract", DECK, f"run_dir={w}", "extract.out=pixels.h5", "extract.backbone=pixels")
    with h5py.File(f"{w}/pixels.h5") as f:
        X = f["features/layer_00"][()].astype(np.float32)      # [C, 16, 16, 768]
        y, split = f["labels"][()], f["split"][()]
    with h5py.File(f"{w}/motion.h5") as f:
        M = f["features/layer_00"][()].astype(np.float32)
    C, T = X.shape[:2]
    rows = [("pixels (T = 16)", probe(X.mean(axis=(1, 2)), y, split), X.shape[-1]),
            ("motion", probe(M.mean(axis=(1, 2)), y, split), M.shape[-1])]
    # frames [C, T, 3, 64, 64] from the 4 x 4 grid of 16 px patches, (c, row, col) per token
    P = X.reshape(C, T, 4, 4, 3, 16, 16).transpose(0, 1, 4, 2, 5, 3, 6).reshape(C, T, 3, 64, 64)
    U = P.reshape(C, T // 2, 2, 3, 4, 16, 4, 16).transpose(0, 1, 4, 6, 2, 3, 5, 7).reshape(C, T // 2, 16, 1536)
    rng = np.random.default_rng(0)
    W = rng.standard_normal((1536, 768)).astype(np.float32) / np.sqrt(1536)
    b = rng.standard_normal(768).astype(np.float32) * 0.5
    rows.append(("random-tubelet", probe(np.maximum(U @ W + b, 0).mean(axis=(1, 2)), y, split), 768))
    np.savez(f"{w}/frames.npz", P=P)
    if os.path.exists(a.venv_python):
        with open(f"{w}/videomae.py", "w") as f:
            f.write(VIDEOMAE)
        r = subprocess.run([a.venv_python, f"{w}/videomae.py", f"{w}/frames.npz", f"{w}/videomae.npz"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            v = np.load(f"{w}/videomae.npz")
            for k in sorted(v.files, key=lambda s: int(s[1:])):
                rows.append((f"random-videomae hidden_states[{k[1:]}]", probe(v[k], y, split), 768))
        else:
            print(f"random-videomae skipped: {a.venv_python} failed: {r.stderr.strip()[-300:]}")
    else:
        print(f"random-videomae skipped: no {a.venv_python} (a Python with torch and transformers)")
    chance = 1.0 / len(np.unique(y))
    print(f"{C} clips, {int((split == 1).sum())} test, chance {chance:.3f}")
    print("| backbone | d | raw probe | x chance |\n|---|---:|---:|---:|")
    for name, acc, d in rows:
        print(f"| {name} | {d} | {acc:.3f} | {acc / chance:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
