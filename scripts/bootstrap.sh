#!/usr/bin/env bash
# bootstrap.sh — everything a fresh Debian 12 machine needs, then one action:
#   scripts/bootstrap.sh demo   install, configure, build, run the main job
#   scripts/bootstrap.sh test   install, configure, build, run every test
#   scripts/bootstrap.sh build  install, configure, build
# Idempotent: packages already installed are not touched, the build is
# incremental. Environment: BUILD_DIR (default build), JOBS (default nproc),
# CMAKE_ARGS (extra configure flags, e.g. -DSTSAE_ENABLE_CUDA=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:-build}
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

# Debian packages: build, libraries linked by stsae, and the test references.
packages=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin libhdf5-openmpi-dev
  libyaml-dev libcjson-dev libopenblas-openmp-dev liblapacke-dev liblbfgs-dev
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
  python3 python3-torch python3-h5py python3-numpy python3-pil python3-sklearn python3-matplotlib
  slurm-wlm munge   # tests/test_slurm.py runs jobscripts/ on a private single-node Slurm
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

case "$action" in
  build) ;;
  test)
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
    ;;
  demo)
    # The main job: inputs/demo.yaml end to end (synthetic videos -> pixels
    # features -> every SAE variant -> evaluation -> results.md and plots),
    # about 5 minutes on 2 cores. It ends by printing where the results are.
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} "$BUILD_DIR/stsae" run inputs/demo.yaml
    ;;
  *)
    echo "usage: scripts/bootstrap.sh demo|test|build" >&2
    exit 2
    ;;
esac
