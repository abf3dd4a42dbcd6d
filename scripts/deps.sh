#!/usr/bin/env bash
# Installs the Debian 12 packages saasodoo needs to build, test and run.
# This is the single list: scripts/test.sh and scripts/run.sh both call this script.
# When every package is already installed nothing is fetched, so repeated runs are fast.
#
#   bash scripts/deps.sh          install what is missing
#   bash scripts/deps.sh --list   print the package list
#   SAASODOO_SKIP_DEPS=1          skip the check entirely
set -euo pipefail

PACKAGES=(
    # toolchain
    build-essential cmake pkg-config clang-format
    # gRPC core (C API), protobuf-c and the code generators
    libgrpc-dev protobuf-c-compiler libprotobuf-c-dev protobuf-compiler protobuf-compiler-grpc
    # third-party protos: grpc health/reflection, google/api and google/rpc
    grpc-proto golang-github-grpc-ecosystem-grpc-gateway-dev
    # the control-plane database and the server's libraries
    postgresql libpq-dev libcurl4-openssl-dev libyaml-dev libssl-dev
    # tests: cmocka (unit), Python grpcio and pytest (integration), h2load/nghttp (benchmark)
    libcmocka-dev python3-grpcio python3-protobuf python3-pytest python3-yaml nghttp2-client
    # test doubles that sign tokens (Supabase Auth) and make TLS certificates
    python3-cryptography python3-botocore openssl
    # the REST gateway: Go, grpc-gateway 1.6 and the Go packages it builds against
    golang-go golang-grpc-gateway golang-google-grpc-dev golang-goprotobuf-dev golang-google-genproto-dev
    # gateway and browser tests: curl, Chromium, Node.js (playwright-core comes from npm)
    curl chromium nodejs
)

# Installs the npm packages of a test folder (tests/browser: playwright-core; tests/s3:
# s3rver) into its node_modules (ignored by git) from the committed package-lock.json, when
# they are missing or out of date.
install_test_modules() {
    local dir
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/$1"
    [[ -f "$dir/package-lock.json" ]] || return 0
    if [[ -f "$dir/node_modules/.package-lock.json" &&
        "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        # Debian's nodejs leaves npm to its own package (NodeSource's bundles it).
        echo "deps: installing npm" >&2
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends npm
    fi
    echo "deps: installing the npm packages of $1 into $dir/node_modules" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

if [[ "${1:-}" == "--list" ]]; then
    printf '%s\n' "${PACKAGES[@]}"
    exit 0
fi

if [[ "${SAASODOO_SKIP_DEPS:-0}" == "1" ]]; then
    exit 0
fi

SUDO=()
if [[ $EUID -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -ne 0 ]]; then
    echo "deps: installing ${missing[*]}" >&2
    if [[ $EUID -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
        echo "deps: missing packages and not root (no sudo): ${missing[*]}" >&2
        exit 1
    fi
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

install_test_modules tests/browser
install_test_modules tests/s3
