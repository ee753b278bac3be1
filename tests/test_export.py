"""`stsae export` loaded by the real libraries: SAELens (and sparsify where it
is installed) give stsae's codes and reconstructions on the same raw tokens.

A small grid (standard, temporal: TopK; standard+M: BatchTopK; sparsemax) is
trained by `stsae train` on a feature file from tests/ref/make_features.py.
Every TopK / BatchTopK job is exported with `stsae export JOB_DIR --format
saelens OUT`, loaded with `sae_lens.SAE.load_from_disk` in a virtual
environment, and its `encode` / `decode` of every token of every clip (raw
features, float32) are compared with stsae's own (tests/pyreader_encode.c:
eval's path, x * s, sae_encode with theta, sae_decode, * 1/s) to 1e-4 of the
largest value, with the same kept latents. The same for `--format sparsify`
(TopK jobs; sparsify's SparseCoder.load_from_disk) when sparsify imports.
Refusals: sparsemax (both formats), BatchTopK in sparsify and
dictionary_learning exit 1 with a message naming why.

The libraries live in a cached virtual environment (--venv; made with
`python3 -m venv --system-site-packages`, then `pip install sae-lens`, which
brings PyTorch >= 2.6: a few GB on first use). Where it cannot be made or
imported (no network, STSAE_NO_PIP=1 set), the test exits 77 (skipped),
saying what to install.

--stsae stsae-planted with STSAE_PLANT=export_no_scale (the scale not folded
in) or export_theta_zero (JumpReLU threshold 0 instead of theta) must fail.
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
from make_features import make  # noqa: E402
from venv_cache import venv_python  # noqa: E402

TOL = 1e-4
SKIP = 77

LOADER = r"""
import sys, numpy as np, torch
fmt, out, tokens, dst = sys.argv[1:5]
x = torch.from_numpy(np.load(tokens))
with torch.no_grad():
    if fmt == "saelens":
        from sae_lens import SAE
        sae = SAE.load_from_disk(out, device="cpu")
        z = sae.encode(x)
        if z.is_sparse:
            z = z.to_dense()
        xh = sae.decode(z)
        kind = type(sae).__name__
    else:
        from sparsify import SparseCoder
        sae = SparseCoder.load_from_disk(out, device="cpu")
        enc = sae.encode(x)
        z = torch.zeros(x.shape[0], sae.num_latents).scatter_(1, enc.top_indices, enc.top_acts)
        xh = sae.decode(enc.top_acts, enc.top_indices)
        kind = type(sae).__name__
