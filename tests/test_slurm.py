#!/usr/bin/python3
"""jobscripts/ on a real single-node Slurm started here (munged, slurmctld, slurmd).

  /usr/bin/python3 tests/test_slurm.py --stsae build/stsae --jobscripts jobscripts --workdir DIR

Needs root (or passwordless sudo, under which it reruns itself) and the Debian
packages slurm-wlm and munge; without them it exits 77 (ctest: skipped). The
daemons run from DIR/slurm with free ports and a private munge socket, and are
killed on exit, failure included: a watchdog process kills every process that
runs with this test's SLURM_CONF once the test is gone, even after a SIGKILL.

Without Slurm:
  (a) each sbatch script refuses to run outside a Slurm job (exit 2, a message);
      each sources jobscripts/runner.sh, which a copy of the script (what sbatch
      runs) finds through $STSAE_JOBSCRIPTS or $SLURM_SUBMIT_DIR/jobscripts, and
      without either exits 2 naming where it looked;
  (b) chain.sh: usage, a bad deck (exit 1, nothing submitted), --dry-run
      (a device: cuda deck's train stage goes to train-gpu.sbatch).
With Slurm (every job 2 tasks x 1 cpu):
  (c) the real stsae: `chain.sh DECK` on a deck with synth, extract, train (two tiny
      SAEs on a feature file in the SPEC §3 layout, written here) and eval:
      three jobs (extract.sbatch runs synth), each COMPLETED 0:0, and the run
      directory holds what the stages write (train.yaml, jobs/NAME/model.h5
      and eval.h5 for every job of `stsae check`, raw/eval.h5, results.*).
      Then a real checkpoint-and-requeue: the same grid for 40000 epochs,
      SIGUSR1 to the batch shell once training is under way (its first
      progress line is in the log): the job requeues itself once
      (Restarts=1), COMPLETES, both models written, no stop file left.
  (d) requeue: a fake STSAE whose `train` waits for a stop request as stsae
      does (SIGUSR1, or the stop file RUN_DIR/STOP that the batch shell's trap
      writes, for launchers that pass no signal on) and exits 3 on its first
      run, 0 on the rerun; the test sends SIGUSR1 to the batch shell
      (`scancel -b -s USR1`, what `--signal=B:USR1@T` does). Both ranks must
      hear the request, the job requeue itself (Restarts=1), COMPLETE, leave
      no stop file, and only then release its afterok dependant (eval, then
      report RUN_DIR). Once through srun (PMIx) and once through mpirun
      (STSAE_LAUNCHER=mpirun).
  (e) scancel (SIGTERM to the ranks and the shell): CANCELLED, not requeued,
      the dependant cancelled.
  (f) a failing train (exit 1): the job FAILED 1:0, its dependant cancelled.
  (g) a launch that fails (a stale PMIx directory of the step; srun 22.05 then
      exits 0): the script notices that no task started, FAILED 1:0.
  (h) a bare `sbatch jobscripts/eval.sbatch DECK` (no chain.sh): from the
      repository root it finds runner.sh and COMPLETES; from elsewhere it
      FAILS 2:0 naming where it looked for runner.sh.
  (i) scaling.sh: without Slurm its usage (exit 2), a bad deck (exit 1,
      nothing submitted) and --dry-run (a train.sbatch per mode and rank
      count, with --ntasks, train.ranks_per_job and, weak, train.seeds; then
      the collect job; with --gpus, train-gpu.sbatch with --gpus-per-node); with Slurm, strong and weak sweeps on 1 and 2 ranks of
      the real stsae and its collect job: every job COMPLETED, DIR/scaling.md
      with a tokens/s figure on each of the 4 rows, 100% efficiency at 1 rank,
      twice the jobs in the weak 2-rank point; `--collect DIR` by hand writes
      the same table.
Prints one line per check and `N passed, M failed`; exit 1 on failure.
"""

import argparse
import glob
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

SKIP = 77
RESULTS = []
HERE = os.path.dirname(os.path.abspath(__file__))


def report(name, ok, why=""):
    RESULTS.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + why}", flush=True)
    return ok


def skip(why):
    print(f"SKIP: {why}", flush=True)
    sys.exit(SKIP)


# --- processes started with our SLURM_CONF -----------------------------------------------

def ours(conf):
    """PIDs of the processes whose environment has SLURM_CONF=conf: the daemons,
    slurmstepd and every job process of this test's Slurm (all started by it)."""
    key = b"SLURM_CONF=" + conf.encode() + b"\0"
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if key in f.read() + b"\0":
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def kill_ours(conf, grace=3.0):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = ours(conf)
        for p in pids:
            try:
                os.kill(p, sig)
            except OSError:
                pass
        end = time.time() + grace
        while pids and time.time() < end:
            pids = [p for p in pids if os.path.exists(f"/proc/{p}") and not zombie(p)]
            time.sleep(0.1)
        if not pids:
            return


def zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def watchdog(parent, conf):
    """Runs detached (its own session): once `parent` is gone, kill what it left."""
    while os.path.exists(f"/proc/{parent}") and not zombie(parent):
        time.sleep(1)
    kill_ours(conf)


