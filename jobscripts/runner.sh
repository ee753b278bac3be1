# runner.sh — what extract.sbatch, train.sbatch and eval.sbatch share, sourced
# by each (not run): the checks, the MPI launcher, the stop file and the
# signal traps, one stage run on the allocation, and the exit or requeue.
#
# In:  from the sourcing script: `stage` (extract | train | eval), `script`
#      (its own name when that is not the stage's: train-gpu), `requeue`
#      (1: a checkpointed stage, exit 3 after SIGUSR1, requeues the job), and
#      its positional parameters DECK [key=value ...]; the environment of the
#      job: SLURM_* and STSAE, STSAE_LAUNCHER, STSAE_SRUN_MPI,
#      STSAE_MAX_REQUEUE (train.sbatch's header).
# Out: shell variables and functions for the script's own lines:
#        me         "stsae STAGE.sbatch", the prefix of every message
#        STSAE      the binary; cpus, launcher, stopfile (RUN_DIR/STOP)
#        run all|one ARGS...   `stsae ARGS` on every task or on one; sets rc
#        finish     exits with rc; after a checkpoint on SIGUSR1, requeues
#        resolved DECK [k=v ...]   the deck as resolved (stsae check)
#      or exit 2 right here: outside a Slurm job, no deck, no binary, a bad
#      STSAE_LAUNCHER.
#
# Why a sourced file, and where it is found: sbatch runs a copy of the job
# script from Slurm's spool directory, so each script looks for this file in
# $STSAE_JOBSCRIPTS (exported by chain.sh), then $SLURM_SUBMIT_DIR/jobscripts
# (a bare `sbatch jobscripts/STAGE.sbatch` from the repository root), then
# beside itself (run from its own folder, outside Slurm), and exits 2 naming
# those places when none has it. A requeued job reads it again at its
# restart: keep the checkout in place while its jobs run.
# shellcheck shell=bash
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "jobscripts/runner.sh is sourced by the .sbatch scripts, not run" >&2
  exit 2
fi
: "${stage:?runner.sh: the sourcing script sets stage}" "${requeue:?runner.sh: the sourcing script sets requeue}"

script=${script:-$stage} # the .sbatch file's name (train-gpu runs the train stage)
me="stsae $script.sbatch"
die() { echo "$me: $*" >&2; exit 2; }
if [ -z "${SLURM_JOB_ID:-}" ]; then
  die "not inside a Slurm job (SLURM_JOB_ID is unset): submit it with" \
      "'sbatch jobscripts/$script.sbatch DECK [key=value ...]', or every stage with 'jobscripts/chain.sh DECK'"
fi
(($# >= 1)) || die "usage: sbatch jobscripts/$script.sbatch DECK [key=value ...]"
STSAE=${STSAE:-${SLURM_SUBMIT_DIR:-.}/build/stsae}
[ -x "$STSAE" ] || die "no stsae binary at '$STSAE' (set STSAE=/path/to/stsae)"
cpus=${SLURM_CPUS_PER_TASK:-1}
export OMP_NUM_THREADS=$cpus
launcher=${STSAE_LAUNCHER:-}
if [ -z "$launcher" ]; then
  mpi_list=$(srun --mpi=list 2>&1 || true)
  if [[ $mpi_list == *pmix* ]]; then
    launcher=srun
  else
    launcher=mpirun
    echo "$me: this Slurm has no PMIx plugin (srun --mpi=list); launching with mpirun" >&2
  fi
fi
case $launcher in srun | mpirun) ;; *) die "STSAE_LAUNCHER must be srun or mpirun, not '$launcher'" ;; esac
# The deck's stop file (RUN_DIR/STOP): the running stage checkpoints and exits
# 3 when it appears, whatever the launcher does with signals.
stopfile=$("$STSAE" stop --path "$@") || { echo "$me: stsae stop --path $* failed" >&2; exit 1; }

