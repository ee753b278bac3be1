#!/usr/bin/python3
"""`stsae check-video` against independent references (PIL, numpy, the SPEC's formula).

  /usr/bin/python3 tests/test_video.py --stsae build/stsae [--workdir DIR] [--case preprocess|sampling|bad]

preprocess: random RGB images of odd sizes (PNG, lossless, read by FFmpeg as
    one-frame videos) through the DINOv2 preset (short side 256 bicubic, crop
    224), the VideoMAE preset (224 bilinear), the pixels backbone (--size) and
    a custom bicubic size, up- and downscaling; the reference is PIL's
    Image.resize with Hugging Face's size rule and centre crop, then HF's
    rescale (float64 -> float32) and normalisation (float32). Pass: every
    uint8 value before normalisation and every float32 after is identical.
sampling: image sequences (dir/f%03d.png, FFmpeg's image2 demuxer) whose
    frame k is a solid grey level; for T below, at and above n, the pixels of
    step i must show frame floor((i + 0.5) * n / T), and /frame_index,
    /n_frames must agree.
bad: a list with a missing file, an empty file, a text file, a truncated mp4
    and a clip with a good frame between them: exit 0, the good clips written
    in list order with their labels and splits, each bad one named on stderr
    and in /failed_paths with its reason.
Prints one line per check and `N passed, M failed`; exit status 1 on failure.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
from PIL import Image

RESULTS = []
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def report(name, ok, why=""):
    RESULTS.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + why}", flush=True)


def check_video(stsae, lst, out, *args):
    return subprocess.run([stsae, "check-video", lst, out, *args], capture_output=True, text=True, timeout=300)


def hf_reference(a, short, crop, resample):
    """HF's slow image processor: shortest edge -> short (PIL), centre crop, rescale, normalize."""
    im = Image.fromarray(a)
    w, h = im.size
    s, l = (w, h) if w <= h else (h, w)
    new_long = int(short * l / s)
    nw, nh = (short, new_long) if w <= h else (new_long, short)
    r = np.asarray(im.resize((nw, nh), resample=resample))
    top, left = (nh - crop) // 2, (nw - crop) // 2
    u8 = r[top:top + crop, left:left + crop]
    x = (u8.astype(np.float64) * 0.00392156862745098).astype(np.float32)
    x = (x - MEAN) / STD
    return u8, x.transpose(2, 0, 1)


def to_u8(p):
    """Undo the normalisation of one [3, S, S] frame (exact: float error << 1/255)."""
    return np.rint((p.transpose(1, 2, 0) * STD + MEAN) * 255).astype(np.int64)


def case_preprocess(stsae, wd):
    rng = np.random.default_rng(1)
    sizes = [(37, 53), (300, 201), (511, 257), (97, 640), (225, 224), (224, 300), (1000, 77), (256, 256),
             (255, 513), (131, 129)]
    rows = ["path,label"]
    for i, (w, h) in enumerate(sizes):
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if i % 2:  # smooth images too: large regions, where rounding matters most
            yy, xx = np.mgrid[0:h, 0:w]
            a = (127.5 + 127.5 * np.sin(xx[..., None] / (3 + i) + yy[..., None] / (5 + i) + np.arange(3))).astype(np.uint8)
        Image.fromarray(a).save(os.path.join(wd, f"im{i}.png"))
        rows.append(f"im{i}.png,{i}")
    lst = os.path.join(wd, "images.csv")
    open(lst, "w").write("\n".join(rows) + "\n")
    presets = [("dinov2", 256, 224, Image.BICUBIC, ["--preset", "dinov2"]),
               ("videomae", 224, 224, Image.BILINEAR, ["--preset", "videomae"]),
               ("pixels64", 64, 64, Image.BILINEAR, ["--size", "64"]),
               ("bicubic97", 130, 97, Image.BICUBIC, ["--size", "97", "--short", "130", "--filter", "bicubic"])]
    for name, short, crop, resample, args in presets:
        out = os.path.join(wd, f"{name}.h5")
        p = check_video(stsae, lst, out, "--frames", "2", *args)
        if p.returncode != 0:
            report(f"preprocess {name}: check-video runs", False, p.stderr.strip())
            continue
        with h5py.File(out, "r") as f:
            pix = f["pixels"][:]
            shape_ok = pix.shape == (len(sizes), 2, 3, crop, crop)
            report(f"preprocess {name}: /pixels is [clips, T, 3, {crop}, {crop}]", shape_ok, str(pix.shape))
            if not shape_ok:
                continue
            du8, df = 0, 0.0
            for i in range(len(sizes)):
                a = np.asarray(Image.open(os.path.join(wd, f"im{i}.png")).convert("RGB"))
                u8, x = hf_reference(a, short, crop, resample)
                for t in range(2):
                    du8 = max(du8, int(np.abs(to_u8(pix[i, t]) - u8.astype(np.int64)).max()))
                    df = max(df, float(np.abs(pix[i, t] - x).max()))
            report(f"preprocess {name}: uint8 before normalisation equal to PIL (max diff {du8})", du8 == 0)
            report(f"preprocess {name}: float32 after normalisation equal to HF (max diff {df:.3g})", df == 0.0)


