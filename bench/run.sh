#!/usr/bin/env bash
# otpgate benchmark harness: prints numbers and compares them with the
# targets; it never fails on a slow figure. See bench/README.md.
#
#   cargo build --release && bench/run.sh [--postgres URL] [--write-results]
#
# --postgres URL   run every scenario on SQLite, then again on PostgreSQL:
#                  each server gets a fresh database, created on (and
#                  dropped from) the server of URL with psql, e.g.
#                  postgres://postgres@127.0.0.1:5432/postgres
# --write-results  also write bench/RESULTS.md and bench/results.svg (the
#                  same report is always written to bench/results/latest.md
#                  and latest.svg)
#
# Knobs (environment): OTPGATE_BIN (default target/release/otpgate),
# BENCH_DURATION (seconds per wrk run, default 10), BENCH_VERIFY_USERS
# (users for the successful-verify bursts, default 4000), BENCH_RESTARTS
# (restarts timed to /readyz, default 5), BENCH_WAIT_IDLE (seconds to wait
# for other CPU users to finish first, default 0), BENCH_SKIP_INSTALL=1 (do
# not apt-get/pip anything).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
INVOCATION=("$0" "$@")

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
PG_URL=""
WRITE_RESULTS=0
while (($#)); do
    case $1 in
    --postgres) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; PG_URL=$2; shift 2 ;;
    --postgres=*) PG_URL=${1#*=}; shift ;;
    --write-results) WRITE_RESULTS=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
BACKENDS=(sqlite)
[[ -n "$PG_URL" ]] && BACKENDS+=(postgres)

BIN=${OTPGATE_BIN:-$ROOT/target/release/otpgate}
RESULTS=$BENCH_DIR/results
DUR=${BENCH_DURATION:-10}
VERIFY_USERS=${BENCH_VERIFY_USERS:-4000}
RESTARTS=${BENCH_RESTARTS:-5}
THREADS=2
CONNS=64
PY=python3
# The server's abuse limits would otherwise turn a benchmark from one
# loopback address into a benchmark of 429 answers: the per-IP bucket on
# login/register is switched off; the per-account wrong-code lockout and
# hourly budget are raised far above what the verify run sends per user.
# (Logins are counted ahead as failures, but at most bcrypt threads + 1 at
# once, so the default per-(username, IP) lockout of 5 never trips on
# correct passwords.) The throttle bookkeeping still runs on every request.
SERVER_LIMITS=(
    OTPGATE_IP_RATE_PER_MIN=0
    OTPGATE_OTP_FAILURES_BEFORE_LOCK=1000
    OTPGATE_OTP_FAILURES_PER_HOUR=100000
    OTPGATE_LOGIN_FAILURES_PER_HOUR=100000
)
# Keys are given, the same to every server of the run, as in production
# (several instances share a database): generated ones would make each
# server on PostgreSQL log an error, and each restart read them back.
SERVER_KEYS=(
    "OTPGATE_JWT_SECRET=$(head -c 48 /dev/urandom | base64 -w0)"
    "OTPGATE_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64 -w0)"
)
TOOL="$BENCH_DIR/tools/otpbench.py"
export BENCH_LUA_DIR=$BENCH_DIR/lua BENCH_THREADS=$THREADS
export BENCH_PASSWORD='bench-Pa55word-7q!' # = PASSWORD in tools/otpbench.py

WORK=$(mktemp -d "${TMPDIR:-/tmp}/otpgate-bench.XXXXXX")
mkdir -p "$RESULTS"
LOG=$RESULTS/latest.log
: >"$LOG"
rm -f "$RESULTS"/server-*.log
SERVER_PID=""
PG_DBS=() # databases this run created and has not dropped yet
PROBLEMS=()
DISTURBED=()
declare -A R # figures by "backend:name"
BK=sqlite    # the backend being run

# say: to the terminal and the log; section headings ("-- ", "== ") get
# the time since the start, in seconds.
say() {
    local line="$*"
    [[ "$line" == "-- "* || "$line" == "== "* ]] && line="${line:0:3}[+$((SECONDS - T0))s] ${line:3}"
    printf '%s\n' "$line" | tee -a "$LOG"
}
T0=$SECONDS
note_problem() { PROBLEMS+=("$BK: $*"); say "!! PROBLEM ($BK): $*"; }
g() { printf '%s' "${R[$BK:$1]:-}"; } # a figure of the current backend

