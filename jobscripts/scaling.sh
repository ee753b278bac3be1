#!/bin/bash
# scaling.sh — a scaling sweep of `stsae train`: the same deck on 1, 2, 4, ... N
# ranks (one per GPU for a `device: cuda` deck with --gpus, else CPU ranks), each
# point its own train.sbatch job (train-gpu.sbatch with --gpus), then one
# markdown table of the points.
#
#   jobscripts/scaling.sh [--dry-run] [--mode strong|weak|both] [--max N]
#                         [--tasks-per-node P] [--gpus] [--out DIR] DECK [key=value ...]
#   jobscripts/scaling.sh --collect DIR      # the table (again) from DIR's logs
#
#   strong  the same problem on more ranks: the deck as it is with
#           train.ranks_per_job = n (every job of the grid data-parallel over
#           all n ranks).
#   weak    the problem grows with the ranks: the grid once per rank,
#           train.seeds = [0 .. n-1] and train.ranks_per_job = 1 (n x G jobs
#           on n ranks; grid entries with their own `seeds` keep them).
#   --max N      the largest point (default 8): points 1, 2, 4, ... and N itself
#   --tasks-per-node P   ranks per node (default 4 with --gpus, else 32): a point
#                of n ranks asks for ceil(n / P) nodes
#   --gpus       one GPU per rank (--gpus-per-node); the deck says device: cuda
#   --out DIR    where the points' run directories, logs and the table go
#                (default RUN_DIR/scaling)
#
# Point n of mode M is `sbatch train.sbatch DECK [key=value ...] run_dir=DIR/M-nN
# ...` with --ntasks=n, its log DIR/logs/M-nN-<id>.out; DIR/points.tsv lists
# them. A last job (--dependency=afterany on every point) runs `scaling.sh
# --collect DIR`, which reads each point's `# grid throughput` lines (stsae
# train's last words; summed over requeues) and stage table, and writes
# DIR/scaling.md: per point the jobs, tokens, wall seconds, tokens/s, the
# speed-up and efficiency against the 1-rank point of its mode (throughput /
# (n x throughput at 1 rank): for weak scaling, constant work per rank, the
# same ratio), and the mean seconds per rank in data, step, allreduce and
# optimizer. A point without a throughput line (failed, still running) is
# listed as such. Points run one after another or side by side, as the queue
# allows: on shared nodes, neighbours change the figures.
#
# Environment: STSAE (binary; default build/stsae beside this folder),
# STSAE_SBATCH_ARGS (extra sbatch options for every job, e.g. "--partition=gpu
# --time=1:00:00"; this script's own --ntasks, --nodes, --ntasks-per-node and
# --gpus-per-node come after them). The jobs inherit the environment, and with
# it STSAE_JOBSCRIPTS, this folder.
set -euo pipefail
me="stsae scaling.sh"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 2; }

# ---- --collect DIR: DIR/points.tsv and the logs -> DIR/scaling.md -----------------------
# The sums of one log: tokens, wall seconds, tokens/s (from the unrounded
# sums: a tiny test run trains in milliseconds), jobs (the plan line), and the
# stage table's average seconds of data, step, allreduce, optimizer.
log_sums() {
  awk '
    /^# grid throughput:/ { tok += $4; wall += $8; n++ }
    /^# [0-9]+ jobs on / { jobs = $2 }
    $1 ~ /^(data|step|allreduce|optimizer)$/ && NF == 5 { avg[$1] += $3 }
    END { if (n) printf "%d %.3f %.0f %d %.2f %.2f %.2f %.2f\n", tok, wall, (wall > 0 ? tok / wall : 0), jobs, avg["data"], avg["step"], avg["allreduce"], avg["optimizer"] }
  ' "$1"
}

collect() {
  local dir=$1 out=$1/scaling.md
  [ -f "$dir/points.tsv" ] || { echo "$me: no $dir/points.tsv (written when the sweep is submitted)" >&2; exit 2; }
  local tmp
  tmp=$(mktemp "$out.XXXXXX")
  {
    echo "# Scaling of stsae train"
    echo
    sed -n 's/^# //p' "$dir/points.tsv"
    echo
    echo "| mode | ranks | jobs | tokens | wall s | tokens/s | speed-up | efficiency | data s | step s | allreduce s | optimizer s |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    local mode n id base="" base_mode="" sums log
    while read -r mode n id; do
      case $mode in \#*|"") continue ;; esac
      log=$dir/logs/$mode-n$n-$id.out
      sums=""
      if [ -f "$log" ]; then sums=$(log_sums "$log"); fi
      if [ -z "$sums" ]; then
        echo "| $mode | $n | | | | no result (job $id: failed or not finished; log $log) | | | | | | |"
        continue
      fi
      local tok wall rate jobs data step ar opt
      read -r tok wall rate jobs data step ar opt <<<"$sums"
      if [ "$mode" != "$base_mode" ]; then base_mode=$mode; base=""; fi
      if [ "$n" = 1 ]; then base=$rate; fi
      local sp="–" ef="–"
      if [ -n "$base" ] && [ "$base" != 0 ]; then
        sp=$(awk -v r="$rate" -v b="$base" 'BEGIN { printf "%.2fx", r / b }')
        ef=$(awk -v r="$rate" -v b="$base" -v n="$n" 'BEGIN { printf "%.0f%%", 100 * r / (b * n) }')
      fi
      echo "| $mode | $n | $jobs | $tok | $wall | $rate | $sp | $ef | $data | $step | $ar | $opt |"
    done <"$dir/points.tsv"
    echo
    echo "Speed-up and efficiency are against the 1-rank point of the same mode (tokens/s over n x its tokens/s);"
    echo "seconds per stage are the mean over the ranks, summed over requeues. Logs: $dir/logs."
  } >"$tmp"
  mv "$tmp" "$out"
  cat "$out"
}