# --- a private single-node Slurm (after shared/reference/slurm-local) -------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Slurm:
    def __init__(self, root):
        self.root = root
        self.conf = os.path.join(root, "etc", "slurm.conf")
        self.procs = []
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        for k in list(self.env):
            if k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")) and k != "SLURM_CONF":
                del self.env[k]

    def run(self, *cmd, timeout=30, env=None):
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or self.env)

    def start(self):
        r = self.root
        for d in ("etc", "spool/ctld", "spool/d", "log", "run", "munge", "tmp"):
            os.makedirs(os.path.join(r, d), exist_ok=True)
        os.chmod(os.path.join(r, "munge"), 0o700)
        key = os.path.join(r, "munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(128))
        os.chmod(key, 0o600)
        sock = os.path.join(r, "munge", "munge.socket.2")
        host = socket.gethostname().split(".")[0]
        ctld, slurmd = free_port(), free_port()
        while slurmd == ctld:
            slurmd = free_port()
        with open(self.conf, "w") as f:
            f.write(f"""# written by tests/test_slurm.py; see shared/reference/slurm-local
ClusterName=stsaetest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock},cred_expire=5
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldPort={ctld}
SlurmdPort={slurmd}
FirstJobId={random.randint(1000, 1000000)}
TmpFS={r}/tmp
StateSaveLocation={r}/spool/ctld
SlurmdSpoolDir={r}/spool/d
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
JobRequeue=1
MinJobAge=600
KillWait=5
MailProg=/bin/true
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
""")
        # The watchdog first: from here on, whatever happens to this process, the
        # daemons and their jobs (all with our SLURM_CONF) die with it.
        subprocess.Popen([sys.executable, os.path.abspath(__file__), "--watchdog", str(os.getpid()), self.conf],
                         start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env)
        log = lambda name: open(os.path.join(r, "log", name), "ab")  # noqa: E731
        # Foreground daemons: children of this process (munged refuses root without --force).
        self.procs.append(subprocess.Popen(
            ["munged", "--foreground", "--force", f"--key-file={key}", f"--socket={sock}",
             f"--pid-file={r}/munge/munged.pid", f"--log-file={r}/log/munged.log",
             f"--seed-file={r}/munge/munged.seed"],
            stdout=log("munged.out"), stderr=subprocess.STDOUT, env=self.env))
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"munged did not create {sock}; see {r}/log/munged.*")
        self.procs.append(subprocess.Popen(["slurmctld", "-D", "-i"], stdout=log("slurmctld.out"),
                                           stderr=subprocess.STDOUT, env=self.env))
        self.procs.append(subprocess.Popen(["slurmd", "-D"], stdout=log("slurmd.out"),
                                           stderr=subprocess.STDOUT, env=self.env))
        for _ in range(60):
            p = self.run("sinfo", "-h", "-o", "%T")
            if p.returncode == 0 and "idle" in p.stdout:
                return
            for d in self.procs:
                if d.poll() is not None:
                    raise RuntimeError(f"{d.args[0]} exited {d.returncode}; see {r}/log")
            time.sleep(0.5)
        raise RuntimeError(f"the node did not become idle; see {r}/log")

    def stop(self):
        if not os.path.exists(self.conf):
            return
        try:
            q = self.run("squeue", "-h", "-o", "%i", timeout=10)
            ids = q.stdout.split()
            if ids:
                self.run("scancel", *ids, timeout=10)
        except (subprocess.SubprocessError, OSError):
            pass
        for d in reversed(self.procs):
            if d.poll() is None:
                d.terminate()
        for d in reversed(self.procs):
            try:
                d.wait(timeout=10)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
        kill_ours(self.conf)

    def job(self, jid):
        """scontrol's fields of a job: JobState, ExitCode, Restarts, ..."""
        p = self.run("scontrol", "-o", "show", "job", str(jid))
        f = {}
        for tok in p.stdout.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                f.setdefault(k, v)
        return f

    def wait(self, ids, timeout):
        """Polls squeue until none of `ids` is pending or running; False on timeout."""
        end = time.time() + timeout
        while time.time() < end:
            p = self.run("squeue", "-h", "-o", "%i", "-j", ",".join(map(str, ids)))
            if p.returncode == 0 and not p.stdout.split():
                return True
            time.sleep(0.5)
        return False


# --- inputs ------------------------------------------------------------------------------

def write_features(path, clips=12, T=4, H=2, W=2, d=8, layer=0, seed=0):
    """A tiny feature file in the layout of SPEC §3."""
    import h5py
    import numpy as np
    rng = np.random.default_rng(seed)
    N = H * W
    with h5py.File(path, "w") as f:
        x = rng.standard_normal((clips, T, N, d)).astype(np.float16)
        f.create_dataset(f"features/layer_{layer:02d}", data=x, chunks=(1, T, N, d))
        f["labels"] = (np.arange(clips) % 3).astype(np.int32)
        f["split"] = (np.arange(clips) % 4 == 3).astype(np.uint8)
        s = h5py.string_dtype()
        f.create_dataset("clip_ids", data=[f"clip{i:03d}" for i in range(clips)], dtype=s)
        f.create_dataset("label_names", data=["a", "b", "c"], dtype=s)
        f["done"] = np.ones(clips, np.uint8)
        for k, v in dict(T=T, H=H, W=W, N=N, d=d).items():
            f.attrs[k] = np.int64(v)
        f.attrs["backbone"] = "pixels"
        f.attrs["layers"] = np.array([layer], np.int64)