# ------------------------------------------------------------- PostgreSQL
# The URL of database NAME on the server of PG_URL (same user, host, port
# and query string).
pg_url_of() {
    local base=${PG_URL%%\?*}
    local query=${PG_URL#"$base"}
    printf '%s/%s%s' "${base%/*}" "$1" "$query"
}
pg_admin() { psql "$PG_URL" -v ON_ERROR_STOP=1 -qAtc "$1"; }
create_db() {
    pg_admin "CREATE DATABASE \"$1\"" >>"$LOG" 2>&1 || { say "cannot create database $1 on $(redact "$PG_URL")"; exit 1; }
    PG_DBS+=("$1")
}
drop_db() {
    pg_admin "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >>"$LOG" 2>&1 || say "could not drop database $1"
    local kept=() d
    for d in "${PG_DBS[@]}"; do [[ "$d" == "$1" ]] || kept+=("$d"); done
    PG_DBS=("${kept[@]}")
}
redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    local d
    for d in "${PG_DBS[@]}"; do
        psql "$PG_URL" -qAtc "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ tools
ensure_tools() {
    [[ -x "$BIN" ]] || { echo "no $BIN: run 'cargo build --release' first" >&2; exit 2; }
    if ! command -v wrk >/dev/null; then
        [[ "${BENCH_SKIP_INSTALL:-}" == 1 ]] && { echo "wrk is missing" >&2; exit 2; }
        say "installing wrk (apt-get)"
        (apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }) >>"$LOG" 2>&1
    fi
    command -v curl >/dev/null || { apt-get update && apt-get install -y curl; } >>"$LOG" 2>&1
    command -v "$PY" >/dev/null || { apt-get update && apt-get install -y python3; } >>"$LOG" 2>&1
    if [[ -n "$PG_URL" ]]; then
        command -v psql >/dev/null || { apt-get update && apt-get install -y postgresql-client; } >>"$LOG" 2>&1
        pg_admin 'SELECT 1' >/dev/null || { echo "cannot connect to $(redact "$PG_URL") with psql" >&2; exit 2; }
    fi
    # Python's bcrypt (the same Rust bcrypt crate the server links) for the
    # raw figure, in bench/.venv.
    VENV_PY=$BENCH_DIR/.venv/bin/python
    if ! "$VENV_PY" -c 'import bcrypt' 2>/dev/null && [[ "${BENCH_SKIP_INSTALL:-}" != 1 ]]; then
        say "creating bench/.venv with bcrypt (pip)"
        {
            "$PY" -m venv "$BENCH_DIR/.venv" ||
                { apt-get update && apt-get install -y python3-venv && "$PY" -m venv "$BENCH_DIR/.venv"; }
            "$VENV_PY" -m pip install --quiet --disable-pip-version-check bcrypt
        } >>"$LOG" 2>&1 || say "could not set up bench/.venv: raw bcrypt figures will be missing"
    fi
}

# ----------------------------------------------------------------- server
# server_env NAME COST: SERVER_DIR and SENV, the whole environment of
# server NAME of the current backend (its data dir; its SQLite file, or
# its PostgreSQL database otpgate_bench_<pid>_NAME), RUST_LOG=warn.
server_env() {
    local name=$1 cost=$2 db
    SERVER_DIR=$WORK/$BK/$name
    if [[ "$BK" == postgres ]]; then
        DB_NAME=otpgate_bench_$$_$name
        db=$(pg_url_of "$DB_NAME")
    else
        DB_NAME=""
        db=$SERVER_DIR/otpgate.db
    fi
    SENV=(PATH="$PATH" RUST_LOG=warn OTPGATE_DATA_DIR="$SERVER_DIR" DATABASE_URL="$db"
        OTPGATE_BCRYPT_COST="$cost" "${SERVER_KEYS[@]}" "${SERVER_LIMITS[@]}")
}

# start_server NAME COST: a fresh data dir and database.
start_server() {
    local name=$1 cost=$2
    SERVER_NAME=$name
    server_env "$name" "$cost"
    mkdir -p "$SERVER_DIR"
    [[ -n "$DB_NAME" ]] && create_db "$DB_NAME"
    PORT=$("$PY" "$TOOL" freeport)
    BASE=http://127.0.0.1:$PORT
    # A clean environment (and a cwd without .env) so nothing leaks in.
    (cd "$SERVER_DIR" && exec env -i "${SENV[@]}" "$BIN" serve --bind "127.0.0.1:$PORT" >"$SERVER_DIR/server.log" 2>&1) &
    SERVER_PID=$!
    for _ in $(seq 1 150); do
        if curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null; then
            say "== $BK server '$name' (bcrypt cost $cost) pid $SERVER_PID on $BASE, data in $SERVER_DIR${DB_NAME:+, database $DB_NAME}"
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        sleep 0.2
    done
    say "$BK server '$name' did not come up; its log:"
    tee -a "$LOG" <"$SERVER_DIR/server.log"
    exit 1
}

check_alive() {
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        note_problem "server '$SERVER_NAME' died during '$1' (log: $RESULTS/server-$BK-$SERVER_NAME.log)"
        cp "$SERVER_DIR/server.log" "$RESULTS/server-$BK-$SERVER_NAME.log"
        tail -20 "$SERVER_DIR/server.log" | tee -a "$LOG"
        exit 1
    fi
}

# check_log FILE WHAT: a problem for each warn/error/panic line (the
# "generated a key" warnings are not expected any more: keys are given).
check_log() {
    local file=$1 what=$2 other
    other=$(grep -Eci 'warn|error|panic' "$file" || true)
    if [[ "$other" != 0 ]]; then
        note_problem "$what logged $other warning/error line(s), the first: $(grep -Ei -m1 'warn|error|panic' "$file" | cut -c1-300)"
        grep -Ei 'warn|error|panic' "$file" | head -5 | cut -c1-400 | tee -a "$LOG"
    fi
}

# stop_server [keep]: SIGTERM, peak RSS, log check; the PostgreSQL
# database is dropped unless "keep" (the restarts still need it).
stop_server() {
    check_alive "end of run"
    local hwm
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status")
    R[$BK:rss_$SERVER_NAME]=$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')
    say "   peak RSS (VmHWM) of '$SERVER_NAME': $(g "rss_$SERVER_NAME") MiB"
    kill -TERM "$SERVER_PID"
    local rc=0
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=""
    [[ $rc == 0 || $rc == 143 ]] || note_problem "server '$SERVER_NAME' exited with status $rc on SIGTERM"
    cp "$SERVER_DIR/server.log" "$RESULTS/server-$BK-$SERVER_NAME.log"
    check_log "$SERVER_DIR/server.log" "server '$SERVER_NAME'"
    [[ -n "$DB_NAME" && "${1:-}" != keep ]] && drop_db "$DB_NAME"
    return 0
}

