#!/usr/bin/python3
"""Tests for the backbones through `stsae check-backbone MODEL IN.h5 OUT.h5`.

reference suite: tiny random-weight DINOv2 and VideoMAE checkpoints in Hugging
  Face naming (config.json + a hand-written model.safetensors), and the pixels
  and motion backbones (motion against backbone_ref.motion_forward: full 2-D
  Gabor kernels, float64). Each case writes random pixels to IN.h5, runs the binary and
  compares every emitted layer with the float64 PyTorch forward of
  tests/ref/backbone_ref.py: max|out - ref| <= 1e-4 * max|ref| per layer; the
  printed token grid and weights digest (FNV-1a of model.safetensors) must
  match too. Covered: both pos_interp conventions with the position grid
  resampled (down and up) and left as is, final_norm on and off, several
  layers in one pass and in any order, 2-3 clips, a checkpoint with a head
  prefix ("dinov2.") and no qkv bias, a VideoMAE base checkpoint without a
  prefix, q/v biases or final norm, a sequence long enough to split the
  attention into row blocks, and unaligned tensors in the file.
bad suite: broken checkpoints, configs and inputs; each must exit 1 with one
  line naming the file and the tensor, key or attribute (and the system's
  reason for a file that cannot be opened), and no OUT.h5. Hostile
  safetensors headers among them: shapes whose element or byte count
  overflows 64 bits, overlapping data_offsets, data no tensor holds, bytes
  after the last tensor, an unknown dtype, a tensor listed twice, more than 8
  dimensions.

With --device cuda (IN.h5's device attribute) the ViTs run on the GPU (on
  the CUDA emulation where the binary is tests/stsae-emu) in --math fp32,
  tf32 or bf16, against the same float64 reference: 1e-4 in fp32, 2e-3 in
  TF32 (10-bit products; 1.2e-3 seen), 1e-2 in bf16 (7-bit; 5.7e-3 seen);
  the built-ins stay on the CPU.

  /usr/bin/python3 tests/test_backbone.py --stsae build/stsae
        [--suite reference|bad|all] [--only dinov2,videomae,pixels,motion] [--workdir DIR]
        [--device cpu|cuda] [--math fp32|tf32|bf16]

One line per case, then `N passed, M failed`; exit status 1 on any failure.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
import backbone_ref as R  # noqa: E402

REL_TOL = 1e-4
MATH_TOL = {"fp32": 1e-4, "tf32": 2e-3, "bf16": 1e-2}  # --device cuda (TF32: 1.2e-3 seen)

# name -> (config, weight seed, tensor prefix: None = the usual one)
MODELS = {
    "dinov2": (R.dinov2_config(), 1, None),                       # position grid 5 x 5
    "dinov2_head": (R.dinov2_config(layers=2, qkv_bias=False), 2, "dinov2."),
    "videomae": (R.videomae_config(), 3, None),                   # 2 x 4 x 4 = 32 tokens
    "videomae_base": (R.videomae_config(layers=2, qkv_bias=False, use_mean_pooling=True), 4, ""),
    "videomae_long": (R.videomae_config(layers=2, image=32, frames=10), 5, None),  # 320 tokens
}

# (model, clips, T_in, S, layers, final_norm, pos_interp)
CASES = [
    ("dinov2", 2, 3, 16, [0, 2], False, "hf"),       # 5x5 -> 4x4
    ("dinov2", 2, 3, 16, [1, 2], True, "meta"),
    ("dinov2", 2, 2, 20, [0, 1, 2], False, "hf"),    # 5x5 as is
    ("dinov2", 2, 2, 20, [2], True, "meta"),
    ("dinov2", 3, 2, 12, [0], False, "meta"),        # 5x5 -> 3x3
    ("dinov2", 2, 2, 28, [2, 0], True, "hf"),        # 5x5 -> 7x7
    ("dinov2", 2, 1, 68, [1], False, "meta"),        # 17x17: 290 tokens, two attention row blocks
    ("dinov2_head", 2, 2, 16, [0, 1], True, "hf"),
    ("videomae", 2, 4, 16, [0, 1, 2], False, "hf"),
    ("videomae", 2, 4, 16, [2, 1], True, "hf"),
    ("videomae_base", 2, 4, 16, [1, 0], False, "hf"),
    ("videomae_long", 2, 10, 32, [1], True, "hf"),
    ("pixels", 2, 3, 16, [0, 11], False, "hf"),
    ("motion", 2, 4, 8, [0, 3], False, "hf"),         # patch 4: kernels wider than the frame (mirrored twice)
    ("motion_p8", 1, 6, 24, [0], False, "hf"),        # patch 8: strides 1, 1, 2
]
# the built-ins' patch side per case model
BUILTIN_PATCH = {"pixels": 4, "motion": 4, "motion_p8": 8}


def family(model):
    return model.split("_")[0]


def run_binary(stsae, model, in_path, out_path, timeout=120):
    try:
        proc = subprocess.run([stsae, "check-backbone", model, in_path, out_path],
                              capture_output=True, text=True, timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        return "timeout", "", f"no exit after {timeout} s"


def write_input(path, pixels, layers, final_norm=False, pos_interp="hf", patch=None, device=None):
    """device: None, or (device, math) as IN.h5's attributes."""
    with h5py.File(path, "w") as f:
        if device:
            f.attrs["device"], f.attrs["math"] = device
        f.create_dataset("pixels", data=np.asarray(pixels, dtype=np.float32))
        f.attrs["layers"] = np.asarray(layers, dtype=np.int64)
        f.attrs["final_norm"] = np.int64(final_norm)
        f.attrs["pos_interp"] = pos_interp
        if patch is not None:
            f.attrs["patch"] = np.int64(patch)


