"""`stsae extract` and `stsae train` on a file system that fills up mid-run
(a small tmpfs mounted under the test's work directory), on 3 ranks:

  extract  the features of synthetic videos written into a 1 MiB tmpfs that
           holds about half of them: the run must end (each run has a time
           limit; running past it is a failure, a hang), with a non-zero exit
           status and, from every rank, an error naming the feature file and
           "No space left on device"; every clip marked in /done must have its
           features on disk (non-zero, equal to an uninterrupted reference
           run, read with h5py); after a remount with room, the same command
           ends with the reference run's file (datasets and attributes
           compared with h5py).
  train    three jobs whose files do not all fit: once with a model.h5 that
           does not fit, once with a checkpoint every step (ckpt.h5 does not
           fit). Every rank exits non-zero naming the file and "No space left
           on device"; no temporary is left, every model.h5 that exists equals
           the reference run's (nothing marked done that is not written); after
           a remount with room the rerun gives every reference model.

Needs root (mount -t tmpfs): exits 77 (skipped) where mounting is not allowed.
No fixed sleeps: each run is waited for, with a time limit.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
from procs import kill_session  # noqa: E402

SKIP = 77
LIMIT = 240  # seconds a run may take before it counts as a hang (--limit)
ENOSPC = os.strerror(28)  # "No space left on device"

TRAIN_DECK = """run_dir: {run}
train:
  features: {features}
  layer: 0
  expansion: 4
  k: 8
  k_aux: 32
  epochs: 1
  batch_tokens: 192
  batch_clips: 2
  batch_pairs: 96
  streams: 4
  seeds: [0, 1, 2]
  progress_every: 100
  grid:
    - {{variant: standard}}