# -------------------------------------------------------- CPU accounting
HZ=$(getconf CLK_TCK)
now_s() { date +%s.%N; }
# Busy jiffies of the machine, without irq/softirq: softirq time (loopback
# networking, a lot of it at 100k requests/s) is charged to no process here.
machine_busy() { awk '/^cpu / { print $2 + $3 + $4 + $9 }' /proc/stat; }
machine_irq() { awk '/^cpu / { print $7 + $8 }' /proc/stat; }
proc_cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }   # jiffies
# The local PostgreSQL's processes (backends, and through the postmaster's
# children times the ones that exited), during the PostgreSQL runs only:
# in the SQLite runs, PostgreSQL work is someone else's.
PG_LOCAL=0
db_cpu() {
    if [[ "$BK" == postgres && "$PG_LOCAL" == 1 ]]; then
        awk '$2 == "(postgres)" { t += $14 + $15 + $16 + $17 } END { print t + 0 }' /proc/[0-9]*/stat 2>/dev/null || echo 0
    else
        echo 0
    fi
}
# CHILD_CPU = seconds of CPU used by this shell's reaped children (wrk,
# python). Not $(...): `times` in a subshell sees only the subshell's.
children_cpu() {
    times >"$WORK/times"
    CHILD_CPU=$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { f = $i; sub(/s$/, "", f); split(f, a, "m"); t += a[1] * 60 + a[2] } } END { printf "%.3f", t }' "$WORK/times")
}
cpu_begin() {
    CPU_T0=$(now_s); CPU_B0=$(machine_busy); CPU_I0=$(machine_irq); CPU_S0=$(proc_cpu "${SERVER_PID:-0}")
    CPU_D0=$(db_cpu); children_cpu; CPU_C0=$CHILD_CPU
}
# cpu_end LABEL: R[LABEL.server_cores|client_cores|db_cores|other_cores]
# over the span since cpu_begin; "other" is everything on the machine that
# is neither the server nor this script's children (wrk, python) nor the
# local PostgreSQL (its runs) nor interrupts: other people's work (and VM
# steal time).
cpu_end() {
    local label=$1 t1 b1 s1 c1 i1 d1
    t1=$(now_s); b1=$(machine_busy); i1=$(machine_irq); s1=$(proc_cpu "${SERVER_PID:-0}"); d1=$(db_cpu)
    children_cpu; c1=$CHILD_CPU
    local wall; wall=$(calc "$t1 - $CPU_T0" 3)
    R[$BK:$label.server_cores]=$(calc "($s1 - $CPU_S0) / $HZ / $wall" 2)
    R[$BK:$label.server_cpu_s]=$(calc "($s1 - $CPU_S0) / $HZ" 2)
    R[$BK:$label.client_cores]=$(calc "($c1 - $CPU_C0) / $wall" 2)
    R[$BK:$label.db_cores]=$(calc "($d1 - $CPU_D0) / $HZ / $wall" 2)
    R[$BK:$label.other_cores]=$(calc "(($b1 - $CPU_B0) - ($s1 - $CPU_S0) - ($d1 - $CPU_D0)) / $HZ / $wall - ($c1 - $CPU_C0) / $wall" 2)
    R[$BK:$label.irq_cores]=$(calc "($i1 - $CPU_I0) / $HZ / $wall" 2)
    local db=""
    [[ "$BK" == postgres && "$PG_LOCAL" == 1 ]] && db=", postgres $(g "$label.db_cores")"
    say "   [$label] cpu (cores): server $(g "$label.server_cores"), wrk/python $(g "$label.client_cores")$db," \
        "kernel irq/softirq $(g "$label.irq_cores"), other $(g "$label.other_cores")"
    if awk -v o="$(g "$label.other_cores")" 'BEGIN { exit !(o > 0.15) }'; then
        DISTURBED+=("$BK/$label ($(g "$label.other_cores") cores)")
    fi
}

# wait_server_idle LABEL: until the server uses < 5 % of a core for 1 s
# (at most 60 s). After a login run the server goes on hashing for requests
# whose clients have left; the time it takes is kept as R[LABEL.drain_s].
wait_server_idle() {
    local label=$1 start a b
    start=$(now_s)
    while :; do
        a=$(proc_cpu "$SERVER_PID"); sleep 1; b=$(proc_cpu "$SERVER_PID")
        if (((b - a) * 100 < 5 * HZ)); then break; fi
        if awk -v s="$start" -v n="$(now_s)" 'BEGIN { exit !(n - s > 60) }'; then break; fi
    done
    R[$BK:$label.drain_s]=$(calc "$(now_s) - $start - 1" 1)
    say "   [$label] the server stayed busy for $(g "$label.drain_s") s after wrk stopped"
}