def build_models(workdir, names):
    """Writes each model directory once; returns {name: (dir, cfg, tensors, digest)}."""
    out = {}
    for name in names:
        cfg, seed, prefix = MODELS[name]
        tensors = R.random_weights(cfg, seed, prefix)
        d = os.path.join(workdir, "models", name)
        R.write_model(d, cfg, tensors)
        out[name] = (d, cfg, tensors, R.fnv1a64(os.path.join(d, "model.safetensors")))
    return out


def parse_report(stdout):
    m = re.search(r"backbone (\S+) digest (\S+) T (\d+) H (\d+) W (\d+) N (\d+) d (\d+)", stdout)
    if not m:
        return None
    return {"name": m.group(1), "digest": m.group(2),
            **{k: int(v) for k, v in zip("THWNd", m.groups()[2:])}}


def reference_case(index, case, models, stsae, workdir, rng, device=None):
    model, clips, T_in, S, layers, final_norm, pos_interp = case
    label = (f"{model:<13s} clips={clips} T_in={T_in} S={S} layers={layers} "
             f"final_norm={int(final_norm)} {pos_interp}")
    cdir = os.path.join(workdir, f"ref_{index:02d}")
    os.makedirs(cdir, exist_ok=True)
    in_path, out_path = os.path.join(cdir, "IN.h5"), os.path.join(cdir, "OUT.h5")
    pixels = rng.standard_normal((clips, T_in, 3, S, S)).astype(np.float32)
    if model in BUILTIN_PATCH:
        patch, name = BUILTIN_PATCH[model], family(model)
        write_input(in_path, pixels, layers, final_norm, pos_interp, patch=patch)
        fwd = R.pixels_forward if name == "pixels" else R.motion_forward
        ref = {l: fwd(pixels, patch) for l in layers}
        arg, want = name, {"name": name, "digest": "none"}
    else:
        mdir, cfg, tensors, digest = models[model]
        write_input(in_path, pixels, layers, final_norm, pos_interp, device=device)
        ref = {l: v.numpy() for l, v in R.forward(cfg, tensors, pixels, layers, final_norm, pos_interp).items()}
        arg, want = mdir, {"name": cfg["model_type"], "digest": digest}
    if os.path.exists(out_path):
        os.remove(out_path)
    rc, stdout, stderr = run_binary(stsae, arg, in_path, out_path)
    if rc != 0 or not os.path.exists(out_path):
        return False, [f"{label}: FAIL (exit {rc}: {stderr.strip()[-300:]})"]
    failures = []
    shape = next(iter(ref.values())).shape
    rep = parse_report(stdout)
    want.update(T=shape[1], N=shape[2], d=shape[3], H=int(round(shape[2] ** 0.5)), W=int(round(shape[2] ** 0.5)))
    if rep is None:
        failures.append(f"no report line in stdout: {stdout.strip()!r}")
    else:
        failures += [f"report {k} = {rep[k]}, expected {v}" for k, v in want.items() if rep[k] != v]
    worst = 0.0
    tol = MATH_TOL[device[1]] if device and model not in BUILTIN_PATCH else REL_TOL
    with h5py.File(out_path, "r") as f:
        names = sorted(f.keys())
        expected = sorted(f"layer_{l:02d}" for l in layers)
        if names != expected:
            failures.append(f"datasets {names}, expected {expected}")
        for l, r in ref.items():
            name = f"layer_{l:02d}"
            if name not in f:
                continue
            o = f[name]
            if o.dtype != np.float32 or o.shape != r.shape:
                failures.append(f"{name}: {o.dtype} {o.shape}, expected float32 {r.shape}")
                continue
            o = o[()].astype(np.float64)
            if not np.all(np.isfinite(o)):
                failures.append(f"{name}: non-finite values")
                continue
            rel = float(np.max(np.abs(o - r)) / np.max(np.abs(r)))
            worst = max(worst, rel)
            if rel > tol:
                failures.append(f"{name}: max|out-ref|/max|ref| = {rel:.2e} > {tol:.0e}")
    status = "FAIL" if failures else "ok  "
    return not failures, [f"{label}: {status} worst rel err {worst:.2e}"] + [f"    {m}" for m in failures]


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

