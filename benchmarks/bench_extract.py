"""`stsae extract` end to end at 224 px: clips/s per backbone (DINOv2-B and
VideoMAE-B with random weights in Hugging Face layout, and `pixels`) and the
share of time in decode, preprocess, forward and write (the stage table that
extract prints, min / avg / max over ranks).

The clips are `stsae synth` videos (128 px, 32 frames, mpeg4), so decoding is
cheap next to real SSv2 webm; the forward pass dominates either way.

usage: /usr/bin/python3 benchmarks/bench_extract.py --stsae build/stsae
           [--cores 2] [--clips 4] [--models dinov2,videomae,pixels]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from backbone_ref import dinov2_config, random_weights, videomae_config, write_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--models", default="dinov2,videomae,pixels")
    ap.add_argument("--workdir", default="/tmp/bench_extract")
    a = ap.parse_args()
    w = a.workdir
    os.makedirs(w, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.cores))
    models = {}
    if "dinov2" in a.models:
        cfg = dinov2_config(hidden=768, layers=12, heads=12, patch=14, image=518)
        models["dinov2"] = os.path.join(w, "dinov2-base-random")
        if not os.path.exists(models["dinov2"]):
            write_model(models["dinov2"], cfg, random_weights(cfg))
    if "videomae" in a.models:
        cfg = videomae_config(hidden=768, layers=12, heads=12, intermediate=3072, patch=16, image=224, frames=16)
        models["videomae"] = os.path.join(w, "videomae-base-random")
        if not os.path.exists(models["videomae"]):
            write_model(models["videomae"], cfg, random_weights(cfg))
    if "pixels" in a.models:
        models["pixels"] = "pixels"
    deck = os.path.join(w, "deck.yaml")
    open(deck, "w").write(f"""run_dir: {w}
synth: {{out: synth, clips: {a.clips}, seed: 1}}
extract:
  input: {{csv: synth/clips.csv}}
  layers: [3, 7, 11]
  frames: 16
  image_size: 224
  patch: 16
  batch_clips: 1
""")
    p = subprocess.run([a.stsae, "synth", deck], env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr)
    print(f"stsae extract at 224 px, 16 frames, layers 3/7/11, {a.clips} clips, {a.cores} threads, 1 rank")
    print(f"{'backbone':<10} {'clips/s':>8} {'decode':>8} {'preproc':>8} {'forward':>8} {'write':>8}  (share of time)")
    for name, spec in models.items():
        out = os.path.join(w, f"features_{name}.h5")
        for f in (out, out + ".partial"):
            if os.path.exists(f):
                os.remove(f)
        t0 = time.time()
        p = subprocess.run([a.stsae, "extract", deck, f"extract.backbone={spec}", f"extract.out={out}"], env=env,
                           capture_output=True, text=True)
        wall = time.time() - t0
        if p.returncode:
            raise SystemExit(p.stdout[-2000:] + p.stderr[-2000:])
        share = {m.group(1): float(m.group(2)) for m in
                 re.finditer(r"^(decode|preprocess|forward|write)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)%", p.stdout, re.M)}
        rate = re.search(r"([\d.]+) clips/s", p.stdout)
        print(f"{name:<10} {float(rate.group(1)) if rate else a.clips / wall:>8.3f} "
              + " ".join(f"{share.get(k, 0):>7.1f}%" for k in ("decode", "preprocess", "forward", "write")))
    shutil.rmtree(os.path.join(w, "synth"), ignore_errors=True)


if __name__ == "__main__":
    main()
