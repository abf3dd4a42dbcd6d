#!/usr/bin/env bash
# Configures and builds everything into build/ (binaries in build/bin, the Python
# package in build/python). Extra arguments are passed to the CMake configure step,
# e.g. `bash scripts/build.sh -DSAASODOO_SANITIZE=ON`.
#
#   SAASODOO_BUILD_DIR   build tree (default: build)
#   SAASODOO_BUILD_TYPE  CMake build type (default: RelWithDebInfo)
#   SAASODOO_JOBS        parallel jobs (default: nproc)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BUILD_DIR=${SAASODOO_BUILD_DIR:-build}
BUILD_TYPE=${SAASODOO_BUILD_TYPE:-RelWithDebInfo}
JOBS=${SAASODOO_JOBS:-$(nproc)}

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "$@"
cmake --build "$BUILD_DIR" -j"$JOBS"
