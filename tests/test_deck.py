#!/usr/bin/python3
"""`stsae check` on decks: the paper's grid, overrides, and every kind of bad deck.

  /usr/bin/python3 tests/test_deck.py --stsae build/stsae --deck inputs/ablation29.yaml [--workdir DIR]
                                      [--mpirun mpirun --mpi-flags=--oversubscribe]

(a) inputs/ablation29.yaml expands to exactly the paper's jobs (per variant),
    with unique names and hashes, and its output loads again as the same deck;
(b) a small deck: expansion order, and overrides (train.k=32 reaches every
    job, train.seeds=[5] replaces the seeds, a grid entry can be overridden);
    grid entries with a list of variants (SPEC §7): `{variant: [temporal,
    separate], lambda: [0.1, 1.0]}` is four jobs, variants slowest, a key
    applying to the listed variants that use it, the same names and hashes
    as one entry per variant, the output loading again;
(c) bad decks written here: each must exit 1 with one message on stderr that
    starts with `FILE:LINE: KEY:` (the line marked `#<-` in the deck) or
    `command line: ARG: KEY:`, and names what is wrong; among them integers
    beyond the range of their key (never cut to 32 bits), and jobs that
    cannot run on the data the deck's extract section makes (k > m, k_aux > m,
    a +M high-level group of 0 or all latents, T = 1 for temporal, W = 1 for
    separate, clips without a raster pair);
(d) a "billion laughs" deck of YAML aliases fails fast with one FILE:LINE
    error (under a 4 GiB memory limit: RLIMIT_AS, or ASan's hard_rss_limit_mb
    for a sanitizer build), on 1 and (with --mpirun) 3 ranks;
(e) the jobs checked against an existing feature file (batches larger than
    the training clips, no full batch in the epochs, k > m); a note when no
    data shape is known; and `stsae train` on 3 ranks failing on a later
    job's k > m before any job trains (with --mpirun).
Prints one line per case and `N passed, M failed`; exit status 1 on failure.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

RESULTS = []


def report(name, ok, why=""):
    RESULTS.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + why}")


def check(stsae, deck, *over):
    p = subprocess.run([stsae, "check", deck, *over], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


JOB_LINE = re.compile(r"^#\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)"
                      r"\s+(\d+)\s+(\d+)\s+([0-9a-f]{16})\s+([0-9.]+)$")
FIELDS = ["index", "name", "variant", "lambda_t", "lambda_s", "lambda_r", "tau", "high_frac", "T_s",
          "k", "seed", "hash", "cost"]


def jobs_of(stdout):
    jobs = [dict(zip(FIELDS, m.groups())) for m in map(JOB_LINE.match, stdout.splitlines()) if m]
    for j in jobs:
        j["index"], j["k"], j["seed"] = int(j["index"]), int(j["k"]), int(j["seed"])
    return jobs


def counts(jobs):
    c = {}
    for j in jobs:
        c[j["variant"]] = c.get(j["variant"], 0) + 1
    return c


# --- (a) the paper's grid ------------------------------------------------------------

ABLATION = {"temporal": 18, "separate": 18, "raster": 18, "temporal+M": 18, "separate+M": 15,  # 29 x 3
            "standard": 3, "standard+M": 3, "frozen": 3,                                      # baselines x 3
            "sparsemax": 24}                                                                   # 8 T_s x 3


def test_ablation(stsae, deck, work):
    rc, out, err = check(stsae, deck)
    if rc != 0:
        return report("ablation29: check succeeds", False, err.strip())
    jobs = jobs_of(out)
    report("ablation29: 120 jobs", len(jobs) == 120, f"got {len(jobs)}")
    report("ablation29: jobs per variant", counts(jobs) == ABLATION, str(counts(jobs)))
    contrastive = [j for j in jobs if j["variant"] in ("temporal", "separate", "raster", "temporal+M", "separate+M")]
    configs = {(j["variant"], j["lambda_t"], j["lambda_s"], j["lambda_r"], j["tau"]) for j in contrastive}
    report("ablation29: 29 contrastive configurations x 3 seeds",
           len(configs) == 29 and len(contrastive) == 87, f"{len(configs)} configurations, {len(contrastive)} jobs")
    report("ablation29: hashes unique", len({j["hash"] for j in jobs}) == len(jobs))
    report("ablation29: names unique", len({j["name"] for j in jobs}) == len(jobs))
    report("ablation29: indices 0..n-1 in order", [j["index"] for j in jobs] == list(range(len(jobs))))
    sep = [j for j in jobs if j["variant"].startswith("separate")]
    report("ablation29: separate has lambda_t = lambda_s", all(j["lambda_t"] == j["lambda_s"] != "-" for j in sep))
    ras = [j for j in jobs if j["variant"] == "raster"]
    report("ablation29: raster sets lambda_r only",
           all(j["lambda_r"] != "-" and j["lambda_t"] == j["lambda_s"] == "-" for j in ras))
    ts = sorted({float(j["T_s"]) for j in jobs if j["variant"] == "sparsemax"})
    report("ablation29: sparsemax T_s sweep with lambda_t 0.1",
           ts == [0.1, 0.5, 1, 2, 5, 10, 20, 50] and
           all(j["lambda_t"] == "0.1" for j in jobs if j["variant"] == "sparsemax"), str(ts))
    report("ablation29: no feature file, no model directory: the data checks are skipped, with a note",
           "# note: data checks skipped" in out)
    summary = out.strip().splitlines()[-1]
    report("ablation29: summary line", summary.startswith("# 120 jobs: standard 3,"), summary)
    again = os.path.join(work, "resolved.yaml")
    with open(again, "w") as f:
        f.write(out)
    rc2, out2, err2 = check(stsae, again)
    report("ablation29: the output loads again as the same deck",
           rc2 == 0 and out2.splitlines()[1:] == out.splitlines()[1:], err2.strip())


# --- (b) a small deck with overrides ---------------------------------------------------

SMALL = """\
run_dir: runs/small
train:
  seeds: [0, 1]
  grid:
    - {variant: standard}
    - {variant: temporal, lambda: [0.01, 0.1], tau: [0.05, 0.5]}
