#!/usr/bin/env bash
# JWT verifier benchmark: jwt_verify() verifications per second (build/bin/bench_jwt) beside
# `openssl speed` verify/s for the same signature algorithm, measured in the same run, for
# ES256 (ecdsap256) and EdDSA (ed25519). Prints both figures and their ratio (target >= 0.8).
# Not part of the test suite; see README.md here.
#
#   BENCH_SECONDS   seconds per measurement (default 3, as `openssl speed -seconds 3`)
#   BENCH_ROUNDS    rounds (openssl speed, then bench_jwt); the median is reported (default 3)
#   BENCH_ALGS      algorithms to measure (default "ES256 EdDSA")
#
# Exit status: 0 all targets met, 1 the benchmark could not run, 2 a target was missed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

BUILD_DIR=${SAASODOO_BUILD_DIR:-build}
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
BENCH=$BUILD_DIR/bin/bench_jwt
SECS=${BENCH_SECONDS:-3}
ROUNDS=${BENCH_ROUNDS:-3}
ALGS=${BENCH_ALGS:-ES256 EdDSA}
RATIO_TARGET=0.8

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a whole number of seconds"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive whole number"
if [[ ! -x "$BENCH" ]]; then
    say "building bench_jwt"
    if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
        cmake -S "$ROOT" -B "$BUILD_DIR" >/dev/null || die "cmake configure failed"
    fi
    cmake --build "$BUILD_DIR" --target bench_jwt -j2 >/dev/null || die "build failed"
fi

# openssl speed name and the label of its result line, per JWS algorithm.
speed_test() {
    case "$1" in
    ES256) echo "ecdsap256" ;;
    EdDSA) echo "ed25519" ;;
    *) return 1 ;;
    esac
}
speed_label() {
    case "$1" in
    ES256) echo "ecdsa (nistp256)" ;;
    EdDSA) echo "EdDSA (Ed25519)" ;;
    esac
}

# verify/s from `openssl speed`: the last column of the result line, e.g.
#  256 bits ecdsa (nistp256)   0.0000s   0.0001s  32198.0  10220.0
openssl_verify_rate() {
    local alg=$1 out line
    out=$(openssl speed -seconds "$SECS" "$(speed_test "$alg")" 2>/dev/null) ||
        die "openssl speed $(speed_test "$alg") failed"
    line=$(grep -F "$(speed_label "$alg")" <<<"$out" | tail -n 1)
    [[ -n "$line" ]] || die "no result line in the output of openssl speed $(speed_test "$alg")"
    awk '{print $NF}' <<<"$line"
}

# A field of bench_jwt's key=value line.
field() {
    sed -n "s/.* $1=\\([0-9.]*\\).*/\\1/p" <<<"$2"
}

for alg in $ALGS; do
    speed_test "$alg" >/dev/null || die "unknown algorithm $alg (ES256, EdDSA)"
done

# Median of numbers given as arguments.
median() {
    printf '%s\n' "$@" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# Each round runs `openssl speed`, then bench_jwt right after it, so that the two figures
# of a round see much the same machine; the round with the median ratio is reported.
# bench_jwt also times the bare OpenSSL check itself, alternating with jwt_verify() in one
# process: that in-process ratio hardly moves with other load on the machine.
n=0
for alg in $ALGS; do
    n=$((n + 1))
done
say "about $((n * ROUNDS * 2 * SECS))s: $ROUNDS rounds of ${SECS}s per figure, one thread"
declare -A ROUNDS_OF INPROC
TOKEN_BYTES=
for alg in $ALGS; do
    for ((round = 1; round <= ROUNDS; round++)); do
        o=$(openssl_verify_rate "$alg")
        [[ -n "$o" ]] || die "could not read the openssl speed figure for $alg"
        line=$("$BENCH" -seconds "$SECS" "$alg") || die "bench_jwt $alg failed"
        j=$(field per_cpu_second "$line")
        b=$(field bare_per_cpu_second "$line")
        [[ -n "$j" && -n "$b" ]] || die "could not read the bench_jwt figures for $alg"
        TOKEN_BYTES=$(field token_bytes "$line")
        ROUNDS_OF[$alg]+="$(ratio "$j" "$o") $j $o"$'\n'
        INPROC[$alg]+=" $(ratio "$j" "$b")"
        say "$alg round $round: openssl speed $o/s, jwt_verify $j/s, bare check $b/s"
    done
done

status=0
printf 'saasodoo JWT verification benchmark (median of %s rounds of %ss, 1 thread, %s CPUs, %s)\n' \
    "$ROUNDS" "$SECS" "$(nproc)" "$(openssl version | awk '{print $1, $2}')"
printf '  %-6s %13s   %-13s %10s   %6s   %10s\n' alg "jwt_verify/s" "openssl speed" "verify/s" \
    ratio in-process
for alg in $ALGS; do
    # the round with the median ratio (the lower middle one for an even count)
    read -r r j o < <(printf '%s' "${ROUNDS_OF[$alg]}" | sort -g | sed -n "$(((ROUNDS + 1) / 2))p")
    # shellcheck disable=SC2086 # a space-separated list of numbers
    rin=$(median ${INPROC[$alg]})
    if awk -v r="$r" -v t="$RATIO_TARGET" 'BEGIN { exit !(r >= t) }'; then
        verdict=ok
    else
        verdict=MISSED
        status=2
    fi
    printf '  %-6s %13.1f   %-13s %10.1f   %6.2f   %10.2f   target >= %s: %s\n' "$alg" "$j" \
        "$(speed_test "$alg")" "$o" "$r" "$rin" "$RATIO_TARGET" "$verdict"
done
printf '  token: %s bytes, a Supabase access token with its usual claims\n' "$TOKEN_BYTES"
printf '  ratio: jwt_verify/s over openssl speed verify/s; in-process: over the bare OpenSSL\n'
printf '  check timed in bench_jwt alongside jwt_verify()\n'
exit $status