# ------------------------------------------------------------------- wrk
# run_wrk LABEL SCRIPT CONNS SECONDS [wrk options...] : runs against $BASE
# and keeps the BENCH line's fields as R[backend:LABEL.field].
run_wrk() {
    local label=$1 script=$2 conns=$3 secs=$4
    shift 4
    local out=$WORK/$BK/wrk-$label.out
    cpu_begin
    wrk -t"$THREADS" -c"$conns" -d"${secs}s" -s "$BENCH_DIR/lua/$script" "$@" "$BASE" >"$out" 2>&1 || {
        say "wrk failed for $label:"; tee -a "$LOG" <"$out"; exit 1; }
    cpu_end "$label"
    grep -E '^(BENCH|COUNT|COLLECTED)' "$out" | sed "s/^/   [$label] /" | tee -a "$LOG"
    grep -E 'Socket errors' "$out" | sed "s/^/   [$label] /" | tee -a "$LOG" || true
    local field
    # shellcheck disable=SC2013 # the BENCH line's fields are words
    for field in $(grep '^BENCH' "$out" | cut -d' ' -f2-); do
        R[$BK:$label.${field%%=*}]=${field#*=}
    done
    check_alive "$label"
    # The server's peak RSS so far, to tell which run raised it.
    say "   [$label] server peak RSS so far: $(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status" 2>/dev/null) MiB"
}

# expect_only LABEL "STATUS CODE" : every counted answer was of that kind.
expect_only() {
    local label=$1 want=$2 line
    while read -r line; do
        [[ -z "$line" ]] && continue
        note_problem "$label: unexpected answers: ${line#COUNT }"
    done < <(grep '^COUNT' "$WORK/$BK/wrk-$label.out" | grep -v "^COUNT $want " || true)
    local e
    for e in err_connect err_read err_write err_timeout; do
        [[ "$(g "$label.$e")" =~ ^0?$ ]] || note_problem "$label: $e=$(g "$label.$e")"
    done
}

no_non2xx() {
    local label=$1
    [[ "$(g "$label.non2xx")" =~ ^0?$ ]] || note_problem "$label: $(g "$label.non2xx") non-2xx answers"
    local e
    for e in err_connect err_read err_write err_timeout; do
        [[ "$(g "$label.$e")" =~ ^0?$ ]] || note_problem "$label: $e=$(g "$label.$e")"
    done
}

# all_accepted LABEL FILE: every line of FILE was answered 200.
all_accepted() {
    local label=$1 sent
    sent=$(wc -l <"$2")
    [[ "$(g "$label.good")" == "$sent" ]] ||
        note_problem "$label: $(g "$label.good") of $sent right codes were accepted (every one must be)"
}

calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }

# db_size: rows in the current server's database (for the restart figure).
db_size() {
    local q="SELECT (SELECT count(*) FROM users) || ' users, ' || (SELECT count(*) FROM sessions) || ' sessions, '
        || (SELECT count(*) FROM pending_tokens) || ' pending tokens, ' || (SELECT count(*) FROM auth_events) || ' events'"
    if [[ "$BK" == postgres ]]; then
        psql "$(pg_url_of "$DB_NAME")" -qAtc "$q" 2>/dev/null || echo '?'
    else
        "$PY" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' \
            "$SERVER_DIR/otpgate.db" "$q" 2>/dev/null || echo '?'
    fi
}