# SIGUSR1 (sent to this shell only, B:) writes the stop file, which the ranks
# poll, and goes on to the launcher too, which may forward it to every rank
# (Open MPI's mpirun does not when it starts with the signal blocked; either
# way is enough). SIGTERM (scancel, preemption, the time limit) reaches the
# ranks from Slurm directly; here it writes the stop file and is noted, not
# forwarded: srun answers a SIGTERM by killing its step at once. `wait`
# returns early when a trap runs: wait again.
stop_signal=""
launcher_pid=""
trapped=0
# shellcheck disable=SC2317  # called from the traps
caught() {
  stop_signal=$1
  trapped=1
  : > "$stopfile" 2>/dev/null || true
  if [ "$1" = USR1 ] && [ -n "$launcher_pid" ]; then kill -s USR1 "$launcher_pid" 2>/dev/null || true; fi
}
trap 'caught USR1' USR1
trap 'caught TERM' TERM

# run all|one ARGS...: `stsae ARGS` on every task of the allocation, or on one;
# sets rc to its exit status.
run() {
  local where=$1 mark
  shift
  # Slurm 22.05's srun exits 0 when its tasks fail to launch (seen with a stale
  # PMIx directory): each task marks a file on its node as it starts, and a
  # step that left no mark on this node (where task 0 runs) is an error.
  mark=$(mktemp -u "${TMPDIR:-/tmp}/stsae-launch.XXXXXX")
  # shellcheck disable=SC2016  # expanded by sh -c in each task
  local marker=': > "$0" 2>/dev/null; exec "$@"'
  local tasks=${SLURM_NTASKS:-1}
  if [ "$where" = one ]; then tasks=1; fi
  echo "$me: $(date '+%F %T') job $SLURM_JOB_ID restart ${SLURM_RESTART_COUNT:-0}:" \
       "$launcher ($tasks tasks x $cpus cpus) $STSAE $*"
  # a stop file left by an earlier allocation is no request to this one
  if [ -z "$stop_signal" ]; then rm -f "$stopfile"; fi
  if [ "$launcher" = srun ]; then
    local n=()
    if [ "$where" = one ]; then n=(--nodes=1 --ntasks=1); fi
    srun --mpi="${STSAE_SRUN_MPI:-pmix}" "${n[@]}" --cpus-per-task="$cpus" --kill-on-bad-exit=1 \
         sh -c "$marker" "$mark" "$STSAE" "$@" &
  else
    mpirun -np "$tasks" --map-by "slot:PE=$cpus" -x OMP_NUM_THREADS sh -c "$marker" "$mark" "$STSAE" "$@" &
  fi
  launcher_pid=$!
  while :; do
    trapped=0
    rc=0
    wait "$launcher_pid" || rc=$?
    if ((rc > 128 && trapped)); then continue; fi
    break
  done
  launcher_pid=""
  if ((rc == 0)) && [ ! -e "$mark" ]; then
    echo "$me: $launcher exited 0 but no task started (see its errors above)" >&2
    rc=1
  fi
  rm -f "$mark"
}

# finish: exit with the stage's status; after a checkpoint (3) on SIGUSR1,
# requeue this job so that it resumes. A stop file the stage did not act on
# (it ended first) is removed.
finish() {
  rm -f "$stopfile"
  if ((rc != 3)); then
    if ((rc != 0)); then echo "$me: stsae exited $rc" >&2; fi
    exit "$rc"
  fi
  if ((!requeue)) || [ "$stop_signal" = TERM ]; then
    echo "$me: stopped early (exit 3, signal ${stop_signal:-none}); not requeued:" \
         "resubmit the same command to continue" >&2
    exit 3
  fi
  local restarts=${SLURM_RESTART_COUNT:-0} max=${STSAE_MAX_REQUEUE:-20}
  if ((restarts >= max)); then
    echo "$me: stopped early (exit 3) after $restarts requeues (STSAE_MAX_REQUEUE=$max):" \
         "not requeued; resubmit to continue" >&2
    exit 3
  fi
  echo "$me: checkpointed (exit 3); requeueing job $SLURM_JOB_ID (restart $((restarts + 1)))"
  # Slurm ends this shell as it requeues the job.
  scontrol requeue "$SLURM_JOB_ID" || { echo "$me: scontrol requeue failed" >&2; exit 3; }
  exit 0
}
# resolved DECK [key=value ...]: the deck as resolved (stsae check); fails on a bad deck
# shellcheck disable=SC2317  # not every stage uses it
resolved() {
  "$STSAE" check "$@" || { echo "$me: stsae check $* failed" >&2; exit 1; }
}
