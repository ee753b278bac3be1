#!/usr/bin/env bash
# run_tests.sh — the test suite of a sanitizer build (-DSTSAE_SANITIZE=ON:
# AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer), with every
# report captured and fatal. scripts/bootstrap.sh test runs it; by hand:
#
#   cmake -S . -B build-asan -DSTSAE_SANITIZE=ON -DSTSAE_ENABLE_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug
#   cmake --build build-asan -j "$(nproc)"
#   scripts/sanitizer/run_tests.sh build-asan -j "$(nproc)"      # extra arguments go to ctest
#
# In:  the build directory; ctest arguments. Out: ctest's output, then every
# sanitizer report in full; exit 1 if any test failed or any report was
# written (even by a process whose exit status a test ignores: a bad-input
# test that expects exit 1 must not hide a report behind it).
#
# Why these settings:
# - log_path: each process (python-driven stsae runs and MPI ranks included)
#   writes its report to BUILD/sanitizer-logs/{asan,ubsan}.PID, so nothing is
#   lost in a captured stderr; this script prints them all at the end.
# - exitcode 86 (ASan, LSan) and 87 (UBSan): a report also fails the process
#   with a status no stsae error path uses. UBSan is fatal at the first report
#   (the build passes -fno-sanitize-recover).
# - LeakSanitizer stays on everywhere. Open MPI's own start-up allocations
#   are never freed (its components are dlopen'ed and unloaded at
#   MPI_Finalize, so their frames show as "<unknown module>"):
#   lsan.supp suppresses leaks whose allocation stack passes through Open
#   MPI's libraries or MPI_Init/MPI_Finalize, HDF5's accumulator after a
#   create that failed on a full disk (and, while one is open, the open
#   bugs of a second section), and
#   fast_unwind_on_malloc=0 makes those stacks complete (the frame-pointer
#   unwinder stops at the first library built without frame pointers, which
#   is what leaves "<unknown module>" alone on the stack).
# - Left out (-LE): label `planted` (fault-planted twins that must fail
#   anyway: no production path) and label `slurm` (the private Slurm
#   cluster's job scripts pass only OMPI_*, OMP_* and PATH to the job, which
#   drops these options; it is also the slowest test); and (-E) the test
#   demo_reference, whose reference numbers are a Release build's: this
#   build (-O1, no -march) rounds otherwise, and 3 epochs of training carry
#   that past the reference's tolerances (measured 2026-12-06, 2 cores:
#   accuracies 0.092 off against 0.10, purity_max one step; 7 minutes), while
#   the pipeline it runs (`stsae run`) runs here in test_synth, test_extract
#   and test_train; and label `chromium` (browse_chromium: a browser loading
#   pages that the test `browse`, which runs here, has already checked
#   against numpy from the same stsae code; a minute of CI). Everything else
#   runs, the MPI tests (mpi, train, extract, eval) included.
# - Open bugs (fuzz/KNOWN_BUGS.md): none today, so lsan.supp has no
#   second section and no test is left out (a test that fails here only
#   because of an open bug would be left out with -E below, and listed there).
set -euo pipefail
build=${1:?usage: run_tests.sh BUILD_DIR [ctest arguments]}
shift
here=$(cd "$(dirname "$0")" && pwd)
logs=$(cd "$build" && pwd)/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"

export ASAN_OPTIONS="log_path=$logs/asan:exitcode=86:detect_leaks=1:fast_unwind_on_malloc=0:check_initialization_order=1:strict_init_order=1"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="log_path=$logs/ubsan:exitcode=87:print_stacktrace=1:halt_on_error=1"

status=0
ctest --test-dir "$build" --output-on-failure -LE 'planted|slurm|chromium' -E '^demo_reference$' "$@" || status=$?

mapfile -t reports < <(find "$logs" -type f | sort)
if ((${#reports[@]})); then
  for f in "${reports[@]}"; do
    echo "=================== $f"
    cat "$f"
  done
  echo "sanitizer: ${#reports[@]} report(s) above (in $logs)" >&2
  status=1
else
  echo "sanitizer: no reports"
fi
exit "$status"
