#!/usr/bin/env bash
# otpgate at scale: login, verify and /me latency (p50/p99) at 1k, 100k and
# 1M users, EXPLAIN of the hot queries, database size per user, and the
# time of event pruning at the largest size. Prints figures; the only
# verdict is the p50 ratio largest/smallest size. See bench/README.md
# ("Scale").
#
#   cargo build --release
#   bench/scale.sh                                      # SQLite only
#   bench/scale.sh --postgres postgres://postgres@127.0.0.1:5432/postgres
#   bench/scale.sh --sizes 1000,10000 --postgres URL    # a quick look
#
# Options (the rest are passed to bench/scale.py, see --help there):
#   --postgres URL    a PostgreSQL server on which a fresh database
#                     otpgate_scale_<pid> is created (and dropped at the end);
#                     both backends are then measured (or --backends)
#   --backends LIST   sqlite,postgres (default: sqlite, plus postgres with
#                     --postgres)
#   --sizes LIST      user counts, default 1000,100000,1000000
#   --measured N      users enrolled through the API and measured (400)
#   --conns N         client threads, one keep-alive connection each (8)
# Environment: OTPGATE_BIN (default target/release/otpgate; a private copy
# is run), SCALE_POSTGRES_URL (same as --postgres), BENCH_SKIP_INSTALL=1
# (do not apt-get anything).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
BIN=${OTPGATE_BIN:-$ROOT/target/release/otpgate}
PY=python3
ARGS=()
PG_URL=${SCALE_POSTGRES_URL:-}

while (($#)); do
    case "$1" in
    --postgres) PG_URL=${2:?--postgres needs a URL}; shift 2 ;;
    --postgres=*) PG_URL=${1#*=}; shift ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) ARGS+=("$1"); shift ;;
    esac
done

install() { # install PACKAGE...: apt-get, unless told not to
    if [[ "${BENCH_SKIP_INSTALL:-}" == 1 ]]; then
        echo "missing: $* (BENCH_SKIP_INSTALL=1: not installing)" >&2
        exit 2
    fi
    echo "installing $* (apt-get)" >&2
    apt-get install -y "$@" >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y "$@" >/dev/null; }
}

[[ -x "$BIN" ]] || { echo "no $BIN: run 'cargo build --release' first (or set OTPGATE_BIN)" >&2; exit 2; }
command -v "$PY" >/dev/null || install python3
if [[ -n "$PG_URL" ]]; then
    command -v psql >/dev/null || install postgresql-client
    psql "$PG_URL" -X -q -At -c 'SELECT 1' >/dev/null ||
        { echo "cannot reach PostgreSQL at the --postgres URL" >&2; exit 2; }
    ARGS+=(--postgres "$PG_URL")
fi

# scale.py copies the binary to its temp dir, cleans up (server, temp dir,
# PostgreSQL database) on exit and on SIGINT/SIGTERM.
exec "$PY" "$BENCH_DIR/scale.py" --bin "$BIN" --results "$BENCH_DIR/results" ${ARGS[@]+"${ARGS[@]}"}
