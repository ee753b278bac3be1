#!/usr/bin/env bash
# tests/gpu/run.sh — everything stsae checks on a real GPU, as one prepared
# script for the lent GPU machine (CUDA, cuBLAS, CMake, Python with PyTorch;
# no MPI, HDF5, libyaml, cJSON, FFmpeg or OpenBLAS, nothing installable, at most
# 64 MiB carried there): a GPU-core build (-DSTSAE_GPU_CORE_ONLY=ON, see
# cmake/GpuCore.cmake) of the pure layers and the CUDA twins, then the device
# tests (ctest label cuda: the CUDA step against the CPU step, the emulation's
# expectations test_cuda_shim on the device) and the pure unit tests, with the
# device's name and the build's BLAS in the log.
#
#   tests/gpu/run.sh [BUILD_DIR]        (default build-gpu; the repo root as cwd)
# In:  nvcc on PATH or in /usr/local/cuda/bin. Out: the log on stdout; with
#      $OUT set (the device tool's folder), ctest's log copied there. Exit: 0
#      when every test ran and passed, 1 on a failure, 2 when no device was
#      seen (the cuda tests skip with 77 then, which must not read as a pass).
# Budget: configure + build ~2 min on 16 cores, the tests < 1 min.
set -euo pipefail
BUILD_DIR=${1:-build-gpu}
export PATH="$PATH:/usr/local/cuda/bin"
command -v nvcc >/dev/null || { echo "tests/gpu/run.sh: no nvcc (PATH, /usr/local/cuda/bin)"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

cmake -S . -B "$BUILD_DIR" -DSTSAE_GPU_CORE_ONLY=ON -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$(nproc)"

status=0
ctest --test-dir "$BUILD_DIR" -L 'cuda|unit' --output-on-failure -j 4 || status=1
if [ -n "${OUT:-}" ]; then cp "$BUILD_DIR/Testing/Temporary/LastTest.log" "$OUT/gpu_ctest.log" 2>/dev/null || true; fi
# a skipped device test (exit 77) means no device was found: that is no pass
rc=0; "$BUILD_DIR/tests/test_cuda_step" >/dev/null 2>&1 || rc=$?
if [ "$rc" = 77 ]; then echo "tests/gpu/run.sh: no CUDA device: the device tests skipped"; status=2; fi
echo "tests/gpu/run.sh: exit $status"
exit "$status"
