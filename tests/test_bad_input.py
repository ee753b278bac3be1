#!/usr/bin/python3
"""Bad input to `stsae check-step`: each broken CASE.h5 must make the program
exit non-zero with one clear message naming the file and the offending
attribute or dataset, and must leave no OUT.h5 behind.

  /usr/bin/python3 tests/test_bad_input.py --stsae build/stsae [--workdir DIR]
Prints one line per case and `N passed, M failed`; exit status 1 on failure.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_check_step as T  # noqa: E402  (case drawing)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
import sae_ref as R  # noqa: E402


def truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def drop(name):
    def mutate(path):
        with h5py.File(path, "a") as f:
            del f[name]
    return mutate


def drop_attr(name):
    def mutate(path):
        with h5py.File(path, "a") as f:
            del f.attrs[name]
    return mutate


def replace(name, fn):
    def mutate(path):
        with h5py.File(path, "a") as f:
            data = fn(f[name][...])
            del f[name]
            f.create_dataset(name, data=data)
    return mutate


def set_attr(name, value):
    def mutate(path):
        with h5py.File(path, "a") as f:
            f.attrs[name] = value
    return mutate


def with_nan(a):
    a = a.copy()
    a.flat[a.size // 3] = np.nan
    return a


# (name, variant of the base case, mutation, words the message must contain)
CASES = [
    ("missing file", "standard", lambda p: os.remove(p), ["cannot open"]),
    ("truncated file", "standard", truncate, ["not a readable HDF5 file"]),
    ("missing dataset", "standard", drop("params/b_enc"), ["params/b_enc"]),
    ("missing attribute", "standard", drop_attr("k"), ["'k'"]),
    ("unknown variant", "standard", set_attr("variant", "temporal+X"), ["unknown variant", "temporal+X"]),
    ("wrong shape", "standard", replace("params/W_dec", lambda a: a.T.copy()), ["shapes disagree"]),
    ("wrong batch width", "standard", replace("batch/x", lambda a: a[:, :-1].copy()), ["batch/x", "width"]),
    ("NaN in the batch", "standard", replace("batch/x", with_nan), ["batch/x", "non-finite"]),
    ("Inf in a parameter", "standard", replace("params/W_enc", lambda a: a * np.float32(np.inf)), ["params/W_enc", "non-finite"]),
    ("k out of range", "standard", set_attr("k", np.int64(0)), ["k = 0"]),
    ("tau not positive", "temporal", set_attr("tau", np.float64(0.0)), ["tau"]),
    ("clips needed", "temporal", replace("batch/x", lambda a: a.reshape(-1, a.shape[-1])), ["needs whole clips"]),
    ("dead mask length", "standard", replace("state/dead", lambda a: a[:-1].copy()), ["state/dead"]),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="stsae_bad_")
    os.makedirs(work, exist_ok=True)
    passed = failed = 0
    for i, (name, variant, mutate, words) in enumerate(CASES):
        cfg, params, x, dead = T.tie_free_case(variant, 0, 1000 + i)[:4]
        case = os.path.join(work, f"bad_{i:02d}.h5")
        out = os.path.join(work, f"bad_{i:02d}_out.h5")
        for p in (out, out + ".tmp"):
            if os.path.exists(p):
                os.remove(p)
        R.write_case(case, cfg, params, x, dead)
        mutate(case)
        r = subprocess.run([args.stsae, "check-step", case, out], capture_output=True, text=True, timeout=120)
        msg = r.stderr.strip()
        problems = []
        if r.returncode == 0:
            problems.append("exit status 0")
        if r.returncode < 0:
            problems.append(f"killed by signal {-r.returncode}")
        if case not in msg:
            problems.append("message does not name the file")
        problems += [f"message lacks '{w}'" for w in words if w not in msg]
        if os.path.exists(out):
            problems.append("OUT.h5 was written")
        if problems:
            failed += 1
            print(f"FAIL {name}: {'; '.join(problems)} | stderr: {msg[:300]}")
        else:
            passed += 1
            print(f"ok   {name}: {msg.splitlines()[-1] if msg else ''}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
