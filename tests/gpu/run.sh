#!/usr/bin/env bash
# tests/gpu/run.sh — everything stsae checks on a real GPU, as one prepared
# script for the lent GPU machine (CUDA, cuBLAS, CMake, Python with PyTorch;
# no MPI, HDF5, libyaml, cJSON, FFmpeg or OpenBLAS, nothing installable, at most
# 64 MiB carried there): a GPU-core build (-DSTSAE_GPU_CORE_ONLY=ON, see
# cmake/GpuCore.cmake) of the pure layers and the CUDA twins, then the device
# tests (ctest label cuda: the CUDA step against the CPU step, the emulation's
# expectations test_cuda_shim on the device) and the pure unit tests, with the
# device's name and the build's BLAS in the log, then the kernel harnesses of
# dev/cuda/ (every version of each at the paper's shape: validation and ms per
# call), then the benchmark (`bench_step --device cuda`: tokens/s per covered
# variant and GEMM math at the paper's shape, the encoder GEMM alone, peak
# device memory), and last a short table: the tests' summary, a line per
# harness and the benchmark's figures.
#
#   tests/gpu/run.sh [LOG_DIR [BUILD_DIR]]   (the repo root as cwd)
#     LOG_DIR   full logs (default: $OUT, the device tool's folder, else gpu-logs):
#               configure.log build.log ctest.log dev_cuda.txt (the harnesses)
#               bench_step.txt bench_step.jsonl summary.txt
#     BUILD_DIR default build-gpu; JOBS (env): build jobs, default nproc
# In:  nvcc on PATH or in /usr/local/cuda/bin. Out: the progress and the table on
#      stdout, the logs in LOG_DIR. Exit: 0 when every test ran and passed and
#      the benchmark ran, 1 on a failure, 2 when no device was seen (the cuda
#      tests and the benchmark skip with 77 then, which must not read as a pass).
# Budget (at most 8 minutes): configure + build ~2 min on 16 cores, the tests
# < 1 min, the harnesses < 1 min (each cut at 2 min), the benchmark < 1 min.
set -uo pipefail
LOG_DIR=${1:-${OUT:-gpu-logs}}
BUILD_DIR=${2:-build-gpu}
mkdir -p "$LOG_DIR"
export PATH="$PATH:/usr/local/cuda/bin"
command -v nvcc >/dev/null || { echo "tests/gpu/run.sh: no nvcc (PATH, /usr/local/cuda/bin)"; exit 1; }
device=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi")
echo "device: $device"
step() { echo "tests/gpu/run.sh: $1 ($(date +%T))"; }

step configure
cmake -S . -B "$BUILD_DIR" -DSTSAE_GPU_CORE_ONLY=ON -DCMAKE_BUILD_TYPE=Release >"$LOG_DIR/configure.log" 2>&1 ||
    { tail -30 "$LOG_DIR/configure.log"; echo "tests/gpu/run.sh: configure failed: exit 1"; exit 1; }
grep 'stsae:' "$LOG_DIR/configure.log"
step build
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" >"$LOG_DIR/build.log" 2>&1 ||
    { grep -iE 'error|warning' "$LOG_DIR/build.log" | head -40; echo "tests/gpu/run.sh: build failed: exit 1"; exit 1; }

status=0
step "tests (labels cuda, unit)"
ctest --test-dir "$BUILD_DIR" -L 'cuda|unit' --output-on-failure -j 4 >"$LOG_DIR/ctest_out.log" 2>&1 || status=1
cp "$BUILD_DIR/Testing/Temporary/LastTest.log" "$LOG_DIR/ctest.log" 2>/dev/null || true
tests_line=$(grep -E 'tests passed|tests failed' "$LOG_DIR/ctest_out.log" | tail -1)
# a skipped device test (exit 77) means no device was found: that is no pass
rc=0; "$BUILD_DIR/tests/test_cuda_step" >/dev/null 2>&1 || rc=$?
if [ "$rc" = 77 ]; then echo "tests/gpu/run.sh: no CUDA device: the device tests skipped"; status=2; fi

step "kernel harnesses (dev/cuda: every version, the paper's shape)"
: >"$LOG_DIR/dev_cuda.txt"
dev_lines=""
for h in topk batchtopk decode_loss latent_grads infonce; do
    hrc=0
    timeout 120 "$BUILD_DIR/dev/cuda/dev_$h" >"$LOG_DIR/dev_$h.out" 2>&1 || hrc=$?
    cat "$LOG_DIR/dev_$h.out" >>"$LOG_DIR/dev_cuda.txt"
    # one line: "vN [case] PASS|FAIL ms" for each version line of the harness
    dev_lines+="dev_$h (exit $hrc):$(awk -F': ' '/^version /{
        split($1, w, " "); c = $1; sub(/^[^(]*\(/, "", c); sub(/\)$/, "", c); n = split(c, p, ", ")
        k = split($2, r, " "); for (i = 1; i < k; i++) if (r[i + 1] == "ms/call") t = r[i]
        printf(" v%s%s %s %s ms;", w[2], (n > 1 ? " " p[n] : ""), r[1], t) }' "$LOG_DIR/dev_$h.out")"$'\n'
    rm -f "$LOG_DIR/dev_$h.out"
    if [ "$hrc" = 77 ]; then
        [ "$status" = 1 ] || status=2
    elif [ "$hrc" != 0 ]; then
        status=1
    fi
done

step "benchmark (bench_step --device cuda)"
bench="$BUILD_DIR/bench_step"
brc=0
(
    "$bench" --device cuda --reps 10 || exit $?
    echo "# AuxK on: a third of the latents dead"
    "$bench" --device cuda --reps 10 --variants standard,standard+M --dead-frac 0.33 --math tf32,bf16 || exit $?
    echo "# larger batch: 16384 tokens"
    "$bench" --device cuda --reps 5 --variants standard --scale 4 --math tf32,bf16 || exit $?
) >"$LOG_DIR/bench_step.txt" 2>&1 || brc=$?
"$bench" --device cuda --reps 10 --json >"$LOG_DIR/bench_step.jsonl" 2>&1 || true
if [ "$brc" = 77 ]; then
    [ "$status" = 1 ] || status=2
elif [ "$brc" != 0 ]; then
    status=1
fi

{
    echo "==== tests/gpu/run.sh summary ($(date -u +%FT%TZ)) ===="
    echo "device: $device"
    echo "tests (cuda|unit): ${tests_line:-none ran}"
    grep -E '\*\*\*|Failed|Not Run' "$LOG_DIR/ctest_out.log" | grep -v '^ *0 tests' | head -20
    echo "kernel harnesses (dev/cuda, paper's shape; full output in dev_cuda.txt):"
    printf '%s' "$dev_lines"
    echo "bench_step --device cuda (exit $brc; ms per step incl. Adam; gemm = encoder GEMM alone):"
    cat "$LOG_DIR/bench_step.txt"
    echo "logs: $LOG_DIR; exit $status"
} | tee "$LOG_DIR/summary.txt"
exit "$status"