"""


def test_overrides(stsae, work):
    deck = os.path.join(work, "small.yaml")
    with open(deck, "w") as f:
        f.write(SMALL)
    rc, out, err = check(stsae, deck)
    jobs = jobs_of(out)
    report("small: 10 jobs", rc == 0 and len(jobs) == 10, err.strip() or f"got {len(jobs)}")
    names = [j["name"] for j in jobs]
    expect = ["standard_seed0", "standard_seed1"] + [f"temporal_lambda{l}_tau{t}_seed{s}"
                                                      for l in ("0.01", "0.1") for t in ("0.05", "0.5") for s in (0, 1)]
    report("small: Cartesian order (keys in file order, last fastest, seeds innermost)", names == expect, str(names))
    report("small: k defaults to 64", all(j["k"] == 64 for j in jobs))
    rc, out2, err = check(stsae, deck, "train.k=32")
    jobs2 = jobs_of(out2)
    report("small: train.k=32 changes every job's k and hash",
           rc == 0 and len(jobs2) == 10 and all(j["k"] == 32 for j in jobs2) and
           not {j["hash"] for j in jobs} & {j["hash"] for j in jobs2}, err.strip())
    rc, out3, err = check(stsae, deck, "train.seeds=[5]")
    jobs3 = jobs_of(out3)
    report("small: train.seeds=[5] gives 5 jobs, all seed 5",
           rc == 0 and len(jobs3) == 5 and all(j["seed"] == 5 for j in jobs3), err.strip())
    rc, out4, err = check(stsae, deck, "train.grid[1].lambda=0.5", "train.seeds=[0]")
    jobs4 = jobs_of(out4)
    report("small: an override reaches a grid entry",
           rc == 0 and [j["lambda_t"] for j in jobs4[1:]] == ["0.5", "0.5"], err.strip())
    rc, out5, err = check(stsae, deck)
    report("small: the same deck gives the same hashes", [j["hash"] for j in jobs_of(out5)] == [j["hash"] for j in jobs])


# grid entries with a list of variants (SPEC §7: every list-valued key expands,
# variant included); the split deck makes the same jobs one entry per variant
LISTS = """\
run_dir: runs/lists
train:
  seeds: [0]
  grid:
    - {variant: [temporal, separate], lambda: [0.1, 1.0]}
    - {variant: [standard, temporal+M], lambda: 0.5, high_frac: [0.1, 0.3]}