# ====================================================== one backend's run
run_backend() {
    BK=$1
    mkdir -p "$WORK/$BK"
    local t0 n
    t0=$(date +%s)
    say ""
    say "################ $BK ################"

    # ---- server 'fast': bcrypt cost 4 for everything that is not about logins
    start_server fast 4

    say "-- 1. /healthz (wrk -t$THREADS -c$CONNS -d${DUR}s, after a 2 s warm-up)"
    run_wrk healthz_warm healthz.lua "$CONNS" 2 >/dev/null
    run_wrk healthz healthz.lua "$CONNS" "$DUR" --latency
    no_non2xx healthz

    say "-- 2. /api/v1/me with valid access tokens of 50 enrolled users"
    "$PY" "$TOOL" enroll --base "$BASE" --count 50 --prefix me --out "$WORK/$BK/access.txt" 2>&1 | tee -a "$LOG"
    BENCH_FILE=$WORK/$BK/access.txt run_wrk me_warm me.lua "$CONNS" 2 >/dev/null
    BENCH_FILE=$WORK/$BK/access.txt run_wrk me me.lua "$CONNS" "$DUR" --latency
    no_non2xx me
    if [[ ! "$(g me.non2xx)" =~ ^0?$ ]]; then
        say "   a sample /me answer:"
        curl -sS -i -H "Authorization: Bearer $(head -1 "$WORK/$BK/access.txt" | cut -f1)" "$BASE/api/v1/me" | head -20 | tee -a "$LOG"
    fi

    say "-- 5a. /api/v1/2fa/setup over 200 pending tokens of fresh registrations"
    "$PY" "$TOOL" pending --base "$BASE" --count 200 --prefix setup --out "$WORK/$BK/setup.txt" 2>&1 | tee -a "$LOG"
    BENCH_FILE=$WORK/$BK/setup.txt run_wrk setup setup.lua "$CONNS" "$DUR" --latency
    expect_only setup "200 -"

    say "-- 5b. /api/v1/2fa/verify, WRONG-code path (401 invalid_otp), <=5 tries per pending token"
    cut -f2 "$WORK/$BK/setup.txt" >"$WORK/$BK/setup-users.txt"
    local mint=$((DUR < 10 ? DUR : 10))
    say "   minting pending tokens: logins (cost 4) of the 200 set-up users for $mint s"
    BENCH_FILE=$WORK/$BK/setup-users.txt BENCH_OUT=$WORK/$BK/wrong-tokens.txt \
        run_wrk mint login.lua "$CONNS" "$mint" --timeout 30s
    expect_only mint "200 -"
    BENCH_FILE=$WORK/$BK/wrong-tokens.txt run_wrk verify_wrong verify_wrong.lua "$CONNS" "$DUR" --latency
    expect_only verify_wrong "401 invalid_otp"
    [[ "$(g verify_wrong.threads_out_of_tokens)" =~ ^0?$ ]] ||
        say "   note: $(g verify_wrong.threads_out_of_tokens) wrk thread(s) ran out of tokens; the rate is over the window of answers"

    # -d is only an upper bound for the bursts: wrk stops once every
    # request has its answer.
    local burst_s=$((VERIFY_USERS / 300 + 10))
    say "-- 5c. /api/v1/2fa/verify, first enable: $VERIFY_USERS users, one pending token each, fired once"
    "$PY" "$TOOL" pending --setup --base "$BASE" --count "$VERIFY_USERS" --prefix ok --out "$WORK/$BK/ok-secrets.txt" 2>&1 | tee -a "$LOG"
    "$PY" "$TOOL" codes --in "$WORK/$BK/ok-secrets.txt" --out "$WORK/$BK/ok-codes.txt" 2>&1 | tee -a "$LOG"
    BENCH_FILE=$WORK/$BK/ok-codes.txt BENCH_OUT=$WORK/$BK/ok-grants.txt run_wrk verify_ok verify_once.lua "$CONNS" "$burst_s" --latency --timeout 30s
    expect_only verify_ok "200 -"
    all_accepted verify_ok "$WORK/$BK/ok-codes.txt"

    say "-- 5d. /api/v1/2fa/verify, ENROLLED users signing in: the same $VERIFY_USERS users log in again" \
        "(password + device token -> pending token), then each sends a fresh code once"
    "$PY" "$TOOL" relogin --base "$BASE" --in "$WORK/$BK/ok-codes.txt" --devices "$WORK/$BK/ok-grants.txt" --out "$WORK/$BK/enrolled-codes.txt" 2>&1 | tee -a "$LOG"
    BENCH_FILE=$WORK/$BK/enrolled-codes.txt run_wrk verify_enrolled verify_once.lua "$CONNS" "$burst_s" --latency --timeout 30s
    expect_only verify_enrolled "200 -"
    all_accepted verify_enrolled "$WORK/$BK/enrolled-codes.txt"
    R[$BK:fast_db]=$(db_size)
    stop_server keep

    say "-- 7. start-up to the first 200 of /readyz on the existing database (${R[$BK:fast_db]}), $RESTARTS starts"
    server_env fast 4
    local envargs=() e out
    for e in "${SENV[@]}"; do envargs+=(--env "$e"); done
    out=$("$PY" "$TOOL" startup --bin "$BIN" --cwd "$SERVER_DIR" --runs "$RESTARTS" --log "$SERVER_DIR/restarts.log" \
        "${envargs[@]}" 2> >(tee -a "$LOG" >&2)) || true
    local best median worst rss fails
    read -r best median worst rss fails <<<"${out:-nan nan nan 0 1}"
    [[ "$best" == nan ]] || { R[$BK:startup.best_ms]=$best; R[$BK:startup.median_ms]=$median; R[$BK:startup.worst_ms]=$worst; }
    R[$BK:rss_restart]=$rss
    say "   best $best ms, median $median ms, worst $worst ms; peak RSS of a fresh start $rss MiB"
    [[ "$fails" == 0 ]] || note_problem "start-up: $fails of $RESTARTS starts failed (log: $RESULTS/server-$BK-restarts.log)"
    cp "$SERVER_DIR/restarts.log" "$RESULTS/server-$BK-restarts.log" 2>/dev/null || true
    [[ -f "$SERVER_DIR/restarts.log" ]] && check_log "$SERVER_DIR/restarts.log" "the restarted servers"
    [[ -n "$DB_NAME" ]] && drop_db "$DB_NAME"

    # ---- servers 'cost10' and 'cost12': logins
    login_round 10 "$DUR"
    stop_server
    login_round 12 $((DUR + 5))

    say "-- 4. /healthz latency (wrk -c8 --latency, ${DUR}s) while $CONNS connections hammer login at cost 12"
    BENCH_FILE=$WORK/$BK/login-users-12.txt run_wrk login12_bg login.lua "$CONNS" $((DUR + 4)) --timeout 60s \
        >"$WORK/$BK/bg.out" 2>&1 &
    local bg=$!
    sleep 2
    run_wrk healthz_loaded healthz.lua 8 "$DUR" --latency
    wait "$bg" || true
    cat "$WORK/$BK/bg.out" >>"$LOG"
    no_non2xx healthz_loaded
    expect_only login12_bg "200 -"
    # Let it finish the logins still queued (their clients have gone):
    # SIGTERM now would leave them to the 30 s shutdown timeout.
    wait_server_idle login12_bg
    stop_server

    n=$(printf '%s\n' "$(g rss_fast)" "$(g rss_cost10)" "$(g rss_cost12)" "$(g rss_restart)" | sort -g | tail -1)
    R[$BK:rss_peak]=$n
    R[$BK:took_s]=$(($(date +%s) - t0))
    say "   $BK took $(g took_s) s"
}