"""


class Env:
    def __init__(self, a):
        self.a = a
        self.env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
                        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

    def run(self, np_, *args, check=True):
        """Runs stsae on np_ ranks; a run past LIMIT is killed and reported as a hang."""
        cmd = [self.a.mpirun, "-np", str(np_)] + self.a.mpi_flags.split() + [self.a.stsae] + list(args)
        p = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        try:
            out, err = p.communicate(timeout=self.a.limit)
        except subprocess.TimeoutExpired:
            kill_session(p.pid)
            out, err = p.communicate()
            print(out[-2000:], err[-3000:])
            raise SystemExit(f"FAIL: stsae {' '.join(args)} on {np_} ranks still running after {self.a.limit:.0f} s: "
                             "a hang")
        if check and p.returncode:
            print(out[-3000:], err[-3000:])
            raise SystemExit(f"FAIL: stsae {' '.join(args)} on {np_} ranks exited {p.returncode}")
        return p.returncode, out, err


def mount(path, size):
    os.makedirs(path, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                          capture_output=True, text=True).returncode == 0


def remount(path, size):
    subprocess.run(["mount", "-o", f"remount,size={size}", path], check=True)


def umount(path):
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", path], check=False)


def datasets(f):
    keys = []
    f.visit(lambda k: keys.append(k) if isinstance(f[k], h5py.Dataset) else None)
    return sorted(keys)


def same_h5(a, b, skip_attrs=()):
    """Same datasets (names and values) and root attributes, read with h5py."""
    with h5py.File(a, "r") as x, h5py.File(b, "r") as y:
        if datasets(x) != datasets(y) or sorted(x.attrs) != sorted(y.attrs):
            return False
        return all(np.array_equal(x[k][...], y[k][...]) for k in datasets(x)) and \
            all(np.array_equal(x.attrs[k], y.attrs[k]) for k in x.attrs if k not in skip_attrs)


def every_rank_says(err, n, *words):
    """Each of ranks 0..n-1 printed an error line holding every word."""
    lines = [l for l in err.splitlines() if l.startswith("stsae: error (rank ")]
    return all(any(l.startswith(f"stsae: error (rank {r}):") and all(w in l for w in words) for l in lines)
               for r in range(n))


def check(fails, ok, what):
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    return fails + (not ok)


def synth(e, w, clips):
    """Synthetic videos (outside any tmpfs) through inputs/demo.yaml, shrunk."""
    e.run(1, "synth", e.a.deck, f"run_dir={w}/src", f"synth.clips={clips}", "synth.frames=12", "synth.size=48")
    return f"{w}/src/data/synth/clips.csv"


def extract_args(run_dir, csv):
    return [f"run_dir={run_dir}", f"extract.input.csv={csv}", "extract.frames=6", "extract.image_size=32",
            "extract.patch=8", "extract.layers=[0, 2]", "extract.batch_clips=1"]


def case_extract(e, w, mnt):
    csv = synth(e, w, 30)
    e.run(3, "extract", e.a.deck, *extract_args(f"{w}/ref", csv))
    ref = f"{w}/ref/features.h5"
    fails = 0
    # 30 clips x 2 layers x 36 KiB: about half fit in 1 MiB
    if not mount(mnt, "1m"):
        print("cannot mount a tmpfs")
        return SKIP
    rc, out, err = e.run(3, "extract", e.a.deck, *extract_args(mnt, csv), check=False)
    partial = f"{mnt}/features.h5.partial"
    fails = check(fails, rc != 0, f"full disk: extract exits {rc}, not 0")
    said = every_rank_says(err, 3, partial, ENOSPC)
    fails = check(fails, said, f"every rank names {partial} and '{ENOSPC}'")
    if not said:
        print(err[-3000:])
    first = next((l for l in err.splitlines() if l.startswith("stsae: error")), "(no error line)")
    print(f"     {first}")
    if not os.path.exists(partial):
        return check(fails, False, "the partial file is kept")
    with h5py.File(partial, "r") as f, h5py.File(ref, "r") as r:
        done = np.nonzero(f["done"][...])[0]
        layers = [k for k in f["features"]]
        bad = [int(c) for c in done for k in layers
               if not np.any(f["features"][k][c]) or not np.array_equal(f["features"][k][c], r["features"][k][c])]
    fails = check(fails, 0 < len(done) < 30, f"{len(done)} of 30 clips marked done before the disk filled")
    fails = check(fails, not bad, f"every clip marked done has its features on disk, equal to the reference "
                                  f"(wrong: {sorted(set(bad))})")
    # room again: the same command finishes the file as an uninterrupted run
    remount(mnt, "64m")
    rc, out, err = e.run(3, "extract", e.a.deck, *extract_args(mnt, csv), check=False)
    todo = next((l for l in out.splitlines() if "to do" in l), "")
    fails = check(fails, rc == 0 and "resuming" in todo, f"rerun with room: exit {rc}; {todo.strip()}")
    ok = os.path.exists(f"{mnt}/features.h5") and same_h5(f"{mnt}/features.h5", ref)
    return check(fails, ok, "rerun with room = uninterrupted run (h5py: every dataset and attribute)")


def train_jobs(run):
    return sorted(glob.glob(f"{run}/jobs/*/model.h5"))


def case_train(e, w, mnt):
    csv = synth(e, w, 24)
    e.run(3, "extract", e.a.deck, *extract_args(f"{w}/feat", csv))
    features = f"{w}/feat/features.h5"
    deck = f"{w}/train.yaml"
    open(deck, "w").write(TRAIN_DECK.format(run=mnt, features=features))
    e.run(3, "train", deck, f"run_dir={w}/ref")
    refs = train_jobs(f"{w}/ref")
    fails = check(0, len(refs) == 3, f"reference: {len(refs)} models")
    # a model.h5 is about 1.2 MB (m = 768, d = 192): two fit in 2.5 MiB, not
    # three; a checkpoint (parameters and both Adam moments) not even one
    for name, over in (("model.h5", []), ("ckpt.h5", ["train.checkpoint_every=1e-9"])):
        umount(mnt)
        if not mount(mnt, "2560k"):
            print("cannot mount a tmpfs")
            return SKIP
        rc, out, err = e.run(3, "train", deck, *over, check=False)
        fails = check(fails, rc != 0, f"{name} does not fit: train exits {rc}, not 0")
        said = every_rank_says(err, 3, mnt, name, ENOSPC)
        fails = check(fails, said, f"every rank names a {name} under {mnt} and '{ENOSPC}'")
        if not said:
            print(err[-3000:])
        first = next((l for l in err.splitlines() if l.startswith("stsae: error")), "(no error line)")
        print(f"     {first}")
        tmps = glob.glob(f"{mnt}/**/*.tmp", recursive=True)
        fails = check(fails, not tmps, f"no temporary left behind ({tmps})")
        models = train_jobs(mnt)
        wrong = [m for m in models
                 if not same_h5(m, m.replace(mnt, f"{w}/ref"), skip_attrs=("train_tokens_per_s",))]
        fails = check(fails, len(models) < 3 and not wrong,
                      f"{len(models)} model.h5 written, each whole and equal to the reference (wrong: {wrong})")
        for c in glob.glob(f"{mnt}/jobs/*/ckpt.h5"):  # a checkpoint that exists must be whole
            try:
                with h5py.File(c, "r") as f:
                    ok = f["params"].shape == f["adam_m"].shape == f["adam_v"].shape
            except OSError:
                ok = False
            fails = check(fails, ok, f"{c} is whole")
        remount(mnt, "64m")
        rc, out, err = e.run(3, "train", deck, *over, check=False)
        models = train_jobs(mnt)
        same = [same_h5(m, m.replace(mnt, f"{w}/ref"), skip_attrs=("train_tokens_per_s",)) for m in models]
        fails = check(fails, rc == 0 and len(models) == 3 and all(same),
                      f"rerun with room: exit {rc}, {len(models)} models, equal to the uninterrupted run: {same}")
        if rc:
            print(err[-3000:])
    return fails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--mpi-flags", default="--oversubscribe")
    ap.add_argument("--deck", required=True, help="inputs/demo.yaml")
    ap.add_argument("--case", required=True, choices=["extract", "train"])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--limit", type=float, default=LIMIT, help="seconds a run may take (past it: a hang)")
    a = ap.parse_args()
    w = os.path.abspath(os.path.join(a.workdir, a.case))
    mnt = f"{w}/disk"
    umount(mnt)  # left by a killed earlier run
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    probe = f"{w}/probe"
    if not mount(probe, "64k"):
        print("SKIP: mounting a tmpfs is not permitted here (needs root)")
        sys.exit(SKIP)
    umount(probe)
    try:
        fails = globals()["case_" + a.case](Env(a), w, mnt)
    finally:
        umount(mnt)
    if fails == SKIP:
        sys.exit(SKIP)
    print(f"full_disk {a.case}: {'FAILED' if fails else 'passed'}")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