"""
SPLIT = """\
run_dir: runs/lists
train:
  seeds: [0]
  grid:
    - {variant: temporal, lambda: [0.1, 1.0]}
    - {variant: separate, lambda: [0.1, 1.0]}
    - {variant: standard}
    - {variant: temporal+M, lambda: 0.5, high_frac: [0.1, 0.3]}
"""


def test_variant_lists(stsae, work):
    deck, split = os.path.join(work, "lists.yaml"), os.path.join(work, "split.yaml")
    for path, text in ((deck, LISTS), (split, SPLIT)):
        with open(path, "w") as f:
            f.write(text)
    rc, out, err = check(stsae, deck)
    jobs = jobs_of(out)
    report("variant lists: {variant: [temporal, separate], lambda: [0.1, 1.0]} is four jobs",
           rc == 0 and len(jobs) == 7 and [j["variant"] for j in jobs[:4]] == ["temporal"] * 2 + ["separate"] * 2,
           err.strip() or str([j["name"] for j in jobs]))
    names = [j["name"] for j in jobs]
    expect = ["temporal_lambda0.1_seed0", "temporal_lambda1_seed0", "separate_lambda0.1_seed0", "separate_lambda1_seed0",
              "standard_seed0", "temporal+M_lambda0.5_high_frac0.1_seed0", "temporal+M_lambda0.5_high_frac0.3_seed0"]
    report("variant lists: variants slowest; lambda and high_frac apply to the variants that use them",
           names == expect, str(names))
    rc2, out2, err2 = check(stsae, split)
    report("variant lists: the same jobs and hashes as one entry per variant",
           rc2 == 0 and sorted((j["name"], j["hash"]) for j in jobs_of(out2)) == sorted((j["name"], j["hash"]) for j in jobs),
           err2.strip())
    again = os.path.join(work, "lists_resolved.yaml")
    with open(again, "w") as f:
        f.write(out)
    rc3, out3, err3 = check(stsae, again)
    report("variant lists: the output loads again as the same deck",
           rc3 == 0 and "{variant: [temporal, separate], lambda: [0.1, 1]}" in out and
           out3.splitlines()[1:] == out.splitlines()[1:], err3.strip())


# --- (c) bad decks ----------------------------------------------------------------------
# (name, deck text, overrides, expected key, words the message must contain).
# The offending line is marked `#<-`; expected key None means a YAML syntax
# error (FILE:LINE:COL:). A deck of None means the deck file does not exist.

GRID = "  grid:\n    - {variant: standard}\n"
PIX = "extract:\n  input: {csv: clips.csv}\n  patch: 4\n  image_size: 8\n  frames: 4\n"
TR = "train:\n  expansion: 1\n  k: 8\n  k_aux: 8\n"

BAD = [
    ("YAML syntax error", "run_dir: a\ntrain:\n  k: 3: 4   #<-\n" + GRID, [], None, ["mapping values are not allowed"]),
    ("tab in indentation", "run_dir: a\ntrain:\n\tk: 3   #<-\n", [], None, ["cannot start any token"]),
    ("unknown key, top level", "run_dir: a\ntrian:   #<-\n  k: 3\n", [], "trian", ["unknown key", "did you mean 'train'"]),
    ("unknown key, nested", "train:\n  k: 3\n  kk: 4   #<-\n" + GRID, [], "train.kk", ["unknown key", "did you mean 'k'"]),
    ("unknown key, grid entry", "train:\n  grid:\n    - {variant: standard}\n    - {variant: temporal, lamda: 0.1}   #<-\n",
     [], "train.grid[1].lamda", ["unknown key", "did you mean 'lambda'"]),
    ("unknown key, far from any", "train:\n" + GRID + "  zzzzzz: 1   #<-\n", [], "train.zzzzzz", ["unknown key"]),
    ("string where an integer goes", "train:\n  k: abc   #<-\n" + GRID, [], "train.k",
     ["expected an integer in [1, 65536] (got 'abc')"]),
    ("a map where a number goes", "train:\n  tau:   #<-\n    a: 1\n" + GRID, [], "train.tau", ["expected a number > 0 (got a map)"]),
    ("integer with a leading zero", "train:\n  k: 010   #<-\n" + GRID, [], "train.k", ["expected an integer", "'010'"]),
    ("k = 0", "train:\n  k: 0   #<-\n" + GRID, [], "train.k", ["expected an integer in [1, 65536] (got '0')"]),
    ("tau = -1", "train:\n  tau: -1   #<-\n" + GRID, [], "train.tau", ["expected a number > 0 (got '-1')"]),
    ("high_frac = 1.5", "train:\n  high_frac: 1.5   #<-\n" + GRID, [], "train.high_frac",
     ["expected a number in (0, 1] (got '1.5')"]),
    ("out of range in a grid list", "train:\n  grid:\n    - {variant: temporal, tau: [0.1, 0.0]}   #<-\n", [],
     "train.grid[0].tau[1]", ["expected a number > 0 (got '0.0')"]),
    ("enum value not allowed", "run_dir: a\ndevice: tpu   #<-\n", [], "device", ["expected one of cpu, cuda (got 'tpu')"]),
    ("boolean spelled yes", "extract:\n  input: {csv: a.csv}\n  final_norm: yes   #<-\n", [], "extract.final_norm",
     ["expected true or false (got 'yes')"]),
    ("duplicate key", "train:\n  k: 3\n  epochs: 2\n  k: 4   #<-\n" + GRID, [], "train.k",
     ["duplicate key", "first given at line 2"]),
    ("missing required key (grid)", "run_dir: a\ntrain:   #<-\n  k: 3\n", [], "train.grid", ["missing required key"]),
    ("grid entry without variant", "train:\n  grid:\n    - {variant: standard}\n    - {lambda: 0.1}   #<-\n", [],
     "train.grid[1].variant", ["missing required key"]),
    ("unknown variant", "train:\n  grid:\n    - {variant: standard}\n    - variant: temporal+X   #<-\n", [],
     "train.grid[1].variant", ["expected one of standard, temporal", "(got 'temporal+X')"]),
    ("empty grid", "train:\n  grid: []   #<-\n", [], "train.grid", ["expected a non-empty list of maps"]),
    ("extract input: two sources", "extract:\n  input: {csv: a.csv, pixels: p.h5}   #<-\n", [], "extract.input",
     ["exactly one of csv, ssv2, k400, pixels", "(got csv, pixels)"]),
    ("extract input: ssv2 incomplete", "extract:\n  input:\n    ssv2: {videos: v}   #<-\n", [],
     "extract.input.ssv2.annotations", ["missing required key"]),
    ("value the variant does not use", "train:\n  grid:\n    - {variant: standard, tau: 0.5}   #<-\n", [],
     "train.grid[0].tau", ["variant standard does not use tau"]),
    ("value none of the listed variants uses", "train:\n  grid:\n    - {variant: [standard, frozen], tau: 0.5}   #<-\n",
     [], "train.grid[0].tau", ["none of the variants standard, frozen uses tau"]),
    ("unknown variant in a list", "train:\n  grid:\n    - {variant: [temporal, temporal+X]}   #<-\n", [],
     "train.grid[0].variant[1]", ["expected one of standard, temporal", "(got 'temporal+X')"]),
    ("variant listed twice", "train:\n  grid:\n    - {variant: [raster, temporal, raster], lambda: 0.1}   #<-\n", [],
     "train.grid[0].variant[2]", ["variant raster is listed twice"]),
    ("empty list of variants", "train:\n  grid:\n    - {variant: []}   #<-\n", [], "train.grid[0].variant",
     ["expected a non-empty list"]),
    ("two jobs with identical values", "train:\n  grid:\n    - {variant: temporal, lambda: 0.1}\n"
     "    - {variant: temporal, lambda_t: 0.1}   #<-\n", [], "train.grid[1]",
     ["has the same values as job 'temporal_lambda0.1_seed0' of train.grid[0]", ":3)"]),
    ("two documents", "run_dir: a\n---   #<-\nrun_dir: b\n", [], "deck", ["one YAML document"]),
    ("bad override: unknown key", "train:\n" + GRID, ["train.kk=3"], "train.kk", ["unknown key", "did you mean 'k'"]),
    ("bad override: unknown section", "train:\n" + GRID, ["trian.k=3"], "trian", ["unknown key", "did you mean 'train'"]),
    ("bad override: bad value", "train:\n" + GRID, ["train.k=abc"], "train.k", ["expected an integer in [1, 65536] (got 'abc')"]),
    ("bad override: bad list value", "train:\n" + GRID, ["train.seeds=[0,x]"], "train.seeds[1]",
     ["expected an integer in [0, 4294967295] (got 'x')"]),
    ("bad override: YAML syntax", "train:\n" + GRID, ["train.seeds=[0,"], "", ["did not find expected node content"]),
    ("bad override: no '='", "train:\n" + GRID, ["train.k"], "", ["expected KEY=VALUE"]),
    ("bad override: no such grid entry", "train:\n" + GRID, ["train.grid[4].lambda=1"], "train.grid[4]", ["not in the deck"]),
    ("missing deck file", None, [], "", ["cannot open deck"]),
    # integers that would not fit the int they go into: refused, never cut to 32 bits
    ("k beyond 32 bits", "train:\n  k: 4294967297   #<-\n" + GRID, [], "train.k",
     ["expected an integer in [1, 65536] (got '4294967297')"]),
    ("k_aux beyond 32 bits (override)", "train:\n" + GRID, ["train.k_aux=4294967296"], "train.k_aux",
     ["expected an integer in [0, 65536] (got '4294967296')"]),
    ("expansion beyond 32 bits in a grid list",
     "train:\n  grid:\n    - {variant: standard, expansion: [8, 4294967304]}   #<-\n", [],
     "train.grid[0].expansion[1]", ["expected an integer in [1, 1024] (got '4294967304')"]),
    ("integer beyond 64 bits", "train:\n  epochs: 99999999999999999999   #<-\n" + GRID, [], "train.epochs",
     ["expected an integer in [1, ", "(got '99999999999999999999')"]),
    ("negative integer beyond 64 bits", "train:\n" + GRID, ["train.max_steps=-99999999999999999999"],
     "train.max_steps", ["expected an integer in [1, "]),
    ("seed beyond 32 bits", "train:\n" + GRID, ["train.seeds=[0,9223372036854775807]"], "train.seeds[1]",
     ["expected an integer in [0, 4294967295]"]),
    ("batch of tokens beyond an int", "train:\n  batch_tokens: 2147483648   #<-\n" + GRID, [], "train.batch_tokens",
     ["expected an integer in [1, "]),
    ("patch beyond any frame", "extract:\n  input: {csv: a.csv}\n  patch: 65536   #<-\n", [], "extract.patch",
     ["expected an integer in [1, "]),
    # every job checked against the data before anything runs; here the data
    # shape comes from the extract section (pixels: d = 3 patch^2 = 48, T = 4, H = W = 2)
    ("k larger than m (pixels, d = 48)", PIX + "train:\n  expansion: 1\n  k_aux: 8\n  k: 64   #<-\n" + GRID, [],
     "train.k", ["job standard_seed0", "k = 64 exceeds", "m = 48"]),
    ("k of a later grid entry larger than m",
     PIX + TR + "  grid:\n    - {variant: standard}\n    - {variant: standard, name: big, k: [6, 100]}   #<-\n", [],
     "train.grid[1].k", ["job big_k100_seed0", "k = 100 exceeds", "m = 48"]),
    ("k_aux larger than m", PIX + "train:\n  expansion: 1\n  k: 8\n  k_aux: 64   #<-\n" + GRID, [], "train.k_aux",
     ["job standard_seed0", "k_aux = 64 exceeds", "m = 48"]),
    ("+M: high_frac 1 leaves no low-level latent",
     PIX + TR + "  grid:\n    - {variant: standard+M, high_frac: 1.0}   #<-\n", [], "train.grid[0].high_frac",
     ["job standard+M_high_frac1_seed0", "m_h = 48"]),
    ("+M: high_frac too small for m", PIX + TR + "  high_frac: 0.001   #<-\n  grid:\n    - {variant: temporal+M, lambda: 0.1}\n",
     [], "train.high_frac", ["m_h = 0"]),
    ("temporal on clips of one frame", PIX.replace("frames: 4", "frames: 1") + TR +
     "  grid:\n    - {variant: temporal, lambda: 0.1}   #<-\n", [], "train.grid[0].variant", ["T = 1"]),
    ("separate on a grid one patch wide", PIX.replace("image_size: 8", "image_size: 4") + TR +
     "  grid:\n    - {variant: separate, lambda: 0.1}   #<-\n", [], "train.grid[0].variant", ["W = 1"]),
    ("raster on clips of one token", PIX.replace("image_size: 8", "image_size: 4").replace("frames: 4", "frames: 1") + TR +
     "  grid:\n    - {variant: raster, lambda: 0.1}   #<-\n", [], "train.grid[0].variant", ["raster pair"]),
    ("pixels: image_size not a multiple of patch", PIX.replace("image_size: 8", "image_size: 10   #<-") + TR + GRID, [],
     "extract.image_size", ["multiple of extract.patch"]),
    ("train.layer not among extract.layers", PIX + "  layers: [0, 1]\ntrain:\n  layer: 11   #<-\n  expansion: 1\n"
     "  k: 8\n  k_aux: 8\n" + GRID, [], "train.layer", ["extract.layers"]),
    ("a grid layer not among extract.layers", PIX + "  layers: [0, 1]\ntrain:\n  layer: 1\n  expansion: 1\n"
     "  k: 8\n  k_aux: 8\n  grid:\n    - {variant: standard, layer: [0, 3]}   #<-\n", [], "train.grid[0].layer",
     ["job standard_layer3_seed0", "layer 3 is not among the layers of", "extract section"]),
]


def expected_prefix(path, text, over, key):
    if text is None:
        return f"{path}: "
    if over:
        return f"command line: {over[-1]}: {key}: " if key else f"command line: "
    line = next(i + 1 for i, l in enumerate(text.splitlines()) if "#<-" in l)
    return f"{path}:{line}:" if key is None else f"{path}:{line}: {key}: "


def test_bad(stsae, work):
    for i, (name, text, over, key, words) in enumerate(BAD):
        path = os.path.join(work, f"bad{i:02d}.yaml")
        if text is None:
            if os.path.exists(path):
                os.remove(path)
        else:
            with open(path, "w") as f:
                f.write(text)
        rc, out, err = check(stsae, path, *over)
        prefix = expected_prefix(path, text, over, key)
        lines = err.strip().splitlines()
        msg = lines[0] if lines else ""
        if key is None:  # syntax error: FILE:LINE:COL:
            ok_prefix = re.match(re.escape(prefix) + r"\d+: ", msg) is not None
        else:
            ok_prefix = msg.startswith(prefix)
        missing = [w for w in words if w not in msg]
        ok = rc == 1 and len(lines) == 1 and out == "" and ok_prefix and not missing
        why = f"rc={rc}, stderr={err.strip()!r}, expected prefix {prefix!r}" + (f", missing {missing}" if missing else "")
        report(f"bad deck: {name}", ok, why)


# --- (d) YAML aliases that expand without limit -------------------------------------------

def laughs_deck(levels=9, width=9):
    """A "billion laughs" deck: level i is a list of `width` aliases of level i-1,
    so the last one expands to width^levels scalars from about 500 bytes."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def limit_memory():
    import resource
    # 4 GiB of address space: a regression (width^levels values) fails, it cannot swap
    # the machine. Not less: a CUDA build maps cuBLAS and cuBLASLt (~1 GiB of address
    # space) at start-up, and OpenBLAS, left without room for its buffers, retries mmap
    # forever instead of failing (1 GiB hung `stsae check` there).
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def built_with_asan(stsae):
    """AddressSanitizer reserves terabytes of address space for its shadow memory at
    start-up, which RLIMIT_AS forbids ("ReserveShadowMemoryRange failed"): an ASan
    build (gcc links libasan, clang links its runtime in; both name __asan_init) is
    capped by ASan's own RSS limit instead."""
    with open(stsae, "rb") as f:
        return b"__asan_init" in f.read()