# login_round COST SECONDS: a fresh server at that cost; logins, then raw
# bcrypt on the same cores (measured once per run and cost, in the first
# backend's round: it does not depend on the database).
login_round() {
    local cost=$1 secs=$2
    start_server "cost$cost" "$cost"
    say "-- 3. logins at bcrypt cost $cost: $CONNS connections, right password, 8 users, ${secs}s"
    "$PY" "$TOOL" users --base "$BASE" --count 8 --prefix login --out "$WORK/$BK/login-users-$cost.txt" 2>&1 | tee -a "$LOG"
    BENCH_FILE=$WORK/$BK/login-users-$cost.txt run_wrk "login$cost" login.lua "$CONNS" "$secs" --latency --timeout 60s
    expect_only "login$cost" "200 -"
    wait_server_idle "login$cost"
    if [[ -z "${R[raw$cost]:-}" ]] && [[ -x "$VENV_PY" ]] && "$VENV_PY" -c 'import bcrypt' 2>/dev/null; then
        say "   raw bcrypt verifications of a 44-byte input, cost $cost, $THREADS processes x ${DUR}s (server idle)"
        local raw
        cpu_begin
        raw=$("$VENV_PY" "$TOOL" bcrypt-raw --cost "$cost" --seconds "$DUR" --procs "$THREADS" 2> >(tee -a "$LOG" >&2))
        cpu_end "raw$cost"
        R[raw$cost]=${raw% *}
        R[raw$cost.per_cpu_s]=${raw#* }
    fi
    if [[ -n "${R[raw$cost]:-}" ]]; then
        # The same comparison per CPU-second: the server's overhead per
        # login, whatever else ran on the machine meanwhile. (+1: when wrk
        # stops, each of the 2 bcrypt threads is on average half-way
        # through one more login, whose CPU is already counted.)
        R[$BK:login$cost.per_cpu_s]=$(calc "($(g "login$cost.good") + 1) / $(g "login$cost.server_cpu_s")" 4)
        say "   raw: ${R[raw$cost]}/s; server (steady): $(g "login$cost.steady_rate")/s;" \
            "per CPU-second: raw ${R[raw$cost.per_cpu_s]}, server $(g "login$cost.per_cpu_s")"
    fi
}

# =================================================================== run
ensure_tools
# Run a private copy: a rebuild during the run must not swap the binary.
cp "$BIN" "$WORK/otpgate"
SRC_BIN=$BIN
# The checkout's HEAD need not be what the binary was built from.
BIN_BUILT=$(date -u -r "$BIN" +%FT%TZ)
BIN=$WORK/otpgate
started=$(date +%s)
STARTED_AT=$(date -u +%FT%TZ)
if [[ -n "$PG_URL" ]] && pgrep -x postgres >/dev/null 2>&1; then PG_LOCAL=1; fi
say "otpgate bench $STARTED_AT on $(nproc) cores, $(uname -r); binary $SRC_BIN (built $BIN_BUILT); backends: ${BACKENDS[*]}"
cpu_busy() { # % of all cores busy over one second, from /proc/stat
    local a b
    a=$(awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $5+$6 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $5+$6 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); busy = y[1] - x[1]; idle = y[2] - x[2];
        printf "%.0f", ((busy + idle) > 0 ? 100 * busy / (busy + idle) : 0) }'
}
busy=$(cpu_busy)
if ((busy > 10)) && [[ "${BENCH_WAIT_IDLE:-0}" != 0 ]]; then
    say "   CPU ${busy}% busy: waiting up to ${BENCH_WAIT_IDLE}s for it to go quiet"
    waited=0
    while ((busy > 10 && waited < BENCH_WAIT_IDLE)); do
        sleep 4
        busy=$(cpu_busy)
        waited=$((waited + 5))
    done
fi
BUSY_BEFORE="${busy}% (load average $(cut -d' ' -f1-3 /proc/loadavg))"
say "   CPU busy before the run: $BUSY_BEFORE"
if ((busy > 10)); then
    say "   WARNING: something else is using the CPU; it competes with the benchmark and lowers the figures"
fi
git_desc() { # DIR: short commit, and whether the tree has changes
    git -C "$1" rev-parse --short HEAD 2>/dev/null | tr -d '\n' || printf '?'
    git -C "$1" diff --quiet HEAD 2>/dev/null || printf ' (with uncommitted changes)'
}
HARNESS_GIT=$(git_desc "$ROOT")
BIN_DIR=$(cd "$(dirname "$SRC_BIN")" && pwd)
if git -C "$BIN_DIR" rev-parse --show-toplevel >/dev/null 2>&1; then
    BIN_GIT="$(git_desc "$BIN_DIR") of $(git -C "$BIN_DIR" rev-parse --show-toplevel), $(git -C "$BIN_DIR" rev-parse --abbrev-ref HEAD 2>/dev/null)"
else
    BIN_GIT="? (not in a git checkout)"
fi
VERSION=$("$BIN" --version 2>/dev/null || echo '?')
say "   $VERSION; its checkout: git $BIN_GIT; harness: git $HARNESS_GIT"

for backend in "${BACKENDS[@]}"; do
    run_backend "$backend"
done

# ------------------------------------------------------------ summary
# One row per figure: key, label, unit, then value and target for SQLite
# and for PostgreSQL (a target is ">= N" or "<= N"; empty: informational),
# then the chart label (requests/s figures only; "\n" breaks the line).
ROWS=$WORK/rows.tsv
: >"$ROWS"
v() { printf '%s' "${R[$1:$2]:-}"; }
ratio() { if [[ -n "${1:-}" && -n "${2:-}" ]]; then calc "100 * $1 / $2" 1; fi; }
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$ROWS"; }
# fig KEY LABEL UNIT NAME SQLITE_TARGET POSTGRES_TARGET [CHART]: figure NAME of both backends.
fig() { row "$1" "$2" "$3" "$(v sqlite "$4")" "$5" "$(v postgres "$4")" "$6" "${7:-}"; }
for b in "${BACKENDS[@]}"; do
    R[$b:me_pct]=$(ratio "$(v "$b" me.rps)" "$(v "$b" healthz.rps)")
    for c in 10 12; do
        R[$b:l${c}_pct]=$(ratio "$(v "$b" "login$c.steady_rate")" "${R[raw$c]:-}")
        R[$b:l${c}_cpu_pct]=$(ratio "$(v "$b" "login$c.per_cpu_s")" "${R[raw$c.per_cpu_s]:-}")
        R[$b:raw$c]=${R[raw$c]:-}
    done
