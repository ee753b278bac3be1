# submit.sh — what chain.sh and scaling.sh share before they submit, sourced by
# each (not run): the deck, the stsae binary, and the deck as stsae resolves it.
#
# In:  from the sourcing script: `me` (its message prefix), `here` (this
#      folder); the environment's STSAE (default build/stsae beside this folder).
# Out: submit_deck DECK [key=value ...] sets
#        deck      DECK as an absolute path
#        STSAE     the binary, absolute, exported (the jobs run it)
#        STSAE_JOBSCRIPTS   this folder, exported: where the jobs find runner.sh
#                  (sbatch runs a copy of each script)
#        resolved  `stsae check DECK [key=value ...]`: the deck as resolved
#        run_dir   its run_dir
#      or exits: 2 without the deck or the binary, 1 when the deck does not
#      check (stsae said why, with FILE:LINE). The caller shifts DECK off.
# shellcheck shell=bash disable=SC2034,SC2154  # sets and reads the sourcing script's variables
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "jobscripts/submit.sh is sourced by chain.sh and scaling.sh, not run" >&2
  exit 2
fi

submit_deck() {
  [ -f "$1" ] || { echo "$me: no deck '$1'" >&2; exit 2; }
  deck="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
  shift
  STSAE=${STSAE:-$here/../build/stsae}
  [ -x "$STSAE" ] || { echo "$me: no stsae binary at '$STSAE' (set STSAE=/path/to/stsae)" >&2; exit 2; }
  STSAE="$(cd "$(dirname "$STSAE")" && pwd)/$(basename "$STSAE")"
  export STSAE STSAE_JOBSCRIPTS=$here
  resolved=$("$STSAE" check "$deck" "$@") || { echo "$me: the deck does not check (above)" >&2; exit 1; }
  run_dir=$(sed -n 's/^run_dir: *//p' <<<"$resolved" | sed -e 's/ *#.*$//' -e "s/^[\"']//" -e "s/[\"']$//")
}