def test_laughs(stsae, work, mpirun, mpi_flags):
    path = os.path.join(work, "laughs.yaml")
    text = laughs_deck()
    with open(path, "w") as f:
        f.write(text)
    want = re.compile(re.escape(path) + r":\d+: l\d(\[\d+\])*: .*more than 100000 values")
    limit = {"preexec_fn": limit_memory}
    if built_with_asan(stsae):
        asan = os.environ.get("ASAN_OPTIONS", "")
        limit = {"env": dict(os.environ, ASAN_OPTIONS=(asan + ":" if asan else "") + "hard_rss_limit_mb=1024")}
    try:
        p = subprocess.run([stsae, "check", path], capture_output=True, text=True, timeout=30, **limit)
        rc, err = p.returncode, p.stderr.strip()
    except subprocess.TimeoutExpired:
        rc, err = "timeout", ""
    ok = rc == 1 and len(err.splitlines()) == 1 and want.match(err) is not None
    report(f"billion laughs ({len(text)} bytes): one FILE:LINE error, exit 1", ok, f"rc={rc}, stderr={err[:300]!r}")
    if not ok or not mpirun:
        return
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    try:
        p = subprocess.run([mpirun, "-np", "3", *mpi_flags.split(), stsae, "check", path], capture_output=True,
                           text=True, timeout=60, env=env)
        rc, errs = p.returncode, [l for l in p.stderr.splitlines() if want.match(l)]
    except subprocess.TimeoutExpired:
        rc, errs = "timeout", []
    # stsae check is no MPI program: mpirun ends the other ranks once one exits 1, so at least one message
    report("billion laughs on 3 ranks: exit 1, the message, no crash",
           rc == 1 and len(errs) >= 1 and not re.search(r"signal|segmentation|core dumped", p.stderr, re.I),
           f"rc={rc}, stderr={p.stderr[:400] if rc != 'timeout' else ''!r}")