done
vu=$VERIFY_USERS
fig healthz "/healthz requests/s (c$CONNS)" /s healthz.rps "" "" '/healthz'
fig me "/api/v1/me requests/s (c$CONNS, 50 users)" /s me.rps "" ">= 10000" '/api/v1/me'
fig me_pct "  /me as % of /healthz (same run)" % me_pct ">= 60" ""
fig me_p99 "  /me p99 latency (c$CONNS)" ms me.p99_ms "<= 5" ""
fig setup "setup/s (200 pending tokens, QR each call)" /s setup.good_rate ">= 2000" "" 'setup'
fig verify_wrong "verify/s, WRONG code (401 invalid_otp)" /s verify_wrong.good_rate "" "" 'verify\nwrong code'
fig verify_ok "verify/s, first enable ($vu users turning 2FA on)" /s verify_ok.good_rate ">= 3000" "" 'verify\nfirst enable'
fig verify_enrolled "verify/s, ENROLLED sign-in ($vu users, fresh code)" /s verify_enrolled.good_rate ">= 3500" ">= 2000" 'verify\nenrolled'
for c in 10 12; do
    fig "login$c" "logins/s at bcrypt cost $c (steady, c$CONNS)" /s "login$c.steady_rate" "" "" "login\ncost $c"
    fig "raw$c" "  raw bcrypt verifies/s, cost $c, $THREADS procs (once a run)" /s "raw$c" "" ""
    fig "l${c}_pct" "  logins as % of raw bcrypt, cost $c" % "l${c}_pct" ">= 98" ">= 98"
    fig "l${c}_cpu_pct" "  the same per CPU-second (server overhead only)" % "l${c}_cpu_pct" "" ""
done
fig healthz_loaded "/healthz p99 (c8) during c$CONNS logins at cost 12" ms healthz_loaded.p99_ms "<= 20" "<= 20"
fig healthz_loaded_rps "  /healthz requests/s meanwhile" /s healthz_loaded.rps "" "" '/healthz under\nlogin load'
fig startup_median "start-up to /readyz 200, existing DB: median of $RESTARTS" ms startup.median_ms "<= 200" "<= 200"
fig startup_best "  best of $RESTARTS" ms startup.best_ms "" ""
fig rss "peak RSS (VmHWM), worst server of the backend" MiB rss_peak "<= 32" "<= 32"