def case_sampling(stsae, wd):
    rows = ["path,label,split"]
    ns = [1, 2, 7, 16, 33]
    for n in ns:
        d = os.path.join(wd, f"seq{n}")
        os.makedirs(d, exist_ok=True)
        for k in range(n):
            Image.fromarray(np.full((24, 40, 3), 7 * k + 3, np.uint8)).save(os.path.join(d, f"f{k:03d}.png"))
        rows.append(f"seq{n}/f%03d.png,a,train")
    lst = os.path.join(wd, "seq.csv")
    open(lst, "w").write("\n".join(rows) + "\n")
    for T in [1, 3, 7, 16, 40]:
        out = os.path.join(wd, f"seq_T{T}.h5")
        # --size 24 --short 24: the 24-pixel side stays, the crop keeps the middle: pixels unchanged
        p = check_video(stsae, lst, out, "--frames", str(T), "--size", "24")
        if p.returncode != 0:
            report(f"sampling T={T}: check-video runs", False, p.stderr.strip())
            continue
        with h5py.File(out, "r") as f:
            pix, idx, nf = f["pixels"][:], f["frame_index"][:], f["n_frames"][:]
        for c, n in enumerate(ns):
            want = [int(np.floor((i + 0.5) * n / T)) for i in range(T)]
            seen = [int(round((to_u8(pix[c, i]).mean() - 3) / 7)) for i in range(T)]
            flat = all(np.ptp(to_u8(pix[c, i])) == 0 for i in range(T))
            ok = seen == want and flat and list(idx[c]) == want and nf[c] == n
            report(f"sampling n={n} T={T}: frames {want[:8]}{'...' if T > 8 else ''}", ok,
                   f"pixels show {seen}, /frame_index {list(idx[c])}, /n_frames {nf[c]}")


def case_bad(stsae, wd):
    good = os.path.join(wd, "good.png")
    Image.fromarray(np.full((20, 30, 3), 99, np.uint8)).save(good)
    open(os.path.join(wd, "empty.mp4"), "wb").close()
    open(os.path.join(wd, "text.mp4"), "w").write("not a video\n")
    # a truncated mp4: write one with stsae synth, keep half of its bytes
    deck = os.path.join(wd, "synth.yaml")
    open(deck, "w").write(f"run_dir: {wd}\nsynth: {{out: s, clips: 1, frames: 4, size: 32}}\n")
    p = subprocess.run([stsae, "synth", deck], capture_output=True, text=True, timeout=120)
    src = os.path.join(wd, "s", "videos", "synth_000000.mp4")
    if p.returncode != 0 or not os.path.exists(src):
        report("bad: stsae synth writes an mp4 to truncate", False, p.stderr.strip())
        return
    data = open(src, "rb").read()
    open(os.path.join(wd, "truncated.mp4"), "wb").write(data[:len(data) // 2])
    rows = ["path,label,split", "good.png,a,train", "missing.mp4,b,test", "empty.mp4,a,test",
            f"{src},b,test", "text.mp4,a,train", "truncated.mp4,b,train",
            "./good.png,c,test"]  # the same file under another path: a second clip
    lst = os.path.join(wd, "bad.csv")
    open(lst, "w").write("\n".join(rows) + "\n")
    out = os.path.join(wd, "bad.h5")
    p = check_video(stsae, lst, out, "--frames", "3", "--size", "16")
    report("bad: exit status 0 with bad clips in the list", p.returncode == 0, p.stderr.strip())
    if p.returncode != 0:
        return
    bad = {"missing.mp4": "cannot open", "empty.mp4": "", "text.mp4": "", "truncated.mp4": ""}
    for name, why in bad.items():
        path = os.path.join(wd, name)
        line = [l for l in p.stderr.splitlines() if path in l]
        report(f"bad: {name} reported on stderr by its path", len(line) == 1 and why in line[0], p.stderr.strip())
    with h5py.File(out, "r") as f:
        failed = [s.decode() for s in f["failed_paths"][:]]
        reasons = [s.decode() for s in f["failed_reasons"][:]]
        ids = [s.decode() for s in f["clip_ids"][:]]
        names = [s.decode() for s in f["label_names"][:]]
        labels, split, n = f["labels"][:], f["split"][:], f["pixels"].shape[0]
    report("bad: /failed_paths lists the four bad clips",
           sorted(os.path.basename(x) for x in failed) == sorted(bad), str(failed))
    report("bad: each reason names its path", all(r.startswith(x + ": ") for x, r in zip(failed, reasons)), str(reasons))
    report("bad: the good clips written in list order", n == 3 and ids == ["good.png", src, "./good.png"], str(ids))
    report("bad: their labels and splits", names == ["a", "b", "c"] and list(labels) == [0, 1, 2]
           and list(split) == [0, 1, 1], f"{names} {list(labels)} {list(split)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--workdir")
    ap.add_argument("--case", choices=["preprocess", "sampling", "bad"], action="append")
    a = ap.parse_args()
    wd = a.workdir or tempfile.mkdtemp(prefix="stsae_video_")
    for case in a.case or ["preprocess", "sampling", "bad"]:
        d = os.path.join(wd, case)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        globals()["case_" + case](os.path.abspath(a.stsae), d)
    print(f"{sum(RESULTS)} passed, {len(RESULTS) - sum(RESULTS)} failed")
    sys.exit(0 if RESULTS and all(RESULTS) else 1)


if __name__ == "__main__":
    main()