def without(name):
    return lambda t: {k: v for k, v in t.items() if k != name}


def replaced(name, fn):
    return lambda t: {k: (fn(v) if k == name else v) for k, v in t.items()}


def cfg_set(key, value):
    def mutate(cfg):
        cfg = dict(cfg)
        if value is None:
            del cfg[key]
        else:
            cfg[key] = value
        return cfg
    return mutate


def truncate_by(nbytes):
    def mutate(d):
        p = os.path.join(d, "model.safetensors")
        with open(p, "r+b") as f:
            f.truncate(max(0, os.path.getsize(p) - nbytes))
    return mutate


def truncate_to(nbytes):
    def mutate(d):
        with open(os.path.join(d, "model.safetensors"), "r+b") as f:
            f.truncate(nbytes)
    return mutate


def write_file(name, data):
    def mutate(d):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return mutate


def remove_file(name):
    return lambda d: os.remove(os.path.join(d, name))


def append_bytes(n):
    def mutate(d):
        with open(os.path.join(d, "model.safetensors"), "ab") as f:
            f.write(b"\0" * n)
    return mutate


def header_edit(fn):
    """Rewrites model.safetensors' JSON header: fn(header dict) returns the new
    dict, or the new header text as bytes; the data section is kept."""
    def mutate(d):
        p = os.path.join(d, "model.safetensors")
        with open(p, "rb") as f:
            raw = f.read()
        n = int.from_bytes(raw[:8], "little")
        out = fn(json.loads(raw[8:8 + n]))
        text = out if isinstance(out, bytes) else json.dumps(out).encode()
        text += b" " * (-len(text) % 8)
        with open(p, "wb") as f:
            f.write(len(text).to_bytes(8, "little") + text + raw[8 + n:])
    return mutate


def data_end(h):
    return max(v["data_offsets"][1] for k, v in h.items() if k != "__metadata__")


def add_tensor(name, dtype, shape):
    """An extra tensor of 0 bytes at the end of the data, whatever its shape claims."""
    return lambda h: {**h, name: {"dtype": dtype, "shape": shape, "data_offsets": [data_end(h), data_end(h)]}}


def share_offsets(name, other):
    return lambda h: {**h, name: {**h[name], "data_offsets": list(h[other]["data_offsets"])}}


def set_dtype(name, dtype):
    return lambda h: {**h, name: {**h[name], "dtype": dtype}}


def listed_twice(name):
    def fn(h):
        text = json.dumps(h)
        return ("{" + json.dumps(name) + ": " + json.dumps(h[name]) + ", " + text[1:]).encode()
    return fn