# --- (e) every job checked against the data before anything trains -------------------------

def test_data(stsae, work, mpirun, mpi_flags):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
    from make_features import make  # h5py + numpy, as the train tests
    feat = os.path.join(work, "f.h5")
    make(feat, clips=12, T=3, H=2, W=2, d=8, seed=3)  # 9 training clips of 3 x 4 tokens, d = 8
    base = f"run_dir: {work}/run\ntrain:\n  features: {feat}\n  layer: 0\n  expansion: 2\n  k: 4\n  k_aux: 4\n" \
           "  epochs: 1\n  batch_tokens: 16\n  batch_clips: 4\n  batch_pairs: 8\n  streams: 2\n  seeds: [0]\n"
    grid = "  grid:\n    - {variant: standard}\n    - {variant: temporal, lambda: 0.1}\n"
    good = os.path.join(work, "data_good.yaml")
    with open(good, "w") as f:
        f.write(base + grid)
    rc, out, err = check(stsae, good)
    report("feature file present: the jobs are checked against it",
           rc == 0 and f"# data: {feat}, layer 0: d=8, T=3, H=2, W=2, 9 training clips" in out, err.strip() or out[-300:])
    rc, out, err = check(stsae, good, f"train.features={work}/absent.h5")
    report("no feature file, no extract section: a note says the data checks were skipped",
           rc == 0 and "# note: data checks skipped" in out, err.strip())
    cases = [
        ("batch of clips larger than the training clips", base.replace("batch_clips: 4", "batch_clips: 20   #<-") + grid,
         "train.batch_clips", ["job temporal_lambda0.1_seed0", "20 clips", "9 training clips"]),
        ("no full batch of tokens in the epochs", base.replace("batch_tokens: 16", "batch_tokens: 200   #<-") + grid,
         "train.batch_tokens", ["job standard_seed0", "no full batch of 200 tokens"]),
        ("k larger than m of the file's d", base.replace("k: 4\n", "k: 17   #<-\n") + grid, "train.k",
         ["job standard_seed0", "k = 17 exceeds", "m = 16"]),
    ]
    for i, (name, text, key, words) in enumerate(cases):
        path = os.path.join(work, f"data_bad{i}.yaml")
        with open(path, "w") as f:
            f.write(text)
        rc, out, err = check(stsae, path)
        prefix = expected_prefix(path, text, [], key)
        msg = err.strip().splitlines()[0] if err.strip() else ""
        missing = [w for w in words if w not in msg]
        report(f"feature file: {name}", rc == 1 and out == "" and msg.startswith(prefix) and not missing,
               f"rc={rc}, stderr={err.strip()!r}, expected prefix {prefix!r}, missing {missing}")
    if not mpirun:
        return
    # stsae train: a job that cannot run fails the whole run before any job trains
    path = os.path.join(work, "data_train.yaml")
    text = base.replace(f"{work}/run", f"{work}/run_train") + \
        "  grid:\n    - {variant: standard}\n    - {variant: standard, name: big, k: 100}   #<-\n"
    with open(path, "w") as f:
        f.write(text)
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = subprocess.run([mpirun, "-np", "3", *mpi_flags.split(), stsae, "train", path], capture_output=True, text=True,
                       timeout=120, env=env)
    prefix = expected_prefix(path, text, [], "train.grid[1].k")
    hits = [l for l in p.stderr.splitlines() if l.startswith(prefix) and "job big_k100_seed0: k = 100 exceeds" in l]
    trained = glob.glob(f"{work}/run_train/jobs/*/model.h5")
    report("stsae train on 3 ranks: k > m of a later job stops the run before any job trains",
           p.returncode == 1 and len(hits) == 1 and not trained and "starting," not in p.stdout,
           f"rc={p.returncode}, {len(trained)} models, stderr={p.stderr.strip()[:400]!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--deck", required=True, help="inputs/ablation29.yaml")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--mpirun", default=None, help="for the 3-rank cases (skipped without it)")
    ap.add_argument("--mpi-flags", default="--oversubscribe")
    a = ap.parse_args()
    work = a.workdir or tempfile.mkdtemp(prefix="stsae_deck_")
    os.makedirs(work, exist_ok=True)
    test_ablation(a.stsae, a.deck, work)
    test_overrides(a.stsae, work)
    test_variant_lists(a.stsae, work)
    test_bad(a.stsae, work)
    test_laughs(a.stsae, work, a.mpirun, a.mpi_flags)
    test_data(a.stsae, work, a.mpirun, a.mpi_flags)
    failed = RESULTS.count(False)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