def write_deck(path, run_dir, features, eval_section=False, synth=None):
    """synth given: the synthetic videos, then their `pixels` features by
    stsae extract (features is then that file), so the chain runs every stage."""
    with open(path, "w") as f:
        f.write(f"""# tests/test_slurm.py: two tiny SAEs on a tiny feature file
run_dir: {run_dir}
device: cpu
""")
        if synth:
            f.write(f"synth: {{out: {synth}, clips: 28, frames: 4, size: 16, test_frac: 0.5}}\n")
            f.write(f"""extract:
  input: {{csv: {synth}/clips.csv}}
  backbone: pixels
  layers: [0]
  frames: 4
  image_size: 16
  patch: 8
  out: {features}
""")
        f.write(f"""train:
  features: {features}
  layer: 0
  expansion: 2
  k: 2
  k_aux: 0
  epochs: 2
  batch_tokens: 16
  batch_clips: 2
  batch_pairs: 8
  scale_sample: 64
  seeds: [0]
  grid:
    - {{variant: standard}}
    - {{variant: temporal, lambda: 0.1}}
""")
        if eval_section:
            f.write("eval:\n  embeddings: raw\n")


# The fake STSAE of (d)-(f): logs every call to $FAKE_DIR/calls, `check` and
# `stop` are the real ones; `train` follows $FAKE_MODE: signal (first run: wait
# for a stop request as stsae does, SIGUSR1, SIGTERM or the stop file, exit 3;
# rerun: exit 0) or fail (exit 1).
FAKE = r"""#!/bin/bash
set -u
rank=${PMIX_RANK:-${OMPI_COMM_WORLD_RANK:-${SLURM_PROCID:-0}}}
echo "cmd=$1 rank=$rank restart=${SLURM_RESTART_COUNT:-0} omp=${OMP_NUM_THREADS:-} args=${*:2}" >> "$FAKE_DIR/calls"
case $1 in
  check|stop) exec "$FAKE_REAL" "$@" ;;
  train)
    [ "$FAKE_MODE" = fail ] && exit 1
    [ "${SLURM_RESTART_COUNT:-0}" -ge 1 ] && exit 0
    stopfile=$("$FAKE_REAL" stop --path "${@:2}")
    got=""
    trap 'got=USR1' USR1
    trap 'got=TERM' TERM
    touch "$FAKE_DIR/started.$rank"
    for _ in $(seq 300); do
      if [ -z "$got" ] && [ -e "$stopfile" ]; then got=STOP; fi
      # (a pause before exiting, as stsae's barrier: mpirun kills the other
      # ranks once one exits non-zero)
      if [ -n "$got" ]; then
        echo "rank=$rank got=$got" >> "$FAKE_DIR/signals"
        sleep 0.5
        if [ "$rank" = 0 ]; then rm -f "$stopfile"; fi
        exit 3
      fi
      sleep 0.1
    done
    exit 1 ;;
  *) exit 0 ;;
esac
"""


# --- checks --------------------------------------------------------------------------------

SCRIPTS = ("extract", "train", "eval", "extract-gpu", "train-gpu", "eval-gpu")


def check_outside(js, stsae, deck, env):
    """(a) Each sbatch script refuses to run outside Slurm."""
    for s in SCRIPTS:
        p = subprocess.run(["bash", os.path.join(js, f"{s}.sbatch"), deck], capture_output=True, text=True,
                           timeout=30, env=dict(env, STSAE=stsae))
        report(f"outside_slurm_{s}", p.returncode == 2 and "not inside a Slurm job" in p.stderr,
               f"exit {p.returncode}, stderr {p.stderr.strip()!r}")