if [ "${1:-}" = --collect ]; then
  (($# == 2)) || usage
  collect "$2"
  exit 0
fi

# ---- the sweep ------------------------------------------------------------------------------
dry=0 mode=both max=8 tpn="" gpus=0 out=""
while (($#)); do
  case $1 in
    --dry-run|-n) dry=1 ;;
    --mode) mode=${2:?}; shift ;;
    --max) max=${2:?}; shift ;;
    --tasks-per-node) tpn=${2:?}; shift ;;
    --gpus) gpus=1 ;;
    --out) out=${2:?}; shift ;;
    -h|--help) usage ;;
    -*) echo "$me: unknown option '$1'" >&2; usage ;;
    *) break ;;
  esac
  shift
done
(($# >= 1)) || usage
case $mode in strong|weak|both) ;; *) echo "$me: --mode strong, weak or both, not '$mode'" >&2; exit 2 ;; esac
[[ $max =~ ^[1-9][0-9]*$ ]] || { echo "$me: --max takes a positive integer, not '$max'" >&2; exit 2; }
[ -z "$tpn" ] && tpn=$((gpus ? 4 : 32))
[[ $tpn =~ ^[1-9][0-9]*$ ]] || { echo "$me: --tasks-per-node takes a positive integer, not '$tpn'" >&2; exit 2; }
# shellcheck source-path=SCRIPTDIR source=submit.sh
source "$here/submit.sh"
submit_deck "$@"
shift
grep -q '^train:' <<<"$resolved" || { echo "$me: the deck has no train section" >&2; exit 1; }
out=${out:-$run_dir/scaling}
case $out in /*) ;; *) out=$PWD/$out ;; esac

points=()
for ((n = 1; n < max; n *= 2)); do points+=("$n"); done
points+=("$max")
modes=()
[ "$mode" != weak ] && modes+=(strong)
[ "$mode" != strong ] && modes+=(weak)

read -r -a extra <<<"${STSAE_SBATCH_ARGS:-}"
if ((!dry)); then
  mkdir -p "$out/logs"
  {
    echo "# deck: $deck $*"
    echo "# submitted: $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(hostname); ${tpn} ranks per node$( ((gpus)) && echo ", one GPU per rank")"
  } >"$out/points.tsv"
fi
ids=()
for m in "${modes[@]}"; do
  for n in "${points[@]}"; do
    nodes=$(((n + tpn - 1) / tpn))
    per=$((n < tpn ? n : tpn))
    args=("${extra[@]}" --ntasks="$n" --nodes="$nodes" --ntasks-per-node="$per" --job-name="stsae-scaling-$m-n$n"
          --output="$out/logs/$m-n$n-%j.out")
    ((gpus)) && args+=(--gpus-per-node="$per")
    over=("run_dir=$out/$m-n$n")
    if [ "$m" = strong ]; then
      over+=("train.ranks_per_job=$n")
    else
      seeds=$(seq -s ', ' 0 $((n - 1)))
      over+=("train.ranks_per_job=1" "train.seeds=[$seeds]")
    fi
    cmd=(sbatch --parsable "${args[@]}" "$here/$( ((gpus)) && echo train-gpu || echo train).sbatch" "$deck" "$@"
         "${over[@]}")
    if ((dry)); then
      printf '%q ' "${cmd[@]}"
      echo
      continue
    fi
    id=$("${cmd[@]}")
    id=${id%%;*}
    ids+=("$id")
    echo "$m $n $id" >>"$out/points.tsv"
    echo "$m n=$n: job $id"
  done
done
collect_cmd=(sbatch --parsable "${extra[@]}" --ntasks=1 --nodes=1 --job-name=stsae-scaling-collect
             --output="$out/logs/collect-%j.out")
if ((dry)); then
  printf '%q ' "${collect_cmd[@]}" --dependency=afterany:IDS --wrap "$here/scaling.sh --collect $out"
  echo
  exit 0
fi
dep=$(IFS=:; echo "${ids[*]}")
id=$("${collect_cmd[@]}" --dependency=afterany:"$dep" --wrap "$(printf '%q ' "$here/scaling.sh" --collect "$out")")
echo "collect: job ${id%%;*} -> $out/scaling.md"
