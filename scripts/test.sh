#!/usr/bin/env bash
# The test command: installs dependencies, builds, runs the whole suite with ctest
# (cmocka unit tests and the integration tests against a private PostgreSQL and the real
# server) and checks the C formatting with clang-format. Exits non-zero on any failure.
#
#   CTEST_PARALLEL_LEVEL   run tests in parallel (ctest's own variable; default serial)
#   SAASODOO_CTEST_ARGS    extra ctest arguments, e.g. "-R unit_ -V"
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
BUILD_DIR=${SAASODOO_BUILD_DIR:-build}

step() { printf '\n==> %s\n' "$*"; }

step "dependencies"
bash scripts/deps.sh || { echo "test: installing dependencies failed" >&2; exit 1; }

step "build"
bash scripts/build.sh || { echo "test: build failed" >&2; exit 1; }

failed=()

step "tests"
# shellcheck disable=SC2086
if ! ctest --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error ${SAASODOO_CTEST_ARGS:-}; then
    failed+=("ctest")
fi

step "format (clang-format --dry-run --Werror)"
mapfile -t sources < <(find server clients include tests -type f \( -name '*.c' -o -name '*.h' \) \
    2>/dev/null | sort)
if [[ ${#sources[@]} -eq 0 ]]; then
    echo "no C sources found"
elif ! clang-format --dry-run --Werror "${sources[@]}"; then
    echo "test: formatting drift; fix with: clang-format -i <files above>" >&2
    failed+=("format")
else
    echo "${#sources[@]} files formatted correctly"
fi

if [[ ${#failed[@]} -ne 0 ]]; then
    printf '\nFAILED: %s\n' "${failed[*]}" >&2
    exit 1
fi
printf '\nAll tests passed.\n'
