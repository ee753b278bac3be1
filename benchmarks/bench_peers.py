#!/usr/bin/python3
"""stsae's CPU training step against the peers' own, on the same cores and
the same shape: the lead measured, not remembered (issue 18's peers table).

  /usr/bin/python3 benchmarks/bench_peers.py --bench-step build/benchmarks/bench_step
        [--venv ~/.cache/stsae/venv-saelens] [--threads 2] [--reps 5] [--rounds 3]
        [--shape 768,6144,64] [--tokens 4096] [--peers saelens,sparsify,dictionary_learning]

Every system trains a TopK SAE (d, m, k of --shape; float32; CPU) on batches
of --tokens random tokens, through its own training step, as its trainer runs
it (the step's body copied from the trainer where the trainer itself needs a
language model and a dataset to run):
  stsae                `bench_step --variants standard --dead-frac 0`: sae_step
                       (TopK, AuxK k_aux = 512 over the dead latents: none here)
                       and Adam (optim_step), the C step of `stsae train`.
  SAELens (sae-lens)   TopKTrainingSAE, the body of SAETrainer._train_step:
                       training_forward_pass (TopK, its AuxK), the firing
                       counts, backward, clip_grad_norm_(1.0), Adam, zero_grad.
  sparsify (eai-sparsify) SparseCoder, the body of Trainer.fit's step
                       (SPARSIFY_DISABLE_TRITON=1: its Triton decoder is GPU-only;
                       the eager one, as on any CPU): decoder to unit norm, forward (TopK) with the dead mask,
                       fvu (+ auxk_alpha x AuxK: 0, its default), backward, the
                       gradient parallel to the decoder removed, its default
                       optimizer (schedule-free Signum; Adam where schedulefree
                       is missing).
  dictionary_learning  TopKTrainer.update(step, x) itself (TopK, AuxK, Adam,
                       decoder-gradient projection, threshold update). The
                       package imports nnsight at top level for its activation
                       buffer, which this does not use: a stand-in module is put
                       in its place.

Rounds alternate the systems (stsae, SAELens, sparsify, dictionary_learning,
stsae, ...) so that the machine's drift hits all alike. Each runs in a fresh
process with the same threads (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS,
MKL_NUM_THREADS and torch.set_num_threads): 2 warm-up steps, then --reps timed
steps; the median step. Peak memory: the process's maximum resident set
(wait4's ru_maxrss; the Python interpreter and PyTorch included for the peers).

Output: one JSON line per system and round, then a Markdown table: median of
the rounds' tokens/s, step ms, stsae's step over its own encoder sgemm (the
distance to the limit, bench_step's), peak RSS, and stsae's lead (stsae's
tokens/s over the system's); and the machine as it is (CPU model, vector
flags, the OpenBLAS kernel loaded). The peers live in a cached virtual environment (--venv,
as tests/test_export.py makes it: `python3 -m venv --system-site-packages`,
then `pip install sae-lens eai-sparsify`, and `pip install --no-deps
dictionary-learning`); a peer that does not import there is reported and
skipped.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PEERS = ("saelens", "sparsify", "dictionary_learning")
NAMES = {"stsae": "stsae", "saelens": "SAELens", "sparsify": "sparsify", "dictionary_learning": "dictionary_learning"}


# --- the worker: one peer's steps, inside the venv's python -----------------------------

def worker(a):
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d, m, k = (int(v) for v in a.shape.split(","))
    x = torch.randn(a.tokens, d)
    version = ""
    if a.worker == "saelens":
        import sae_lens
        from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
        from sae_lens.saes.sae import TrainStepInput
        version = sae_lens.__version__
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=m, k=k, dtype="float32", device="cpu"))
        opt = torch.optim.Adam(sae.parameters(), lr=3e-4)
        dead = torch.zeros(m, dtype=torch.bool)
        since_fired = torch.zeros(m)

        def step(i):
            sae.train()
            out = sae.training_forward_pass(TrainStepInput(sae_in=x, coefficients={}, dead_neuron_mask=dead,
                                                           n_training_steps=i, is_logging_step=False))
            with torch.no_grad():
                did_fire = out.feature_acts.bool().float().sum(-2).bool()
                since_fired.add_(1)
                since_fired[did_fire] = 0
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
    elif a.worker == "sparsify":
        from importlib.metadata import version as pkg_version
        from sparsify import SparseCoder, SparseCoderConfig
        version = pkg_version("eai-sparsify")
        sae = SparseCoder(d, SparseCoderConfig(num_latents=m, k=k), device="cpu", dtype=torch.float32)
        try:
            from schedulefree import ScheduleFreeWrapper
            from sparsify.sign_sgd import SignSGD
            opt = ScheduleFreeWrapper(SignSGD([dict(params=sae.parameters(), lr=5e-3 / (m / 2 ** 14) ** 0.5)]),
                                      momentum=0.95)
            opt.train()
            version += " (signum)"
        except ImportError:
            opt = torch.optim.Adam(sae.parameters(), lr=2e-4 / (m / 2 ** 14) ** 0.5)
            version += " (adam)"
        tokens_since = torch.zeros(m, dtype=torch.long)

        def step(i):
            sae.set_decoder_norm_to_unit_norm()
            out = sae(x, dead_mask=tokens_since > 10_000_000)
            did_fire = torch.zeros(m, dtype=torch.bool)
            did_fire[out.latent_indices.flatten()] = True
            tokens_since.add_(x.shape[0])
            tokens_since[did_fire] = 0
            out.fvu.backward()
            sae.remove_gradient_parallel_to_decoder_directions()
            opt.step()
            opt.zero_grad()
    elif a.worker == "dictionary_learning":
        import types
        sys.modules.setdefault("nnsight", types.SimpleNamespace(LanguageModel=object))
        from importlib.metadata import version as pkg_version
        from dictionary_learning.trainers.top_k import TopKTrainer
        version = pkg_version("dictionary-learning")
        tr = TopKTrainer(steps=10 ** 6, activation_dim=d, dict_size=m, k=k, layer=0, lm_name="bench", device="cpu",
                         seed=0)

        def step(i):
            tr.update(i + 1, x)  # step 0 would also fit the geometric median for b_dec, once
    else:
        raise SystemExit(f"unknown peer {a.worker}")
    for i in range(2):
        step(i)
    times = []
    for i in range(a.reps):
        t0 = time.perf_counter()
        step(2 + i)
        times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    print(json.dumps({"system": a.worker, "version": version, "tokens": a.tokens, "step_s": s,
                      "tokens_per_s": a.tokens / s, "threads": a.threads}))


# --- the driver ----------------------------------------------------------------------------

def run_child(cmd, env):
    """Runs cmd; its last JSON line (a dict) with the child's own peak RSS in
    MiB (wait4's ru_maxrss), or an error string."""
    import tempfile
    with tempfile.TemporaryFile(mode="w+") as errf:
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=errf, text=True)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        err = errf.read()
    if p.returncode != 0:
        return f"exit {p.returncode}: {err.strip()[-400:]}"
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        return f"no result: {out.strip()[-200:]}"
    got = json.loads(lines[-1])
    got["peak_rss_mib"] = usage.ru_maxrss / 1024.0
    return got


