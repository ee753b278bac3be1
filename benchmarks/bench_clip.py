#!/usr/bin/python3
"""CLIP image embeddings per second: stsae's vision tower (`stsae check-clip`)
against `transformers`' CLIPModel on the same CPU cores (issue 15's target: >= 1.0x).

  /usr/bin/python3 benchmarks/bench_clip.py --stsae build/stsae
        [--venv ~/.cache/stsae/venv-saelens] [--threads 2] [--images 32] [--rounds 3]
        [--workdir /tmp/bench_clip]

The model has ViT-B/32's shapes (CLIPConfig's defaults: vision 768 wide, 12
blocks, 224 px, patch 32; projection 512) with transformers' random
initialisation (std 0.02: activations of a trained model's size), made by
`transformers` in the cached venv (tests/ref/clip_ref.py); the vocabulary is the
real one (tests/test_clip.py gets it). Both sides embed the same random
preprocessed images in float32 on --threads threads: stsae's time is the
forward as check-clip reports it (the model's loading excluded), transformers'
one `visual_projection(vision_model(pixels).pooler_output)` over all images in
one batch under torch.no_grad() after a warm-up pass; the rounds alternate
the two and the best and the median round of each are reported (a shared VM's
neighbours move single rounds by 30%), with the largest difference
of the embeddings (relative to their largest value) as a check.
"""
import argparse
import json
import os
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
from bench_peers import machine  # noqa: E402
from test_clip import clip_vocabulary  # noqa: E402
from venv_cache import venv_python  # noqa: E402

TORCH_WORKER = r"""
import sys, time, numpy as np, torch
from transformers import CLIPModel
model_dir, pixels, threads, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
model = CLIPModel.from_pretrained(model_dir).float().eval()
x = torch.from_numpy(np.load(pixels))
with torch.no_grad():
    model.visual_projection(model.vision_model(pixel_values=x[:2]).pooler_output)  # warm-up
    t0 = time.perf_counter()
    e = model.visual_projection(model.vision_model(pixel_values=x).pooler_output)
    dt = time.perf_counter() - t0
np.save(out, e.numpy())
print(dt)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--venv", default=os.path.expanduser("~/.cache/stsae/venv-saelens"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/bench_clip")
    a = ap.parse_args()
    py, why = venv_python(os.path.abspath(a.venv), "sae_lens", "sae-lens")
    if not py:
        sys.exit(f"no venv with transformers: {why}")
    files, why = clip_vocabulary(py, os.path.join(os.path.abspath(a.venv), "stsae-data"))
    if not files:
        sys.exit(why)
    os.makedirs(a.workdir, exist_ok=True)
    model = os.path.join(a.workdir, "clip_b32_default_init")
    if not os.path.exists(os.path.join(model, "model.safetensors")):
        os.makedirs(model, exist_ok=True)
        open(os.path.join(model, "vocab.json"), "w", encoding="utf-8").write(files[0])
        open(os.path.join(model, "merges.txt"), "w", encoding="utf-8").write(files[1])
        jobs = os.path.join(a.workdir, "jobs.json")
        json.dump([{"dir": model, "spec": {"text": {}, "vision": {}, "projection_dim": 512, "seed": 0,
                                              "init": "default"}}], open(jobs, "w"))
        subprocess.run([py, os.path.join(HERE, "..", "tests", "ref", "clip_ref.py"), jobs], check=True)
    px = np.random.default_rng(0).standard_normal((a.images, 3, 224, 224)).astype(np.float32)
    inp, out, npy = (os.path.join(a.workdir, n) for n in ("in.h5", "out.h5", "pixels.npy"))
    with h5py.File(inp, "w") as f:
        f["pixels"] = px
    np.save(npy, px)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    ours, theirs = [], []
    for r in range(a.rounds):
        p = subprocess.run([a.stsae, "check-clip", model, inp, out], capture_output=True, text=True, env=env,
                           check=True)
        words = p.stdout.split()
        ours.append(float(words[words.index("images") + 3]))
        q = subprocess.run([py, "-c", TORCH_WORKER, model, npy, str(a.threads), os.path.join(a.workdir, "ref.npy")],
                           capture_output=True, text=True, env=env, check=True)
        theirs.append(float(q.stdout.strip().splitlines()[-1]))
        print(f"round {r + 1}: stsae {a.images / ours[-1]:.1f} images/s, transformers {a.images / theirs[-1]:.1f}",
              flush=True)
    with h5py.File(out) as f:
        got = f["image_embeddings"][()]
    ref = np.load(os.path.join(a.workdir, "ref.npy"))
    rel = float(np.abs(got - ref).max() / np.abs(ref).max())
    s, t = a.images / min(ours), a.images / min(theirs)
    sm, tm = a.images / sorted(ours)[len(ours) // 2], a.images / sorted(theirs)[len(theirs) // 2]
    tv = subprocess.run([py, "-c", "import torch, transformers; print(torch.__version__, transformers.__version__)"],
                        capture_output=True, text=True).stdout.split()
    print(f"machine: {machine()}")
    print(f"CLIP ViT-B/32 image embeddings, {a.images} images of 224 px, {a.threads} threads, best of {a.rounds}: "
          f"stsae {s:.1f} images/s, transformers {tv[1]} (torch {tv[0]}) {t:.1f} images/s: {s / t:.2f}x "
          f"(target >= 1.0x); medians {sm:.1f} and {tm:.1f}: {sm / tm:.2f}x; max |diff| / max |ref| {rel:.1e}")


if __name__ == "__main__":
    main()