def check_runner_sourced(js, work, env):
    """(a') The runner (launcher, stop file, signals, requeue) is jobscripts/runner.sh,
    which each sbatch script sources instead of holding a copy; a copy of a script
    (what sbatch runs, from Slurm's spool directory) finds it through
    $STSAE_JOBSCRIPTS or $SLURM_SUBMIT_DIR/jobscripts, and otherwise exits 2 naming
    where it looked."""
    with open(os.path.join(js, "runner.sh")) as f:
        runner = f.read()
    report("runner_defines", all(f"\n{fn}() {{" in runner for fn in ("run", "finish", "resolved", "caught")),
           "runner.sh lacks one of run(), finish(), resolved(), caught()")
    for s in SCRIPTS:
        with open(os.path.join(js, f"{s}.sbatch")) as f:
            t = f.read()
        own = [fn for fn in ("run", "finish", "resolved", "caught") if f"\n{fn}() {{" in t]
        report(f"runner_sourced_{s}", 'source "$runner/runner.sh"' in t and not own,
               f"{s}.sbatch does not source runner.sh" + (f", defines {own} itself" if own else ""))
    spool = os.path.join(work, "spool")  # a copy of the script away from jobscripts/, as sbatch runs it
    os.makedirs(spool, exist_ok=True)
    copy = os.path.join(spool, "slurm_script")
    shutil.copy(os.path.join(js, "eval.sbatch"), copy)
    base = {k: v for k, v in env.items() if k != "STSAE_JOBSCRIPTS"}
    base["SLURM_JOB_ID"] = "1"
    usage = "usage: sbatch jobscripts/eval.sbatch DECK"
    ways = [("nowhere", dict(base, SLURM_SUBMIT_DIR=work), "cannot find runner.sh"),
            ("STSAE_JOBSCRIPTS", dict(base, SLURM_SUBMIT_DIR=work, STSAE_JOBSCRIPTS=js), usage)]
    if os.path.basename(js) == "jobscripts":
        ways.append(("SLURM_SUBMIT_DIR", dict(base, SLURM_SUBMIT_DIR=os.path.dirname(js)), usage))
    for name, e, want in ways:
        p = subprocess.run(["bash", copy], capture_output=True, text=True, timeout=30, env=e, cwd=spool)
        report(f"runner_found_{name}", p.returncode == 2 and want in p.stderr,
               f"exit {p.returncode}, stderr {p.stderr.strip()!r}, expected {want!r}")


def usage_and_bad_deck(name, js, stsae, work, env):
    """NAME.sh alone prints its usage (exit 2); on a bad deck it exits 1 with
    stsae's FILE:LINE message and submits nothing. Returns the script and env."""
    script = os.path.join(js, f"{name}.sh")
    e = dict(env, STSAE=stsae)
    p = subprocess.run([script], capture_output=True, text=True, timeout=30, env=e)
    report(f"{name}_usage", p.returncode == 2 and f"{name}.sh" in p.stdout, f"exit {p.returncode}")
    bad = os.path.join(work, "bad.yaml")
    with open(bad, "w") as f:
        f.write("run_dir: x\ntrain:\n  grid:\n    - {variant: nosuch}\n")
    p = subprocess.run([script, bad], capture_output=True, text=True, timeout=30, env=e)
    report(f"{name}_bad_deck", p.returncode == 1 and "bad.yaml:4" in p.stderr and "sbatch" not in p.stdout,
           f"exit {p.returncode}, stdout {p.stdout!r}, stderr {p.stderr!r}")
    return script, e


def check_chain_cli(js, stsae, deck, work, env):
    """(b) chain.sh usage, bad deck, dry run (no Slurm needed)."""
    chain, e = usage_and_bad_deck("chain", js, stsae, work, env)
    p = subprocess.run([chain, "--dry-run", deck, "train.k=3"], capture_output=True, text=True, timeout=30,
                       env=e)
    lines = p.stdout.splitlines()
    ok = (p.returncode == 0 and len(lines) == 1 and "train.sbatch" in lines[0] and "train.k=3" in lines[0]
          and "--dependency" not in lines[0])
    report("chain_dry_run_train_only", ok, f"exit {p.returncode}, stdout {p.stdout!r}, stderr {p.stderr!r}")
    deck2 = os.path.join(work, "deck_eval.yaml")
    shutil.copy(deck, deck2)
    with open(deck2, "a") as f:
        f.write("eval:\n  embeddings: raw\n")
    p = subprocess.run([chain, "-n", deck2], capture_output=True, text=True, timeout=30, env=e)
    lines = p.stdout.splitlines()
    ok = (p.returncode == 0 and len(lines) == 2 and "train.sbatch" in lines[0]
          and "eval.sbatch" in lines[1] and "--dependency=afterok:" in lines[1])
    report("chain_dry_run_train_eval", ok, f"exit {p.returncode}, stdout {p.stdout!r}, stderr {p.stderr!r}")
    p = subprocess.run([chain, "-n", deck2, "device=cuda"], capture_output=True, text=True, timeout=30, env=e)
    lines = p.stdout.splitlines()
    ok = (p.returncode == 0 and len(lines) == 2 and "/train-gpu.sbatch" in lines[0]
          and "/eval-gpu.sbatch" in lines[1] and "device=cuda" in lines[0])
    report("chain_dry_run_gpu", ok, f"exit {p.returncode}, stdout {p.stdout!r}, stderr {p.stderr!r}")


