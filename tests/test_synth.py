#!/usr/bin/python3
"""`stsae synth`: determinism, the lists, decodability, and how learnable the actions are.

  /usr/bin/python3 tests/test_synth.py --stsae build/stsae [--mpirun mpiexec] [--workdir DIR]
                                       [--case determinism|probe]

determinism: a small set made twice, serially with 1 thread and then with 2
    threads (and on 2 MPI ranks when --mpirun is given): every file identical
    byte for byte (videos, clips.csv, labels.txt, synth.yaml), and no .tmp
    left; another seed gives other videos. The lists: clips.csv has a header
    and one row per clip, at least 12 actions, balanced, a stratified split
    (round(test_frac * n) test clips per action); labels.txt holds the names in
    byte order (the numbering inputs_read_csv gives). Every clip decodes
    (check-video: no failure, n_frames = synth.frames) and the label names of
    the pixels file equal labels.txt.
probe: the linear probe the evaluation uses (scikit-learn LogisticRegression,
    C = 1, L-BFGS, on standardised features) on the pixels backbone's tokens
    pooled within each patch, per time step (a [T, 3, H, W] grid of patch mean
    colours), trained on the train split, scored on the test split: it must be
    well above chance and well below 100% (learnable, not trivial).
Prints one line per check and `N passed, M failed`; exit status 1 on failure.
"""

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import h5py
import numpy as np

RESULTS = []
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def report(name, ok, why=""):
    RESULTS.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + why}", flush=True)


def run(cmd, threads=1, timeout=300):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(ENV, OMP_NUM_THREADS=str(threads)))


def tree(d):
    return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)


def case_determinism(stsae, mpirun, mpi_flags, wd):
    deck = os.path.join(wd, "deck.yaml")
    open(deck, "w").write(f"run_dir: {wd}/run\nsynth: {{out: data, clips: 30, seed: 3, frames: 8, size: 48}}\n")
    out = os.path.join(wd, "run", "data")
    p = run([stsae, "synth", deck], threads=1)
    report("synth runs (1 rank, 1 thread)", p.returncode == 0, p.stderr.strip())
    if p.returncode != 0:
        return
    first = os.path.join(wd, "first")
    shutil.copytree(out, first)
    runs = [("2 threads", [stsae, "synth", deck], 2)]
    if mpirun:
        runs.append(("2 MPI ranks x 1 thread", [mpirun, "-n", "2", *mpi_flags, stsae, "synth", deck], 1))
    for name, cmd, threads in runs:
        shutil.rmtree(out)
        p = run(cmd, threads=threads)
        files = tree(out)
        same = p.returncode == 0 and files == tree(first) and all(
            filecmp.cmp(os.path.join(out, f), os.path.join(first, f), shallow=False) for f in files)
        report(f"same deck, {name}: every file identical ({len(files)} files)", same, p.stderr.strip()[-500:])
    report("no temporary file left", not any(f.endswith(".tmp") for f in tree(first)))
    p = run([stsae, "synth", deck, "synth.seed=4"], threads=2)
    differ = p.returncode == 0 and not filecmp.cmp(os.path.join(out, "videos", "synth_000000.mp4"),
                                                   os.path.join(first, "videos", "synth_000000.mp4"), shallow=False)
    report("another seed, other videos", differ, p.stderr.strip())

    # the lists
    lines = open(os.path.join(first, "clips.csv")).read().splitlines()
    names = open(os.path.join(first, "labels.txt")).read().splitlines()
    rows = [l.split(",") for l in lines[1:]]
    report("clips.csv: header and one row per clip", lines[0] == "path,label,split" and len(rows) == 30, lines[0])
    report("labels.txt: at least 12 actions, in byte order", len(names) >= 12 and names == sorted(names), str(names))
    per = {n: [r for r in rows if r[1] == n] for n in names}
    counts = sorted(len(v) for v in per.values())
    report("clips.csv: actions balanced, every action from labels.txt",
           sum(counts) == 30 and counts[-1] - counts[0] <= 1, str(counts))
    strat = all(sum(r[2] == "test" for r in v) == int(np.floor(0.2 * len(v) + 0.5)) for v in per.values())
    report("clips.csv: stratified split, round(0.2 n) test clips per action", strat)
    px = os.path.join(wd, "pixels.h5")
    p = run([stsae, "check-video", os.path.join(first, "clips.csv"), px, "--frames", "4", "--size", "48"], threads=2)
    if p.returncode != 0:
        report("check-video reads the set", False, p.stderr.strip())
        return
    with h5py.File(px, "r") as f:
        nf, nfail = f["n_frames"][:], f["failed_paths"].shape[0]
        lab = [s.decode() for s in f["label_names"][:]]
        labels = f["labels"][:]
    report("every clip decodes, all 8 frames", nfail == 0 and len(nf) == 30 and (nf == 8).all(), f"{nfail} failed, {nf}")
    report("check-video numbers the labels as labels.txt",
           lab == names and [names[k] for k in labels] == [r[1] for r in rows], str(lab))


def case_probe(stsae, wd):
    deck = os.path.join(wd, "deck.yaml")
    open(deck, "w").write(f"run_dir: {wd}/run\nsynth: {{out: data, clips: 560, seed: 0, frames: 16, size: 64}}\n")
    p = run([stsae, "synth", deck], threads=2)
    if p.returncode != 0:
        report("synth runs", False, p.stderr.strip())
        return
    px = os.path.join(wd, "pixels.h5")
    p = run([stsae, "check-video", os.path.join(wd, "run", "data", "clips.csv"), px, "--frames", "16", "--size", "64"],
            threads=2)
    if p.returncode != 0:
        report("check-video reads the set", False, p.stderr.strip())
        return
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    P = 8  # patch size: an 8 x 8 grid of tokens
    with h5py.File(px, "r") as f:
        x, y, sp = f["pixels"][:], f["labels"][:], f["split"][:]
        n_labels = f["label_names"].shape[0]
    n, T, C, S, _ = x.shape
    G = S // P
    X = x.reshape(n, T, C, G, P, G, P).mean(axis=(4, 6)).reshape(n, -1)  # per step, patch mean colours
    sc = StandardScaler().fit(X[sp == 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # L-BFGS stops at max_iter, as the evaluation's probe does
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(sc.transform(X[sp == 0]), y[sp == 0])
    acc, chance = clf.score(sc.transform(X[sp == 1]), y[sp == 1]), 1.0 / n_labels
    report(f"linear probe on pixel tokens: test accuracy {acc:.3f} (chance {chance:.3f}, {int((sp == 1).sum())} test "
           f"clips) in [2 x chance, 0.8]", 2 * chance <= acc <= 0.8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--mpirun")
    ap.add_argument("--mpi-flags", default="")
    ap.add_argument("--workdir")
    ap.add_argument("--case", choices=["determinism", "probe"], action="append")
    a = ap.parse_args()
    wd = a.workdir or tempfile.mkdtemp(prefix="stsae_synth_")
    stsae = os.path.abspath(a.stsae)
    for case in a.case or ["determinism", "probe"]:
        d = os.path.join(wd, case)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        if case == "determinism":
            case_determinism(stsae, a.mpirun, a.mpi_flags.split(), d)
        else:
            case_probe(stsae, d)
    print(f"{sum(RESULTS)} passed, {len(RESULTS) - sum(RESULTS)} failed")
    sys.exit(0 if RESULTS and all(RESULTS) else 1)


if __name__ == "__main__":
    main()
