#!/usr/bin/env bash
# bootstrap.sh — everything a fresh Debian 12 machine needs, then one action:
#   scripts/bootstrap.sh demo   install, configure, build, run the main job
#   scripts/bootstrap.sh test   install, configure, build, run every test:
#                               the suite (BUILD_DIR), the suite again under
#                               ASan + UBSan (ASAN_DIR, scripts/sanitizer/),
#                               and each fuzz target for FUZZ_SECONDS (FUZZ_DIR,
#                               clang, fuzz/); a timing table at the end
#   scripts/bootstrap.sh build  install, configure, build
# Idempotent: packages already installed are not touched, the builds are
# incremental. Environment: BUILD_DIR (default build), JOBS (default nproc),
# CMAKE_ARGS (extra configure flags of BUILD_DIR, e.g. -DSTSAE_ENABLE_CUDA=OFF);
# for `test`: ASAN_DIR (build-asan), FUZZ_DIR (build-fuzz), FUZZ_SECONDS (20
# per target, so that CI stays under 45 minutes; 3600 before a release),
# SANITIZE=0 or FUZZ=0 to leave a stage out.
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:-build}
t_start=$SECONDS
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

# Debian packages: build, libraries linked by stsae, and the test references.
packages=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin libhdf5-openmpi-dev
  libyaml-dev libcjson-dev libopenblas-openmp-dev liblapacke-dev liblbfgs-dev
  libutf8proc-dev   # Unicode tables of CLIP's tokenizer (src/io/clip_bpe.c)
  libdnnl-dev       # oneDNN: train.gemm: bf16, the encoder product on AVX512-BF16 / AMX (src/sae/gemm_bf16.c)
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
  python3 python3-venv python3-torch python3-h5py python3-numpy python3-pil python3-sklearn python3-matplotlib
  slurm-wlm munge   # tests/test_slurm.py runs jobscripts/ on a private single-node Slurm
  clang libclang-rt-14-dev libomp-dev   # fuzz/: clang's libFuzzer and sanitizer runtimes, its OpenMP
  libtbb-dev   # the CUDA emulation (HIP-CPU runs kernels on TBB threads): ctest label cuda-emu
  chromium-headless-shell   # tests/test_browse.py loads the feature browser's pages in it
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
  echo "bootstrap: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"
t_build=$((SECONDS - t_start))

# One timed step of `test`: runs "$@", records its time and status, never
# stops the others (every stage reports; the exit status says if any failed).
steps=()
failed=0
step() {
  local name=$1 t0=$SECONDS rc=0
  shift
  echo "bootstrap: --- $name"
  "$@" || rc=$?
  steps+=("$(printf '%-28s %6d s   %s' "$name" $((SECONDS - t0)) "$([ $rc -eq 0 ] && echo ok || echo "FAILED ($rc)")")")
  [ $rc -eq 0 ] || failed=1
}

case "$action" in
  build) ;;
  test)
    ASAN_DIR=${ASAN_DIR:-build-asan}
    FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
    step "suite" ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
    if [ "${SANITIZE:-1}" != 0 ]; then
      # the suite under AddressSanitizer + UBSan (gcc), reports captured and fatal
      step "sanitizer: configure+build" bash -c "cmake -S . -B '$ASAN_DIR' -DSTSAE_SANITIZE=ON \
        -DSTSAE_ENABLE_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null && cmake --build '$ASAN_DIR' -j '$JOBS'"
      step "sanitizer: suite" scripts/sanitizer/run_tests.sh "$ASAN_DIR" -j "$JOBS"
    fi
    if [ "${FUZZ:-1}" != 0 ]; then
      # each fuzz target for FUZZ_SECONDS; a crash, leak or timeout fails it
      step "fuzz: configure+build" bash -c "CC=clang cmake -S . -B '$FUZZ_DIR' -DSTSAE_FUZZ=ON -DSTSAE_ENABLE_CUDA=OFF \
        -DSTSAE_FUZZ_SECONDS='${FUZZ_SECONDS:-20}' >/dev/null && cmake --build '$FUZZ_DIR' -j '$JOBS'"
      step "fuzz: ${FUZZ_SECONDS:-20} s per target" ctest --test-dir "$FUZZ_DIR" --output-on-failure -L fuzz -j "$JOBS"
    fi
    echo "bootstrap: test steps"
    printf '  %-28s %6d s\n' "install+configure+build" "$t_build"
    printf '  %s\n' "${steps[@]}"
    printf '  %-28s %6d s\n' "total" $((SECONDS - t_start))
    exit "$failed"
    ;;
  demo)
    # The main job: inputs/demo.yaml end to end (synthetic videos -> motion
    # features -> every SAE variant -> evaluation -> results.md and plots),
    # about 4 minutes on 2 cores. It ends by printing where the results are.
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} "$BUILD_DIR/stsae" run inputs/demo.yaml
    ;;
  *)
    echo "usage: scripts/bootstrap.sh demo|test|build" >&2
    exit 2
    ;;
esac