def machine():
    """The CPU as it is: model name, family/model, the vector flags that matter,
    and the OpenBLAS kernel this process loads (what bench_step links)."""
    info, flags = {}, set()
    try:
        for line in open("/proc/cpuinfo"):
            k, _, v = line.partition(":")
            k, v = k.strip(), v.strip()
            if k in ("model name", "cpu family", "model") and k not in info:
                info[k] = v
            if k == "flags" and not flags:
                flags = set(v.split())
    except OSError:
        pass
    vec = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))
    core = "?"
    try:
        import ctypes
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        core = lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        pass
    return (f"{info.get('model name', '?')} (family {info.get('cpu family', '?')} model {info.get('model', '?')}), "
            f"{os.cpu_count()} CPUs, flags {' '.join(vec) or 'none'}; OpenBLAS kernel {core}"
            f"{' (OPENBLAS_CORETYPE=' + os.environ['OPENBLAS_CORETYPE'] + ')' if 'OPENBLAS_CORETYPE' in os.environ else ''}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench-step", help="build/benchmarks/bench_step")
    ap.add_argument("--venv", default=os.path.expanduser("~/.cache/stsae/venv-saelens"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shape", default="768,6144,64", help="d,m,k")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    if not a.bench_step:
        ap.error("--bench-step is required")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads),
               MKL_NUM_THREADS=str(a.threads), SPARSIFY_DISABLE_TRITON="1")
    py = os.path.join(a.venv, "bin", "python")
    peers = [p for p in a.peers.split(",") if p]
    d, m, k = (int(v) for v in a.shape.split(","))
    cmds = {"stsae": [a.bench_step, "--variants", "standard", "--dead-frac", "0", "--reps", str(a.reps), "--json",
                      "--shape", f"{d},{m},{k},512"]}
    for p in peers:
        cmds[p] = [py, os.path.abspath(__file__), "--worker", p, "--threads", str(a.threads), "--reps", str(a.reps),
                   "--shape", a.shape, "--tokens", str(a.tokens)]
    results, skipped = {s: [] for s in cmds}, {}
    for r in range(a.rounds):
        for s, cmd in cmds.items():
            if s in skipped:
                continue
            if s == "stsae" and a.tokens != 4096:
                raise SystemExit("bench_step times 4096-token batches: use --tokens 4096")
            got = run_child(cmd, env)
            if isinstance(got, str):
                skipped[s] = got
                print(f"# {NAMES[s]}: skipped: {got}", flush=True)
                continue
            if s == "stsae":  # bench_step's own line: tokens, step_s, sgemm_s, tokens_per_s
                got = {"system": "stsae", "version": "", "tokens": got["tokens"], "step_s": got["step_s"],
                       "tokens_per_s": got["tokens_per_s"], "sgemm_s": got.get("sgemm_s"),
                       "peak_rss_mib": got["peak_rss_mib"], "threads": a.threads}
            got["round"] = r
            results[s].append(got)
            print(json.dumps(got), flush=True)
    base = statistics.median(g["tokens_per_s"] for g in results["stsae"]) if results["stsae"] else float("nan")
    print(f"\n| system | version | tokens/s | step ms | step/sgemm | peak RSS MiB | stsae's lead |\n"
          f"|---|---|---:|---:|---:|---:|---:|")
    for s, rs in results.items():
        if not rs:
            continue
        tps = statistics.median(g["tokens_per_s"] for g in rs)
        rss = [g["peak_rss_mib"] for g in rs if g.get("peak_rss_mib")]
        ratio = statistics.median(g["step_s"] / g["sgemm_s"] for g in rs) if rs[0].get("sgemm_s") else None
        print(f"| {NAMES[s]} | {rs[0]['version']} | {tps:,.0f} | {1e3 * a.tokens / tps:.0f} | "
              f"{f'{ratio:.2f}' if ratio else ''} | {max(rss) if rss else float('nan'):.0f} | {base / tps:.2f}x |")
    for s, why in skipped.items():
        print(f"| {NAMES[s]} | skipped: {why[:120]} | | | | | |")
    print(f"\n# {machine()}")
    print(f"# d={d} m={m} k={k}, {a.tokens} tokens per step, {a.threads} threads, median of {a.rounds} rounds "
          f"of {a.reps} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