META=$WORK/meta.tsv
{
    for b in "${BACKENDS[@]}"; do
        name=$([[ $b == sqlite ]] && echo SQLite || echo PostgreSQL)
        printf 'note\t%s latency p50/p99 ms: /healthz %s/%s, /me %s/%s, setup %s/%s, verify wrong %s/%s, first enable %s/%s, enrolled %s/%s\n' "$name" \
            "$(v "$b" healthz.p50_ms)" "$(v "$b" healthz.p99_ms)" "$(v "$b" me.p50_ms)" "$(v "$b" me.p99_ms)" \
            "$(v "$b" setup.p50_ms)" "$(v "$b" setup.p99_ms)" "$(v "$b" verify_wrong.p50_ms)" "$(v "$b" verify_wrong.p99_ms)" \
            "$(v "$b" verify_ok.p50_ms)" "$(v "$b" verify_ok.p99_ms)" "$(v "$b" verify_enrolled.p50_ms)" "$(v "$b" verify_enrolled.p99_ms)"
        printf 'note\t%s server CPU (cores): /healthz %s, /me %s, setup %s, verify wrong %s, first enable %s, enrolled %s, login10 %s, login12 %s%s\n' "$name" \
            "$(v "$b" healthz.server_cores)" "$(v "$b" me.server_cores)" "$(v "$b" setup.server_cores)" \
            "$(v "$b" verify_wrong.server_cores)" "$(v "$b" verify_ok.server_cores)" "$(v "$b" verify_enrolled.server_cores)" \
            "$(v "$b" login10.server_cores)" "$(v "$b" login12.server_cores)" \
            "$([[ $b == postgres && $PG_LOCAL == 1 ]] && printf '; postgres processes: /me %s, verify wrong %s, enrolled %s' \
                "$(v "$b" me.db_cores)" "$(v "$b" verify_wrong.db_cores)" "$(v "$b" verify_enrolled.db_cores)")"
        printf 'note\t%s peak RSS (MiB): cost-4 server %s, cost-10 %s, cost-12 %s, restarted servers %s\n' "$name" \
            "$(v "$b" rss_fast)" "$(v "$b" rss_cost10)" "$(v "$b" rss_cost12)" "$(v "$b" rss_restart)"
        printf 'note\t%s start-up: best/median/worst %s/%s/%s ms over %s starts on the database of the cost-4 server (%s)\n' "$name" \
            "$(v "$b" startup.best_ms)" "$(v "$b" startup.median_ms)" "$(v "$b" startup.worst_ms)" "$RESTARTS" "$(v "$b" fast_db)"
        printf 'note\t%s logins as wrk counts them (completed / run time): cost 10 %s/s, cost 12 %s/s; the server kept hashing for %s s / %s s after wrk stopped\n' "$name" \
            "$(v "$b" login10.rps)" "$(v "$b" login12.rps)" "$(v "$b" login10.drain_s)" "$(v "$b" login12.drain_s)"
        printf 'note\t%s took %s s\n' "$name" "$(v "$b" took_s)"
    done
    printf 'note\tRaw bcrypt is measured once per cost, during the first backend'"'"'s login round; both columns compare with it.\n'
    printf 'note\tPostgreSQL targets: /me >= 10,000/s and enrolled verify >= 2,000/s; logins vs raw bcrypt, /healthz p99 under login load, start-up and peak RSS have the SQLite targets (none of them is about the database); the other PostgreSQL figures are informational.\n'
    printf 'note\tLimits lifted for the benchmark: %s\n' "${SERVER_LIMITS[*]}"
    printf 'note\tClient (wrk, python) and server%s share the same %s cores; see bench/README.md for caveats.\n' \
        "$([[ $PG_LOCAL == 1 ]] && echo ' (and PostgreSQL)')" "$(nproc)"
    if ((${#DISTURBED[@]})); then
        printf 'warning\tWARNING: other work used the CPU during: %s; those figures are low and the wall-clock bcrypt ratios unreliable (the per-CPU-second ones still hold).\n' "${DISTURBED[*]}"
    fi
    ((busy > 10)) && printf 'warning\tWARNING: the CPU was %s busy before the run started.\n' "$BUSY_BEFORE"
    for p in "${PROBLEMS[@]}"; do printf 'problem\t%s\n' "$p"; done
    printf 'date\t%s\n' "$STARTED_AT"
    printf 'chart\tlatest.svg\n'
    printf 'chart_title\totpgate requests/s per scenario (%s, %s cores)\n' "${STARTED_AT%%T*}" "$(nproc)"
    cmd=""
    for kv in OTPGATE_BIN BENCH_DURATION BENCH_VERIFY_USERS BENCH_RESTARTS BENCH_WAIT_IDLE; do
        [[ -n "${!kv:-}" ]] && cmd+="$kv=$(printf '%q' "${!kv}") "
    done
    cmd+=$(printf '%q ' "${INVOCATION[@]}")
    printf 'command\t%s\n' "$(redact "${cmd% }")"
    printf 'run\tdate\t%s (took %s s)\n' "$STARTED_AT" "$(($(date +%s) - started))"
    printf 'run\tmachine\t%s cores (nproc), %s, %s GiB RAM, Linux %s\n' "$(nproc)" \
        "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo 'CPU ?')" \
        "$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)"
    printf 'run\tbinary\t%s, %s, built %s\n' "$VERSION" "$SRC_BIN" "$BIN_BUILT"
    printf 'run\tbinary'"'"'s checkout\tgit %s\n' "$BIN_GIT"
    printf 'run\tharness\tgit %s\n' "$HARNESS_GIT"
    printf 'run\tbackends\t%s\n' "$(for b in "${BACKENDS[@]}"; do
        if [[ $b == postgres ]]; then printf 'PostgreSQL %s at %s; ' "$(pg_admin 'SHOW server_version' 2>/dev/null || echo '?')" "$(redact "$PG_URL")"
        else printf 'SQLite (bundled, WAL) on %s; ' "$(df -PT "$WORK" | awk 'NR == 2 { print $2 }')"; fi
    done | sed 's/; $//')"
    printf 'run\tsettings\twrk -t%s -c%s, %s s a run, %s users per verify burst; CPU busy before the run: %s\n' \
        "$THREADS" "$CONNS" "$DUR" "$VERIFY_USERS" "$BUSY_BEFORE"
} >"$META"

"$PY" "$TOOL" report --rows "$ROWS" --meta "$META" --text "$WORK/table.txt" \
    --markdown "$RESULTS/latest.md" --svg "$RESULTS/latest.svg"
sed -i 's#(README.md)#(../README.md)#' "$RESULTS/latest.md"
SUMMARY=$WORK/summary.txt
{
    echo "otpgate bench summary — $STARTED_AT, $(nproc) cores, loopback, wrk -t$THREADS; backends: ${BACKENDS[*]}"
    echo "binary built $BIN_BUILT from git $BIN_GIT; harness git $HARNESS_GIT; run took $(($(date +%s) - started)) s"
    echo
    cat "$WORK/table.txt"
    echo
    awk -F'\t' '$1 == "note" || $1 == "warning" { print $2 }' "$META"
    if ((${#PROBLEMS[@]})); then
        echo
        echo "PROBLEMS seen (details in bench/results/latest.log):"
        printf '  - %s\n' "${PROBLEMS[@]}"
    else
        echo "No server problems seen (every answer was the expected one; no crash; no warnings logged)."
    fi
} >"$SUMMARY"
echo | tee -a "$LOG"
tee -a "$LOG" <"$SUMMARY"
cp "$SUMMARY" "$RESULTS/latest.txt"
echo "(saved to bench/results/latest.txt, latest.md and latest.svg; full log bench/results/latest.log)"
if ((WRITE_RESULTS)); then
    printf 'chart\tresults.svg\n' >>"$META"
    "$PY" "$TOOL" report --rows "$ROWS" --meta "$META" --markdown "$BENCH_DIR/RESULTS.md" --svg "$BENCH_DIR/results.svg"
    echo "(wrote bench/RESULTS.md and bench/results.svg)"
fi