def check_scaling_cli(js, stsae, deck, work, env):
    """(i) scaling.sh usage, bad deck, dry run (no Slurm needed)."""
    sc, e = usage_and_bad_deck("scaling", js, stsae, work, env)
    p = subprocess.run([sc, "--dry-run", "--max", "4", "--tasks-per-node", "2", deck, "train.k=3"],
                       capture_output=True, text=True, timeout=30, env=e)
    lines = p.stdout.splitlines()
    want = [("strong", 1, "train.ranks_per_job=1"), ("strong", 2, "train.ranks_per_job=2"),
            ("strong", 4, "train.ranks_per_job=4"), ("weak", 1, r"train.seeds=\[0\]"),
            ("weak", 2, r"train.seeds=\[0\,\ 1\]"), ("weak", 4, r"train.seeds=\[0\,\ 1\,\ 2\,\ 3\]")]
    ok = p.returncode == 0 and len(lines) == 7 and "--collect" in lines[6] and "afterany" in lines[6]
    for line, (m, n, over) in zip(lines, want):
        ok &= (f"--ntasks={n} " in line and f"--nodes={(n + 1) // 2} " in line and f"scaling-{m}-n{n} " in line
               and "train.sbatch" in line and "train.k=3" in line and over in line)
    report("scaling_dry_run", ok, f"exit {p.returncode}, stdout {p.stdout!r}, stderr {p.stderr!r}")
    p = subprocess.run([sc, "--dry-run", "--gpus", "--max", "8", "--mode", "weak", deck, "device=cuda"],
                       capture_output=True, text=True, timeout=30, env=e)
    lines = p.stdout.splitlines()
    ok = p.returncode == 0 and len(lines) == 5
    for line, (n, nodes, per) in zip(lines, [(1, 1, 1), (2, 1, 2), (4, 1, 4), (8, 2, 4)]):
        ok &= (f"--ntasks={n} " in line and f"--nodes={nodes} " in line and f"--gpus-per-node={per} " in line
               and "/train-gpu.sbatch" in line)
    report("scaling_dry_run_gpus", ok, f"exit {p.returncode}, stdout {p.stdout!r}, stderr {p.stderr!r}")


def scaling_sweep(sl, js, stsae, work, env, end):
    """(i) strong and weak sweeps on 1 and 2 ranks under Slurm, then the table."""
    d = os.path.join(work, "scaling")
    os.makedirs(d)
    deck = os.path.join(d, "deck.yaml")
    write_deck(deck, os.path.join(d, "run"), os.path.join(work, "features.h5"))
    out = os.path.join(d, "sweep")
    t = time.time()
    p = sl.run(os.path.join(js, "scaling.sh"), "--max", "2", "--tasks-per-node", "2", "--out", out, deck,
               env=dict(env, STSAE=stsae), timeout=60)
    ids = re.findall(r"job (\d+)", p.stdout)
    report("scaling_submitted", p.returncode == 0 and len(ids) == 5, f"exit {p.returncode}: {p.stdout} {p.stderr}")
    done = sl.wait(ids, max(1, end - time.time()))
    print(f"  scaling sweep (4 points and the table) took {time.time() - t:.1f} s", flush=True)
    states = [sl.job(i) for i in ids]
    info = "; ".join(f"{i} {f.get('JobName')} {f.get('JobState')} {f.get('ExitCode')}" for i, f in zip(ids, states))
    report("scaling_all_completed", done and all(f.get("JobState") == "COMPLETED" for f in states), info)
    table = open(os.path.join(out, "scaling.md")).read() if os.path.exists(os.path.join(out, "scaling.md")) else ""
    rows = {}
    for line in table.splitlines():
        c = [x.strip() for x in line.strip("|").split("|")]
        if len(c) == 12 and c[0] in ("strong", "weak"):
            rows[(c[0], c[1])] = c
    ok = len(rows) == 4 and all(r[5].isdigit() and int(r[5]) > 0 for r in rows.values())
    ok = ok and rows[("strong", "1")][7] == "100%" and rows[("weak", "1")][7] == "100%"
    ok = ok and int(rows[("weak", "2")][2]) == 2 * int(rows[("strong", "2")][2])
    report("scaling_table", ok, f"{table}\n{info}")
    os.rename(os.path.join(out, "scaling.md"), os.path.join(out, "scaling.md.job"))
    p = subprocess.run([os.path.join(js, "scaling.sh"), "--collect", out], capture_output=True, text=True,
                       timeout=30, env=env)
    again = open(os.path.join(out, "scaling.md")).read() if p.returncode == 0 else ""
    report("scaling_collect_by_hand", again == table and again != "", f"exit {p.returncode} {p.stderr}")


def submit(sl, js, deck, env, *over):
    """chain.sh DECK OVER...: {stage: job id}."""
    p = sl.run(os.path.join(js, "chain.sh"), deck, *over, env=env, timeout=60)
    ids = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith(":") and parts[1] == "job":
            ids[parts[0][:-1]] = parts[2]
    if p.returncode != 0 or not ids:
        raise RuntimeError(f"chain.sh exited {p.returncode}: {p.stdout} {p.stderr}")
    return ids


def logs_of(run_dir):
    out = []
    d = os.path.join(run_dir, "logs")
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        with open(os.path.join(d, name), errors="replace") as f:
            out.append(f"--- {name}\n{f.read()}")
    return "\n".join(out)