V = "videomae."
# (name, model, mutations {cfg, tensors, files, input}, words the message must contain)
BAD = [
    ("missing tensor", "dinov2", {"tensors": without("encoder.layer.1.mlp.fc2.bias")},
     ["model.safetensors", "missing tensor 'encoder.layer.1.mlp.fc2.bias'"]),
    ("wrong shape", "dinov2", {"tensors": replaced("encoder.layer.0.mlp.fc1.weight", lambda a: a.T.copy())},
     ["model.safetensors", "'encoder.layer.0.mlp.fc1.weight'", "shape [32, 128]", "expected [128, 32]"]),
    ("wrong dtype F16", "dinov2", {"tensors": replaced("encoder.layer.1.norm1.weight", lambda a: a.astype(np.float16))},
     ["model.safetensors", "'encoder.layer.1.norm1.weight'", "dtype F16", "F32"]),
    ("size disagrees with config", "dinov2", {"cfg": cfg_set("hidden_size", 48)},
     ["model.safetensors", "'embeddings.patch_embeddings.projection.weight'", "expected [48, 3, 4, 4]", "config.json"]),
    ("truncated data", "dinov2", {"files": truncate_by(100)},
     ["model.safetensors", "'layernorm.bias'", "truncated"]),
    ("truncated header", "dinov2", {"files": truncate_to(40)},
     ["model.safetensors", "header length", "truncated"]),
    ("file too short", "dinov2", {"files": truncate_to(5)}, ["model.safetensors", "too short"]),
    ("header not JSON", "dinov2", {"files": write_file("model.safetensors", (16).to_bytes(8, "little") + b"{not json at all")},
     ["model.safetensors", "header is not a valid JSON"]),
    ("no safetensors", "dinov2", {"files": remove_file("model.safetensors")},
     ["model.safetensors", "cannot open", "No such file or directory"]),
    ("no config", "dinov2", {"files": remove_file("config.json")},
     ["config.json", "cannot open", "No such file or directory"]),
    ("shape of 2^64 elements in 0 bytes", "dinov2", {"files": header_edit(add_tensor("huge", "F32", [2**32, 2**32]))},
     ["model.safetensors", "'huge'", "overflow"]),
    ("shape of 2^64 bytes in 0 bytes", "dinov2", {"files": header_edit(add_tensor("huge", "F32", [2**31, 2**31]))},
     ["model.safetensors", "'huge'", "overflow"]),
    ("overlapping data_offsets", "dinov2",
     {"files": header_edit(share_offsets("encoder.layer.0.norm1.bias", "encoder.layer.0.norm1.weight"))},
     ["model.safetensors", "overlap", "'encoder.layer.0.norm1.bias'", "'encoder.layer.0.norm1.weight'"]),
    ("data no tensor holds", "dinov2",
     {"files": header_edit(lambda h: {k: v for k, v in h.items() if k != "encoder.layer.0.norm1.bias"})},
     ["model.safetensors", "no tensor holds data bytes", "gap"]),
    ("bytes after the last tensor", "dinov2", {"files": append_bytes(64)},
     ["model.safetensors", "64 bytes after the last tensor"]),
    ("unknown dtype", "dinov2", {"files": header_edit(set_dtype("encoder.layer.0.norm1.bias", "F17"))},
     ["model.safetensors", "'encoder.layer.0.norm1.bias'", "unknown dtype 'F17'"]),
    ("tensor listed twice", "dinov2", {"files": header_edit(listed_twice("layernorm.bias"))},
     ["model.safetensors", "'layernorm.bias'", "twice"]),
    ("rank above 8", "dinov2", {"files": header_edit(add_tensor("deep", "F32", [1] * 9))},
     ["model.safetensors", "'deep'", "9 dimensions"]),
    ("broken config JSON", "dinov2", {"files": write_file("config.json", b'{"model_type": "dinov2", "hidden_size": 32,')},
     ["config.json", "not valid JSON"]),
    ("config key missing", "dinov2", {"cfg": cfg_set("num_attention_heads", None)}, ["config.json", "'num_attention_heads'"]),
    ("config key wrong type", "dinov2", {"cfg": cfg_set("patch_size", "4")}, ["config.json", "'patch_size'", "integer"]),
    ("unknown model_type", "dinov2", {"cfg": cfg_set("model_type", "vit")}, ["config.json", "model_type 'vit'"]),
    ("heads do not divide", "dinov2", {"cfg": cfg_set("num_attention_heads", 5)}, ["config.json", "num_attention_heads 5"]),
    ("VideoMAE q_bias missing", "videomae", {"tensors": without(V + "encoder.layer.2.attention.attention.q_bias")},
     ["model.safetensors", "missing tensor 'videomae.encoder.layer.2.attention.attention.q_bias'"]),
    ("VideoMAE final norm missing", "videomae", {"tensors": without(V + "layernorm.weight")},
     ["model.safetensors", "'videomae.layernorm.weight'"]),
    ("VideoMAE wrong tubelet", "videomae", {"cfg": cfg_set("tubelet_size", 1)},
     ["model.safetensors", "'videomae.embeddings.patch_embeddings.projection.weight'", "expected [32, 3, 1, 4, 4]"]),
    ("VideoMAE wrong frame count", "videomae", {"input": {"T_in": 6}}, ["num_frames = 4", "not 6 frames"]),
    ("final_norm without a final norm", "videomae_base", {"input": {"final_norm": True}},
     ["config.json", "use_mean_pooling"]),
    ("layer out of range", "dinov2", {"input": {"layers": [1, 3]}}, ["IN.h5", "layer 3 out of range"]),
    ("layer twice", "dinov2", {"input": {"layers": [1, 1]}}, ["IN.h5", "layer 1 requested twice"]),
    ("bad pos_interp", "dinov2", {"input": {"pos_interp": "bilinear"}}, ["IN.h5", "pos_interp", "bilinear"]),
    ("frame not a patch multiple", "dinov2", {"input": {"S": 18}}, ["frame size 18", "patch_size 4"]),
    ("pixels not 5-D", "dinov2", {"input": {"pixels_4d": True}}, ["IN.h5", "'pixels'", "dimensions"]),
    ("NaN pixel", "dinov2", {"input": {"nan": True}}, ["IN.h5", "/pixels", "non-finite"]),
    ("pixels backbone without patch", "pixels", {"input": {}}, ["IN.h5", "'patch'"]),
    ("motion: odd frame count", "motion", {"input": {"T_in": 3, "patch": 4}}, ["motion backbone", "3 frames", "even"]),
    ("motion: odd patch", "motion", {"input": {"S": 15, "patch": 5}}, ["motion backbone", "patch = 5", "even"]),
    ("motion: frame not a patch multiple", "motion", {"input": {"S": 18, "patch": 4}},
     ["motion backbone", "frame size 18", "patch 4"]),
    ("no such model directory", "missing", {}, ["config.json", "cannot open", "No such file or directory"]),
]