np.savez(dst, z=z.float().numpy(), xhat=xh.float().numpy())
print(kind)
"""


def compare(name, got, want, fails):
    diff = float(np.abs(got - want).max())
    scale = float(np.abs(want).max())
    rel = diff / max(scale, 1e-30)
    ok = rel <= TOL
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |diff| {diff:.3e} (relative to max |value| {scale:.3e}: {rel:.1e})")
    fails.append(not ok)
    return rel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--encode", required=True, help="tests/pyreader_encode.c built")
    ap.add_argument("--venv", required=True, help="the cached virtual environment of the libraries")
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    py, why = venv_python(os.path.abspath(a.venv), "sae_lens", "sae-lens")
    if not py:
        print(f"skipped: SAELens is not available: {why}")
        sys.exit(SKIP)
    w = os.path.abspath(a.workdir)
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    feats, _, _ = make(os.path.join(w, "f.h5"), clips=16, T=4, H=3, W=3, d=12, seed=11, test_frac=0.25, n_labels=3)
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
""")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([a.stsae, "train", deck], env=env, capture_output=True, text=True)
    if p.returncode:
        print(p.stdout[-3000:], p.stderr[-3000:])
        raise SystemExit(f"FAIL: stsae train exited {p.returncode}")
    x = feats[0].astype(np.float16).astype(np.float32).reshape(-1, feats[0].shape[-1])
    tokens_h5, tokens_npy = os.path.join(w, "tokens.h5"), os.path.join(w, "tokens.npy")
    with h5py.File(tokens_h5, "w") as f:
        f["x"] = x
    np.save(tokens_npy, x)
    sparsify_py, sparsify_why = venv_python(os.path.abspath(a.venv), "sparsify", "eai-sparsify") \
        if not os.environ.get("STSAE_NO_SPARSIFY") else (None, "STSAE_NO_SPARSIFY is set")
    if not sparsify_py:
        print(f"note: sparsify not checked: {sparsify_why}")
    fails, worst = [], 0.0
    jobs = sorted(os.listdir(f"{w}/run/jobs"))
    for job in jobs:
        jd = f"{w}/run/jobs/{job}"
        with h5py.File(f"{jd}/model.h5") as f:
            variant = f.attrs["variant"]
            variant = variant.decode() if isinstance(variant, bytes) else str(variant)
        ref = os.path.join(w, f"{job}.stsae.h5")
        p = subprocess.run([a.encode, f"{jd}/model.h5", tokens_h5, ref], capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f"FAIL: {a.encode}: {p.stderr}")
        with h5py.File(ref) as f:
            z_c, xh_c = f["z"][...], f["xhat"][...]
        for fmt, lib_py in (("saelens", py), ("sparsify", sparsify_py)):
            out = os.path.join(w, "export", fmt, job)
            p = subprocess.run([a.stsae, "export", jd, "--format", fmt, out], env=env, capture_output=True, text=True)
            expressible = variant != "sparsemax" and not (fmt == "sparsify" and variant.endswith("+M"))
            if not expressible:
                ok = p.returncode == 1 and "cannot be expressed" in p.stderr
                print(f"{'ok  ' if ok else 'FAIL'} {job} --format {fmt} refused: exit {p.returncode}: {p.stderr.strip()}")
                fails.append(not ok)
                continue
            if p.returncode:
                print(f"FAIL {job} --format {fmt}: exit {p.returncode}: {p.stderr.strip()}")
                fails.append(True)
                continue
            if not lib_py:
                continue
            dst = os.path.join(w, f"{job}.{fmt}.npz")
            # sparsify decodes with Triton when it imports, which needs a GPU: its eager form on the CPU
            q = subprocess.run([lib_py, "-c", LOADER, fmt, out, tokens_npy, dst], capture_output=True, text=True,
                               env=dict(os.environ, SPARSIFY_DISABLE_TRITON="1"))
            if q.returncode:
                print(f"FAIL {job} {fmt} loader: {q.stderr.strip()[-2000:]}")
                fails.append(True)
                continue
            r = np.load(dst)
            print(f"-- {job} ({variant}) as {fmt} {q.stdout.strip().splitlines()[-1]}: L0 {np.count_nonzero(z_c) / len(z_c):.2f}")
            worst = max(worst, compare(f"{job} {fmt} codes", r["z"], z_c, fails))
            same = np.array_equal(r["z"] != 0, z_c != 0)
            print(f"{'ok  ' if same else 'FAIL'} {job} {fmt} the same kept latents for every token")
            fails.append(not same)
            worst = max(worst, compare(f"{job} {fmt} reconstructions", r["xhat"], xh_c, fails))
    p = subprocess.run([a.stsae, "export", f"{w}/run/jobs/{jobs[0]}", "--format", "dictionary_learning", f"{w}/dl"],
                       capture_output=True, text=True)
    ok = p.returncode == 1 and "dictionary_learning" in p.stderr
    print(f"{'ok  ' if ok else 'FAIL'} --format dictionary_learning refused: exit {p.returncode}: {p.stderr.strip()}")
    fails.append(not ok)
    print(f"largest relative difference of codes and reconstructions: {worst:.1e} (tolerance {TOL:g})")
    if any(fails):
        raise SystemExit(f"FAIL: {sum(fails)} of {len(fails)} checks")
    print(f"ok: {len(fails)} checks")


if __name__ == "__main__":
    main()
