#!/bin/bash
# chain.sh — submit the stages a deck names, in order, each waiting for the one
# before it to succeed (sbatch --dependency=afterok:ID --kill-on-invalid-dep=yes):
#
#   jobscripts/chain.sh [--dry-run] DECK [key=value ...]
#
#   synth: or extract:  -> extract.sbatch   (synth, then extract)
#   train:              -> train.sbatch (train-gpu.sbatch when the deck says device: cuda)
#   eval:               -> eval.sbatch      (eval, then report RUN_DIR)
#
# The deck and the overrides go to every stage unchanged; the stages come from
# `stsae check DECK [key=value ...]` (the resolved deck's top-level sections),
# which also validates the deck before anything is submitted. Jobs requeue
# themselves after a checkpoint, keeping their ID, so the chain survives time
# limits. Logs: RUN_DIR/logs/<job name>-<job id>.out (appended across requeues).
#
# Environment:
#   STSAE              stsae binary (default: build/stsae beside this folder)
#   STSAE_SBATCH_ARGS  extra sbatch options for every stage, split on spaces,
#                      e.g. "--partition=gpu --account=proj --time=4:00:00"
#   STSAE_LOG_DIR      log folder (default RUN_DIR/logs)
# The jobs inherit this environment (sbatch's default --export=ALL), and with
# it STSAE_JOBSCRIPTS, this folder, where they find runner.sh.
set -euo pipefail
me="stsae chain.sh"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

dry=0
if [ "${1:-}" = --dry-run ] || [ "${1:-}" = -n ]; then
  dry=1
  shift
fi
if (($# < 1)) || [ "$1" = -h ] || [ "$1" = --help ]; then
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
  exit 2
fi
# shellcheck source-path=SCRIPTDIR source=submit.sh
source "$here/submit.sh"
submit_deck "$@"
shift
has() { grep -q "^$1:" <<<"$resolved"; }
logs=${STSAE_LOG_DIR:-$run_dir/logs}

stages=()
if has synth || has extract; then stages+=(extract); fi
if has train; then stages+=(train); fi
if has eval; then stages+=(eval); fi
((${#stages[@]})) || { echo "$me: the deck names no stage (synth, extract, train, eval)" >&2; exit 1; }
# device: cuda runs every stage on GPU nodes (one rank per GPU): STAGE-gpu.sbatch
script_of() { if grep -q '^device: cuda' <<<"$resolved"; then echo "$1-gpu"; else echo "$1"; fi; }

read -r -a extra <<<"${STSAE_SBATCH_ARGS:-}"
((dry)) || mkdir -p "$logs"

submitted=()
# Something failed half-way: cancel what this run submitted, so no orphan waits.
undo() {
  if ((${#submitted[@]})); then
    echo "$me: cancelling ${submitted[*]}" >&2
    scancel "${submitted[@]}" || true
  fi
  exit 1
}

prev=""
for s in "${stages[@]}"; do
  args=(--parsable "--output=$logs/%x-%j.out")
  if [ -n "$prev" ]; then args+=("--dependency=afterok:$prev" --kill-on-invalid-dep=yes); fi
  cmd=(sbatch "${args[@]}" "${extra[@]}" "$here/$(script_of "$s").sbatch" "$deck" "$@")
  if ((dry)); then
    printf '%q ' "${cmd[@]}"
    echo
    prev="<$s>"
    continue
  fi
  out=$("${cmd[@]}") || { echo "$me: sbatch failed for $s" >&2; undo; }
  id=${out%%;*}                 # --parsable prints ID or ID;CLUSTER
  [[ $id =~ ^[0-9]+$ ]] || { echo "$me: sbatch printed '$out', not a job id" >&2; undo; }
  submitted+=("$id")
  echo "$s: job $id${prev:+ (after $prev)}"
  prev=$id
done
((dry)) || echo "logs: $logs/"