def bad_case(index, case, stsae, workdir):
    name, model, mut, words = case
    cdir = os.path.join(workdir, f"bad_{index:02d}")
    shutil.rmtree(cdir, ignore_errors=True)
    os.makedirs(cdir)
    inp = {"T_in": 4, "S": 16, "layers": [0, 1], "final_norm": False, "pos_interp": "hf"}
    inp.update(mut.get("input", {}))
    mdir = os.path.join(cdir, "model")
    if model in MODELS:
        cfg, seed, prefix = MODELS[model]
        tensors = R.random_weights(cfg, seed, prefix)
        cfg = mut.get("cfg", lambda c: c)(cfg)
        tensors = mut.get("tensors", lambda t: t)(tensors)
        R.write_model(mdir, cfg, tensors)
        if "files" in mut:
            mut["files"](mdir)
        arg = mdir
    else:
        arg = model if model in BUILTIN_PATCH else mdir
    pixels = np.random.default_rng(index).standard_normal((2, inp["T_in"], 3, inp["S"], inp["S"])).astype(np.float32)
    if inp.get("nan"):
        pixels.flat[pixels.size // 2] = np.nan
    if inp.get("pixels_4d"):
        pixels = pixels[0]
    in_path, out_path = os.path.join(cdir, "IN.h5"), os.path.join(cdir, "OUT.h5")
    write_input(in_path, pixels, inp["layers"], inp["final_norm"], inp["pos_interp"], inp.get("patch"))
    rc, _, stderr = run_binary(stsae, arg, in_path, out_path)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    problems = []
    if rc != 1:
        problems.append(f"exit {rc}, expected 1")
    if len(lines) != 1 or not lines[0].startswith("stsae: error: "):
        problems.append(f"expected one 'stsae: error:' line, got {len(lines)}")
    text = " ".join(lines)
    problems += [f"message lacks {w!r}" for w in words if w not in text]
    if os.path.exists(out_path) or os.path.exists(out_path + ".tmp"):
        problems.append("OUT.h5 was written")
    status = "FAIL" if problems else "ok  "
    out = [f"bad: {name:<34s}: {status} {text[:160]}"]
    return not problems, out + [f"    {p}" for p in problems]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--suite", choices=("reference", "bad", "all"), default="all")
    ap.add_argument("--only", default="", help="model families of the reference suite: dinov2,videomae,pixels,motion")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the ViTs run (IN.h5's device)")
    ap.add_argument("--math", choices=tuple(MATH_TOL), default="fp32", help="--device cuda: the GEMMs' math")
    args = ap.parse_args()
    device = (args.device, args.math) if args.device == "cuda" else None
    torch.set_num_threads(1)
    workdir = args.workdir or tempfile.mkdtemp(prefix="stsae_backbone_")
    os.makedirs(workdir, exist_ok=True)
    stsae = os.path.abspath(args.stsae)
    only = {s for s in args.only.split(",") if s}
    passed = failed = 0

    def report(ok, lines):
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print("\n".join(lines), flush=True)

    if args.suite in ("reference", "all"):
        cases = [c for c in CASES if not only or family(c[0]) in only]
        models = build_models(workdir, sorted({c[0] for c in cases if c[0] not in BUILTIN_PATCH}))
        rng = np.random.default_rng(args.seed)
        for i, case in enumerate(cases):
            report(*reference_case(i, case, models, stsae, workdir, rng, device))
    if args.suite in ("bad", "all"):
        for i, case in enumerate(BAD):
            report(*bad_case(i, case, stsae, workdir))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