def wait_for(path_pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if path_pred():
            return True
        time.sleep(0.2)
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--jobscripts", default=os.path.join(HERE, "..", "jobscripts"))
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--timeout", type=float, default=240, help="seconds for all the Slurm jobs together")
    ap.add_argument("--watchdog", nargs=2, metavar=("PID", "CONF"), help=argparse.SUPPRESS)
    a = ap.parse_args() if "--watchdog" not in sys.argv else None
    if a is None:
        i = sys.argv.index("--watchdog")
        watchdog(int(sys.argv[i + 1]), sys.argv[i + 2])
        return 0

    stsae = os.path.abspath(a.stsae)
    js = os.path.abspath(a.jobscripts)
    work = os.path.abspath(a.workdir)

    if os.geteuid() != 0:
        if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
            print("not root: rerunning under sudo", flush=True)
            keep = [f"{k}={v}" for k, v in os.environ.items() if k.startswith(("OMPI_", "OMP_", "PATH"))]
            os.execvp("sudo", ["sudo", "-n", "env", *keep, sys.executable, *sys.argv])
        skip("needs root or passwordless sudo to run munged, slurmctld and slurmd")
    missing = [t for t in ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scontrol", "sinfo")
               if not shutil.which(t)]
    if missing:
        skip(f"missing {' '.join(missing)}: install the Debian packages slurm-wlm munge "
             "(scripts/bootstrap.sh does)")

    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    root = os.path.join(work, "slurm")
    if len(os.path.join(root, "munge", "munge.socket.2")) > 100:   # sun_path is 108 bytes
        import tempfile
        root = tempfile.mkdtemp(prefix="stsae-slurm-")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    for k in list(env):
        if k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")):
            del env[k]

    features = os.path.join(work, "features.h5")
    write_features(features)
    deck = os.path.join(work, "deck.yaml")
    write_deck(deck, os.path.join(work, "run"), features)

    check_outside(js, stsae, deck, env)
    check_runner_sourced(js, work, env)
    check_chain_cli(js, stsae, deck, work, env)
    check_scaling_cli(js, stsae, deck, work, env)

    sl = Slurm(root)
    t0 = time.time()
    try:
        sl.start()
        report("slurm_started", True)
        print(f"  slurm up in {time.time() - t0:.1f} s ({root})", flush=True)
        slurm_checks(sl, js, stsae, work, features, env, a.timeout)
    except Exception as e:  # noqa: BLE001 -- any failure is a FAIL line, then cleanup
        report("slurm", False, f"{type(e).__name__}: {e}")
    finally:
        sl.stop()
        left = ours(sl.conf)
        report("daemons_stopped", not left, f"still running: {left}")
    print(f"  slurm part took {time.time() - t0:.1f} s", flush=True)
    npass = sum(RESULTS)
    print(f"{npass} passed, {len(RESULTS) - npass} failed")
    return 0 if all(RESULTS) else 1


def slurm_checks(sl, js, stsae, work, features, env, timeout):
    end = time.time() + timeout
    # Two tasks of one cpu on the one node; --time well above the scripts' B:USR1@600.
    env = dict(env, SLURM_CONF=sl.conf,
               STSAE_SBATCH_ARGS="--nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=60")

    # (d)-(f): fake STSAE, submitted first so that the jobs queue behind each other.
    fake = os.path.join(work, "fake_stsae")
    with open(fake, "w") as f:
        f.write(FAKE)
    os.chmod(fake, 0o755)
    cases = {"srun": "signal", "mpirun": "signal", "term": "signal", "fail": "fail", "launchfail": "fail"}
    fk = {}
    for name, mode in cases.items():
        d = os.path.join(work, f"fake_{name}")
        os.makedirs(d)
        dk = os.path.join(d, "deck.yaml")
        write_deck(dk, os.path.join(d, "run"), features, eval_section=True)
        e = dict(env, STSAE=fake, FAKE_REAL=stsae, FAKE_DIR=d, FAKE_MODE=mode)
        if name == "mpirun":
            e["STSAE_LAUNCHER"] = "mpirun"
        if name == "launchfail":
            e["STSAE_SBATCH_ARGS"] += " --hold"
        ids = submit(sl, js, dk, e, "train.k=3")
        fk[name] = (d, ids)
        if name == "launchfail":
            # What broke a run here: a stale PMIx directory of the same step
            # makes the launch fail, and srun 22.05 still exits 0.
            os.makedirs(os.path.join(sl.root, "tmp", f"spmix_appdir_{os.getuid()}_{ids['train']}.0"))
            sl.run("scontrol", "release", *ids.values())
        # one at a time: the signal goes to the job whose ranks are waiting for it
        if mode == "signal":
            started = lambda: all(os.path.exists(os.path.join(d, f"started.{r}")) for r in (0, 1))  # noqa: E731
            if not report(f"{name}_started", wait_for(started, min(60, end - time.time())),
                          f"the fake train did not start on 2 ranks\n{logs_of(os.path.join(d, 'run'))}"):
                continue
            if name == "term":
                sl.run("scancel", ids["train"])
            else:
                sl.run("scancel", "-b", "--signal=USR1", ids["train"])
    # a bare sbatch (no chain.sh, so no STSAE_JOBSCRIPTS): the copy that Slurm runs
    # finds runner.sh under $SLURM_SUBMIT_DIR/jobscripts when submitted from the
    # repository root, and fails (exit 2) naming where it looked when submitted elsewhere
    bare = {}
    places = [("bare_elsewhere", work)]
    if os.path.basename(js) == "jobscripts":
        places.insert(0, ("bare_from_root", os.path.dirname(js)))
    for name, cwd in places:
        d = os.path.join(work, f"fake_{name}")
        os.makedirs(d)
        dk = os.path.join(d, "deck.yaml")
        write_deck(dk, os.path.join(d, "run"), features, eval_section=True)
        e = {k: v for k, v in env.items() if k != "STSAE_JOBSCRIPTS"}
        e.update(STSAE=fake, FAKE_REAL=stsae, FAKE_DIR=d, FAKE_MODE="signal")
        log = os.path.join(d, "job.out")
        p = subprocess.run(["sbatch", "--parsable", f"--output={log}", *env["STSAE_SBATCH_ARGS"].split(),
                            os.path.join(js, "eval.sbatch"), dk], cwd=cwd, env=e, capture_output=True, text=True,
                           timeout=60)
        if report(f"{name}_submitted", p.returncode == 0, f"sbatch: {p.stderr.strip()!r}"):
            bare[name] = (d, log, p.stdout.strip().split(";")[0])
    for name, (d, ids) in fk.items():
        report(f"{name}_finished", sl.wait(ids.values(), max(1, end - time.time())), "timeout")
    for name, (d, log, jid) in bare.items():
        done = sl.wait([jid], max(1, end - time.time()))
        j = sl.job(jid)
        text = open(log).read() if os.path.exists(log) else "(no log)"
        calls = open(os.path.join(d, "calls")).read() if os.path.exists(os.path.join(d, "calls")) else ""
        info = f"{j.get('JobState')} {j.get('ExitCode')}\n{text}"
        if name == "bare_from_root":
            report("bare_sbatch_from_root_completed", done and j.get("JobState") == "COMPLETED"
                   and j.get("ExitCode") == "0:0" and "cmd=eval" in calls and "cmd=report" in calls, info)
        else:
            report("bare_sbatch_elsewhere_names_runner", done and j.get("JobState") == "FAILED"
                   and j.get("ExitCode") == "2:0" and "cannot find runner.sh" in text, info)
    for name, (d, ids) in fk.items():
        tr, ev = sl.job(ids["train"]), sl.job(ids["eval"])
        run_dir = os.path.join(d, "run")
        with open(os.path.join(d, "calls")) if os.path.exists(os.path.join(d, "calls")) else open(os.devnull) as f:
            calls = f.read().splitlines()
        info = f"train {tr.get('JobState')} {tr.get('ExitCode')} restarts {tr.get('Restarts')}; " \
               f"eval {ev.get('JobState')} {ev.get('Reason')}\ncalls: {calls}\n{logs_of(run_dir)}"
        trains = [c for c in calls if c.startswith("cmd=train")]
        if name in ("srun", "mpirun"):
            report(f"{name}_requeued_then_completed",
                   tr.get("JobState") == "COMPLETED" and tr.get("Restarts") == "1"
                   and tr.get("ExitCode") == "0:0", info)
            report(f"{name}_two_ranks_twice", sorted(c.split()[1] for c in trains) ==
                   ["rank=0", "rank=0", "rank=1", "rank=1"]
                   and sum("restart=1" in c for c in trains) == 2, info)
            report(f"{name}_args_and_threads", all(c.endswith(f"args={d}/deck.yaml train.k=3") and
                                                   "omp=1" in c for c in trains), info)
            with open(os.path.join(d, "signals")) if os.path.exists(os.path.join(d, "signals")) else \
                    open(os.devnull) as f:
                got = sorted(f.read().splitlines())
            # each rank heard the stop request: the signal if the launcher passed
            # it on, else the stop file (both are stsae's ways)
            report(f"{name}_stop_reached_ranks", len(got) == 2 and got[0].startswith("rank=0 ")
                   and got[1].startswith("rank=1 ") and all(g.split()[1] in ("got=USR1", "got=STOP") for g in got),
                   f"{got}\n{info}")
            report(f"{name}_stop_file_removed", not os.path.exists(os.path.join(run_dir, "STOP")), info)
            ev_calls = [c for c in calls if c.startswith(("cmd=eval", "cmd=report"))]
            report(f"{name}_eval_after_train", ev.get("JobState") == "COMPLETED"
                   and sorted(c.split()[0] for c in ev_calls) == ["cmd=eval", "cmd=eval", "cmd=report"]
                   and any(c.startswith("cmd=report") and c.endswith(f"args={run_dir}") for c in ev_calls),
                   info)
            report(f"{name}_requeue_logged", "requeueing job" in logs_of(run_dir), info)
        elif name == "term":
            # Slurm sends SIGTERM to the ranks and to srun, which kills its step at
            # once: whether the ranks get to exit 3 first is a race (they do here).
            report("term_cancelled_not_requeued", tr.get("JobState") == "CANCELLED"
                   and tr.get("Restarts") == "0" and len(trains) == 2 and "requeueing" not in logs_of(run_dir),
                   info)
            report("term_dependant_cancelled", ev.get("JobState") == "CANCELLED", info)
        elif name == "launchfail":
            report("launchfail_exit1", tr.get("JobState") == "FAILED" and tr.get("ExitCode") == "1:0"
                   and not trains and "no task started" in logs_of(run_dir), info)
            report("launchfail_dependant_cancelled", ev.get("JobState") == "CANCELLED", info)
        elif name == "fail":
            report("fail_exit1", tr.get("JobState") == "FAILED" and tr.get("ExitCode") == "1:0", info)
            report("fail_dependant_cancelled", ev.get("JobState") == "CANCELLED"
                   and not any(c.startswith("cmd=eval") for c in calls), info)

    real_stages(sl, js, stsae, work, features, env, end)
    scaling_sweep(sl, js, stsae, work, env, end)


JOB_LINE = re.compile(r"^#\s+\d+\s+(\S+)\s.*\s[0-9a-f]{16}\s")


def job_names(stsae, deck, *over):
    p = subprocess.run([stsae, "check", deck, *over], capture_output=True, text=True, timeout=60)
    return [m.group(1) for m in map(JOB_LINE.match, p.stdout.splitlines()) if m]


def files_under(d):
    out = []
    for dp, _, fs in os.walk(d):
        out += [os.path.relpath(os.path.join(dp, f), d) for f in fs]
    return sorted(out)


def real_stages(sl, js, stsae, work, features, env, end):
    """(c) the real stsae: synth + extract -> train -> eval + report, then a real requeue."""
    import h5py
    env = dict(env, STSAE=stsae)
    d = os.path.join(work, "real")
    os.makedirs(d)
    deck, run_dir = os.path.join(d, "deck.yaml"), os.path.join(d, "run")
    write_deck(deck, run_dir, os.path.join(d, "features.h5"), eval_section=True, synth=os.path.join(d, "synth"))
    names = job_names(stsae, deck)
    t = time.time()
    ids = submit(sl, js, deck, env)
    report("real_chain_stages", list(ids) == ["extract", "train", "eval"], f"{ids}")
    done = sl.wait(ids.values(), max(1, end - time.time()))
    print(f"  real chain (synth, extract, train, eval, report) took {time.time() - t:.1f} s", flush=True)
    states = {s: sl.job(i) for s, i in ids.items()}
    info = "; ".join(f"{s} {f.get('JobState')} {f.get('ExitCode')}" for s, f in states.items()) + \
        "\n" + logs_of(run_dir)
    report("real_chain_finished", done, "timeout\n" + info)
    report("real_chain_all_completed", all(f.get("JobState") == "COMPLETED" and f.get("ExitCode") == "0:0"
                                           for f in states.values()), info)
    have = files_under(run_dir)
    print("  run dir: " + " ".join(f for f in have if not f.startswith("logs/")), flush=True)
    report("real_synth_wrote_clips", os.path.exists(os.path.join(d, "synth", "clips.csv")), info)
    report("real_extract_wrote_features", os.path.exists(os.path.join(d, "features.h5")), info)
    want = ["train.yaml", "results.h5", "results.csv", "results.md", "raw/eval.h5"] + \
        [f"jobs/{n}/{f}" for n in names for f in ("model.h5", "eval.h5")]
    missing = [f for f in want if f not in have]
    report("real_run_dir_complete", len(names) == 2 and not missing, f"jobs {names}, missing {missing}\n{info}")
    ok = True
    for n in names:
        try:
            with h5py.File(os.path.join(run_dir, "jobs", n, "model.h5"), "r") as f:
                ok &= f.attrs["job"] in (n, n.encode()) and f.attrs["steps"] > 0 and "params/W_dec" in f
        except (OSError, KeyError) as e:
            ok = report(f"real_model_{n}", False, f"{e}")
    report("real_models_trained", ok, info)

    # A real checkpoint-and-requeue: a long run of the same grid, SIGUSR1 to the
    # batch shell once training is under way; stsae train checkpoints and exits 3,
    # the job requeues itself, and the rerun finishes both SAEs.
    d = os.path.join(work, "real_requeue")
    os.makedirs(d)
    deck, run_dir = os.path.join(d, "deck.yaml"), os.path.join(d, "run")
    write_deck(deck, run_dir, features)
    t = time.time()
    ids = submit(sl, js, deck, env, "train.epochs=40000", "train.checkpoint_every=0")
    # once training is under way (its first progress line is in the log)
    started = wait_for(lambda: "  step " in logs_of(run_dir), min(60, end - time.time()))
    sl.run("scancel", "-b", "--signal=USR1", ids["train"])
    done = sl.wait(ids.values(), max(1, end - time.time()))
    print(f"  real requeue took {time.time() - t:.1f} s", flush=True)
    tr = sl.job(ids["train"])
    logs = logs_of(run_dir)
    info = f"train {tr.get('JobState')} {tr.get('ExitCode')} restarts {tr.get('Restarts')}\n{logs}"
    report("real_requeue_finished", started and done, info)
    report("real_requeue_checkpointed_requeued_completed",
           tr.get("JobState") == "COMPLETED" and tr.get("ExitCode") == "0:0" and tr.get("Restarts") == "1"
           and "checkpointed (exit 3); requeueing" in logs, info)
    models = glob.glob(os.path.join(run_dir, "jobs", "*", "model.h5"))
    report("real_requeue_models", len(models) == 2, f"{models}\n{info}")
    report("real_requeue_stop_file_removed", not os.path.exists(os.path.join(run_dir, "STOP")), info)


if __name__ == "__main__":
    sys.exit(main())
