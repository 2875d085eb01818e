#!/usr/bin/env python3
"""otpgate at scale: latency of login, verify and /me as the database grows.

Run through bench/scale.sh (see bench/README.md, "Scale"). Standard library
only; PostgreSQL is driven through the psql command-line client.

For each backend (a fresh SQLite file; a fresh PostgreSQL database created
here and dropped at the end):

  1. `otpgate migrate`, start the server, enrol the MEASURED users through
     the real API (register, setup, verify with a TOTP code computed here),
     so their secrets are sealed under the server's own key;
  2. for each size (default 1k, 100k, 1M users): stop the server, load
     FILLER users with SQL up to that many users in all (with sessions,
     refresh tokens, events, device tokens, recovery codes, throttle rows in
     fixed proportions, see FILLER below), ANALYZE on PostgreSQL, start the
     server again, and measure login, verify and /me latency (p50/p99) with
     N keep-alive client threads; EXPLAIN the hot queries with the literal
     values of real rows; the database size per user;
  3. at the largest size: SQLite only, ANALYZE and compare the plans (and
     measure once more); then `otpgate admin prune` with the default 90-day
     retention, a quarter of the events being older than that.

Figures are printed, never judged by timing: the only verdict is the p50
ratio largest/smallest size per backend ("flat" when it stays under 1.5).
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

PASSWORD = "scale-Pa55word-7q!"
API = "/api/v1"
DAY = 86_400
SERVER_RETENTION_DAYS = 3650  # the serving server prunes nothing we load
PRUNE_RETENTION_DAYS = 90  # the default, for `otpgate admin prune`
EVENT_SPAN_DAYS = 120  # filler events are spread evenly over this span
# The server's abuse limits would turn the run into one of 429 answers from
# one loopback address; the throttle bookkeeping still runs on every request.
SERVER_LIMITS = {
    "OTPGATE_IP_RATE_PER_MIN": "0",
    "OTPGATE_OTP_FAILURES_BEFORE_LOCK": "1000",
    "OTPGATE_OTP_FAILURES_PER_HOUR": "100000",
    "OTPGATE_LOGIN_FAILURES_PER_HOUR": "100000",
}

LOG = None  # file object: everything printed also goes there


def say(*parts):
    line = " ".join(str(p) for p in parts)
    print(line, flush=True)
    if LOG:
        LOG.write(line + "\n")
        LOG.flush()


def human_size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def human_count(n):
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


# ===================================================================== TOTP
def totp_at_step(secret_b32, step, digits=6):
    """RFC 6238 / 4226, SHA1: the code of time step `step` (30 s)."""
    secret = secret_b32.strip().upper()
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


def current_step(lead=0.0):
    return int((time.time() + lead) // 30)


# ===================================================================== HTTP
class Client:
    """One keep-alive connection per thread; latency of each call in ms."""

    def __init__(self, port):
        self.port = port
        self.local = threading.local()

    def _conn(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.local.conn = conn
        return conn

    def call(self, method, path, body=None, token=None):
        headers = {"Accept": "application/json", "User-Agent": "otpgate-scale/1"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = "Bearer " + token
        for attempt in range(2):
            conn = self._conn()
            try:
                t0 = time.perf_counter()
                conn.request(method, API + path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                ms = (time.perf_counter() - t0) * 1000
                break
            except (ConnectionError, http.client.HTTPException, socket.timeout):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = {"_raw": raw[:200].decode("utf-8", "replace")}
        return resp.status, payload, ms


def run_threads(n, target):
    errors = []

    def wrap(i):
        try:
            target(i)
        except Exception as e:  # reported, not swallowed
            errors.append(repr(e))

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("client thread failed: " + errors[0])


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


class Phase:
    """Latencies and unexpected answers of one measured phase."""

    def __init__(self, name):
        self.name = name
        self.ms = []
        self.bad = {}
        self.skipped = 0
        self.lock = threading.Lock()
        self.wall = 0.0

    def ok(self, ms):
        with self.lock:
            self.ms.append(ms)

    def problem(self, status, payload):
        code = payload.get("code") if isinstance(payload, dict) else None
        key = f"HTTP {status} {code}"
        with self.lock:
            first = key not in self.bad
            self.bad[key] = self.bad.get(key, 0) + 1
        if first:
            say(f"     {self.name}: unexpected answer {key}: {json.dumps(payload)[:200]}")

    def p(self, q):
        return percentile(self.ms, q)

    def summary(self):
        rate = len(self.ms) / self.wall if self.wall else 0
        extra = ""
        if self.bad:
            extra += "; unexpected: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.bad.items()))
        if self.skipped:
            extra += f"; {self.skipped} skipped (no fresh TOTP step)"
        return (f"{self.name:<7} n={len(self.ms):<5} p50 {self.p(0.5):7.2f} ms  p99 {self.p(0.99):7.2f} ms"
                f"  max {max(self.ms) if self.ms else float('nan'):7.2f} ms  ({rate:.0f}/s){extra}")


class MeasuredUser:
    def __init__(self, name):
        self.name = name
        self.id = None
        self.secret = None
        self.last_step = -1
        self.pending = []  # pending tokens from logins, oldest first
        self.access = []


# ================================================================ dialects
class SqliteDialect:
    name = "sqlite"
    for_update = ""

    @staticmethod
    def ts(secs_ago, now):
        """The time `secs_ago` seconds before `now` (Unix), as diesel stores it."""
        return f"strftime('%Y-%m-%d %H:%M:%f', {now} - ({secs_ago}), 'unixepoch')"

    # Random values, each expression used once per row.
    ruuid = ("(lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
             "substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + abs(random() % 4), 1) || "
             "substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))))")
    rhex64 = "lower(hex(randomblob(32)))"
    blob48 = "randomblob(48)"

    @staticmethod
    def series_fill(a, b):
        return ("WITH RECURSIVE s(n) AS (SELECT {a} UNION ALL SELECT n + 1 FROM s WHERE n < {b}) "
                "SELECT n, {u}, {u}, {u} FROM s").format(a=a, b=b - 1, u=SqliteDialect.ruuid)


class PostgresDialect:
    name = "postgres"
    for_update = " FOR UPDATE"

    @staticmethod
    def ts(secs_ago, now):
        return f"(TIMESTAMP 'epoch' + ({now} - ({secs_ago})) * INTERVAL '1 second')"

    ruuid = "gen_random_uuid()::text"
    rhex64 = ("(replace(gen_random_uuid()::text, '-', '') || "
              "replace(gen_random_uuid()::text, '-', ''))")
    blob48 = ("decode(replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '') "
              "|| replace(gen_random_uuid()::text, '-', ''), 'hex')")

    @staticmethod
    def series_fill(a, b):
        return (f"SELECT n, {PostgresDialect.ruuid}, {PostgresDialect.ruuid}, {PostgresDialect.ruuid} "
                f"FROM generate_series({a}::bigint, {b - 1}::bigint) AS n")


# ================================================================== filler
# Per filler user (state it in the report; change it here, one place per
# table). `n` is the filler's number; `h(m)` a deterministic spread of n
# over 0..m-1, the same on both backends.
FILLER = [
    ("users", "1 (every 20th without 2FA: enrolment not finished)"),
    ("authenticators", "1 \"default\" (confirmed but for every 20th user), random 48-byte sealed secret"),
    ("recovery_codes", "10 per 2FA user (the codes of the first verification), a third with one used"),
    ("sessions", "2: one live (opened in the last 30 days), one ended (opened 31-120 days ago, "
                 "expired after 30 days; half of those revoked after an hour)"),
    ("refresh_tokens", "2: one per session"),
    ("auth_events", f"10, spread evenly over the last {EVENT_SPAN_DAYS} days in id order "
                    f"(so {100 * (EVENT_SPAN_DAYS - PRUNE_RETENTION_DAYS) // EVENT_SPAN_DAYS}% "
                    f"are older than the {PRUNE_RETENTION_DAYS}-day retention)"),
    ("device_tokens", "1, live (a year)"),
    ("pending_tokens", "1 per 50 users (expired within the last hour, as between two hourly prunes)"),
    ("failure_counters", "3 per 10 users (login-client, login-username, second-factor of the day's "
                         "active tenth)"),
    ("rate_buckets", "1 per 20 users (client addresses of the last day)"),
    ("check_claims", "1 per 1000 users"),
]


def h(m):
    return f"((n * 2654435761) % {m})"


def filler_statements(d, a, cnt, now, password_hash, key_id, recovery_codes=True):
    """[(table, sql)] that load filler users n = a .. a+cnt-1 from the
    `scale_fill` table (n, uid, s1, s2) holding those numbers."""
    ts = lambda secs_ago: d.ts(secs_ago, now)  # noqa: E731
    ua = "'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36'"
    ip = "('10.' || (n % 251) || '.' || ((n / 251) % 251) || '.' || ((n / 63001) % 251))"
    user_age = f"({EVENT_SPAN_DAYS * DAY} + {h(365 * DAY)})"
    live_age = h(30 * DAY)  # the live session's age
    ended_age = f"({31 * DAY} + {h(89 * DAY)})"
    out = []
    out.append(("users", f"""
        INSERT INTO users (id, username, username_key, password_hash, two_factor_enabled, created_at)
        SELECT uid, 'user' || n, 'user' || n, '{password_hash}', (n % 20 <> 0), {ts(user_age)}
        FROM scale_fill"""))
    out.append(("authenticators", f"""
        INSERT INTO authenticators (id, user_id, name, totp_secret, totp_key_id, last_step,
                                    confirmed_at, created_at, last_used_at)
        SELECT {d.ruuid}, uid, 'default', {d.blob48}, '{key_id}',
               CASE WHEN n % 20 <> 0 THEN ({now} - {live_age}) / 30 END,
               CASE WHEN n % 20 <> 0 THEN {ts(user_age)} END,
               {ts(user_age)},
               CASE WHEN n % 20 <> 0 THEN {ts(live_age)} END
        FROM scale_fill"""))
    if recovery_codes:
        for k in range(10):
            used = f"CASE WHEN n % 3 = 0 THEN {ts(live_age)} END" if k == 0 else "NULL"
            out.append(("recovery_codes", f"""
                INSERT INTO recovery_codes (user_id, code_hash, used_at, created_at)
                SELECT uid, {d.rhex64}, {used}, {ts(user_age)}
                FROM scale_fill WHERE n % 20 <> 0"""))
    out.append(("sessions", f"""
        INSERT INTO sessions (id, user_id, amr, created_at, expires_at, revoked_at, last_used_at, ip, user_agent)
        SELECT s1, uid, 'pwd otp', {ts(live_age)}, {ts(f"{live_age} - {30 * DAY}")}, NULL,
               {ts(f"{live_age} / 2")}, {ip}, {ua}
        FROM scale_fill"""))
    out.append(("sessions", f"""
        INSERT INTO sessions (id, user_id, amr, created_at, expires_at, revoked_at, last_used_at, ip, user_agent)
        SELECT s2, uid, 'pwd otp', {ts(ended_age)}, {ts(f"{ended_age} - {30 * DAY}")},
               CASE WHEN n % 2 = 0 THEN {ts(f"{ended_age} - 3600")} END, NULL, {ip}, {ua}
        FROM scale_fill"""))
    out.append(("refresh_tokens", f"""
        INSERT INTO refresh_tokens (token_hash, session_id, expires_at, rotated_at, created_at)
        SELECT {d.rhex64}, s1, {ts(f"{live_age} - {30 * DAY}")}, NULL, {ts(live_age)} FROM scale_fill"""))
    out.append(("refresh_tokens", f"""
        INSERT INTO refresh_tokens (token_hash, session_id, expires_at, rotated_at, created_at)
        SELECT {d.rhex64}, s2, {ts(f"{ended_age} - {30 * DAY}")}, NULL, {ts(ended_age)} FROM scale_fill"""))
    # Events in id order = time order: event i (0 .. 10*cnt-1) is of filler
    # a + i % cnt; one statement per round k keeps the ids in that order.
    total = 10 * cnt
    span = EVENT_SPAN_DAYS * DAY
    for k in range(10):
        i = f"({k} * {cnt} + n - {a})"
        event = (f"CASE {i} % 10 WHEN 0 THEN 'login_failed' WHEN 1 THEN 'otp_failed' "
                 f"WHEN 2 THEN 'logout' ELSE 'login_succeeded' END")
        out.append(("auth_events", f"""
            INSERT INTO auth_events (user_id, event_type, ip, user_agent, created_at)
            SELECT uid, {event}, {ip}, {ua}, {ts(f"({total} - {i}) * {span} / {total}")}
            FROM scale_fill ORDER BY n"""))
    out.append(("device_tokens", f"""
        INSERT INTO device_tokens (token_hash, user_id, created_at, expires_at)
        SELECT {d.rhex64}, uid, {ts(h(EVENT_SPAN_DAYS * DAY))}, {ts(f"{h(EVENT_SPAN_DAYS * DAY)} - {365 * DAY}")}
        FROM scale_fill"""))
    out.append(("pending_tokens", f"""
        INSERT INTO pending_tokens (jti, user_id, failed_attempts, consumed_at, expires_at, known_device)
        SELECT {d.ruuid}, uid, 0, CASE WHEN n % 100 = 0 THEN {ts(f"{h(3000)} + 300")} END,
               {ts(h(3000))}, FALSE
        FROM scale_fill WHERE n % 50 = 0"""))
    for kind in range(3):
        out.append(("failure_counters", f"""
            INSERT INTO failure_counters (key, failures, last_failure_at, locked_until, lockouts,
                                          window_start, window_failures, previous_window_failures)
            SELECT {d.rhex64}, {kind} % 2, {now} - {h(DAY)}, 0, 0, {now} - {h(DAY)} - {h(3600)}, {kind} % 2, 0
            FROM scale_fill WHERE n % 10 = 0"""))
    out.append(("rate_buckets", f"""
        INSERT INTO rate_buckets (key, tokens, refilled_at)
        SELECT {d.rhex64}, 60.0, {now} - {h(DAY)} FROM scale_fill WHERE n % 20 = 0"""))
    out.append(("check_claims", f"""
        INSERT INTO check_claims (key, held_until)
        SELECT {d.rhex64}, {now} - {h(DAY)} FROM scale_fill WHERE n % 1000 = 0"""))
    return out


LOADED_COLUMNS = {}  # table -> columns the loader sets (filled from the SQL)


def loaded_columns(stmts):
    cols = {}
    for table, sql in stmts:
        m = re.search(r"INSERT INTO \w+ \(([^)]*)\)", sql)
        cols.setdefault(table, set()).update(c.strip() for c in m.group(1).split(","))
    return cols


# ================================================================ backends
class Sqlite:
    dialect = SqliteDialect
    label = "SQLite"

    def __init__(self, work):
        self.dir = os.path.join(work, "sqlite")
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "otpgate.db")

    def url(self):
        return self.path

    def describe(self):
        return f"SQLite file {self.path} (sqlite {sqlite3.sqlite_version} here)"

    def connect(self):
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    def query(self, sql):
        conn = self.connect()
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def columns(self, table):
        return [r[1] for r in self.query(f"PRAGMA table_info({table})")]

    def load(self, a, b, now, password_hash, key_id, recovery_codes):
        """Fillers a .. b-1 in one transaction, the loader's own pragmas
        (synchronous OFF, in-memory journal: test data, rebuilt on failure)."""
        d = self.dialect
        stmts = filler_statements(d, a, b - a, now, password_hash, key_id, recovery_codes)
        conn = self.connect()
        times = {}
        try:
            conn.execute("PRAGMA journal_mode = MEMORY")
            conn.executescript("PRAGMA synchronous = OFF; PRAGMA foreign_keys = OFF; "
                               "PRAGMA cache_size = -1000000; PRAGMA temp_store = MEMORY; "
                               "PRAGMA threads = 2;")  # sorter threads for CREATE INDEX
            conn.execute("BEGIN")
            t0 = time.perf_counter()
            conn.execute("CREATE TEMP TABLE scale_fill (n INTEGER PRIMARY KEY, uid TEXT, s1 TEXT, s2 TEXT)")
            conn.execute(f"INSERT INTO scale_fill (n, uid, s1, s2) {d.series_fill(a, b)}")
            times["(ids)"] = time.perf_counter() - t0
            # The schema's own secondary indexes are dropped and rebuilt
            # from their definitions: a sorted build, not random inserts.
            indexes = conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN "
                f"({', '.join(repr(t) for t in {t for t, _ in stmts})})").fetchall()
            for name, _ in indexes:
                conn.execute(f'DROP INDEX "{name}"')
            for table, sql in stmts:
                t0 = time.perf_counter()
                conn.execute(sql)
                times[table] = times.get(table, 0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            for _, sql in indexes:
                conn.execute(sql)
            times["(indexes)"] = time.perf_counter() - t0
            conn.execute("DROP TABLE scale_fill")
            t0 = time.perf_counter()
            conn.execute("COMMIT")
            times["(commit)"] = time.perf_counter() - t0
            conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()
        return stmts, times

    def analyze(self):
        conn = self.connect()
        try:
            conn.execute("ANALYZE")
        finally:
            conn.close()

    def size(self):
        """Bytes of the file and its -wal after a checkpoint (server stopped)."""
        conn = self.connect()
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            page = conn.execute("PRAGMA page_size").fetchone()[0]
        finally:
            conn.close()
        total = sum(os.path.getsize(self.path + sfx) for sfx in ("", "-wal")
                    if os.path.exists(self.path + sfx))
        return total, f"free pages {human_size(free * page)}"

    def table_sizes(self):
        try:
            rows = self.query("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
        except sqlite3.Error:
            return None
        return rows

    def explain(self, sql, analyze=True):
        rows = self.query("EXPLAIN QUERY PLAN " + sql)
        if not rows:
            return ["(no plan: a direct insert)"]
        depth = {0: -1}
        out = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            out.append("  " * depth[node] + detail)
        return out

    @staticmethod
    def scans(plan):
        return [line.strip() for line in plan if re.match(r"\s*SCAN \w+", line)
                and not re.match(r"\s*SCAN CONSTANT ROW", line)]

    @staticmethod
    def shape(plan):
        return "\n".join(plan)

    def drop(self):
        pass


class Postgres:
    dialect = PostgresDialect
    label = "PostgreSQL"

    def __init__(self, admin_url):
        self.admin_url = admin_url
        self.db = f"otpgate_scale_{os.getpid()}"
        parts = urllib.parse.urlsplit(admin_url)
        self._url = urllib.parse.urlunsplit(parts._replace(path="/" + self.db))
        self.created = False
        psql(admin_url, f'CREATE DATABASE "{self.db}"')
        self.created = True

    def url(self):
        return self._url

    def describe(self):
        version = psql(self._url, "SHOW server_version", tuples=True).strip()
        redacted = re.sub(r"//[^@/]*@", "//…@", self._url)
        return f"PostgreSQL {version} database {redacted}"

    def query(self, sql):
        out = psql(self._url, sql, tuples=True)
        return [tuple(line.split("\x1f")) for line in out.splitlines() if line]

    def columns(self, table):
        return [r[0] for r in self.query(
            f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}' "
            "ORDER BY ordinal_position")]

    def load(self, a, b, now, password_hash, key_id, recovery_codes):
        """Fillers a .. b-1: an UNLOGGED helper table of ids, then one
        INSERT ... SELECT per table (each its own transaction)."""
        d = self.dialect
        stmts = filler_statements(d, a, b - a, now, password_hash, key_id, recovery_codes)
        times = {}
        t0 = time.perf_counter()
        psql(self._url, "DROP TABLE IF EXISTS scale_fill; "
             "CREATE UNLOGGED TABLE scale_fill (n BIGINT PRIMARY KEY, uid TEXT, s1 TEXT, s2 TEXT); "
             f"INSERT INTO scale_fill (n, uid, s1, s2) {d.series_fill(a, b)}; ANALYZE scale_fill")
        times["(ids)"] = time.perf_counter() - t0
        # The schema's own secondary indexes (not those of a constraint) are
        # dropped and rebuilt from their definitions: sorted builds.
        tables = ", ".join(f"'{t}'" for t in {t for t, _ in stmts})
        indexes = self.query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            f"AND tablename IN ({tables}) AND indexname NOT IN (SELECT conname FROM pg_constraint)")
        if indexes:
            psql(self._url, "".join(f'DROP INDEX "{name}";' for name, _ in indexes))
        lock = threading.Lock()

        def insert(work):
            for table, sql in work:
                t0 = time.perf_counter()
                # No foreign-key triggers for the loader (test data,
                # consistent by construction): several times the speed.
                psql(self._url, "SET session_replication_role = replica;" + sql)
                with lock:
                    times[table] = times.get(table, 0) + time.perf_counter() - t0

        # Two sessions side by side (PostgreSQL has the cores to itself:
        # the server is stopped), tables split by rows to write.
        t0 = time.perf_counter()
        parallel(insert, split_by_weight(stmts, lambda st: FILLER_WEIGHT.get(st[0], 1)))
        times["(rows, wall)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        parallel(lambda part: psql(self._url, "SET maintenance_work_mem = '256MB';" +
                                   "".join(f"{sql};" for _, sql in part)),
                 split_by_weight(indexes, lambda ix: 1))
        times["(indexes)"] = time.perf_counter() - t0
        psql(self._url, "DROP TABLE scale_fill")
        return stmts, times

    def analyze(self):
        psql(self._url, "ANALYZE")

    def size(self):
        total = int(psql(self._url, "SELECT pg_database_size(current_database())", tuples=True).strip())
        return total, ""

    def table_sizes(self):
        return [(r[0], int(r[1])) for r in self.query(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
            "ORDER BY 2 DESC")]

    def explain(self, sql, analyze=True):
        opts = "ANALYZE, BUFFERS" if analyze else "COSTS"
        out = psql(self._url, f"BEGIN; EXPLAIN ({opts}) {sql}; ROLLBACK;", tuples=True)
        return [line for line in out.splitlines() if line.strip()]

    @staticmethod
    def scans(plan):
        return [line.strip().lstrip("-> ").strip() for line in plan if "Seq Scan" in line]

    @staticmethod
    def shape(plan):
        """The plan's nodes (first line and "->" lines), without costs,
        timings or the literal values of conditions."""
        nodes = [line for i, line in enumerate(plan) if i == 0 or "->" in line]
        return "\n".join(re.sub(r"\s*\((cost|actual)=.*$", "", line).rstrip() for line in nodes)

    def drop(self):
        if self.created:
            psql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)', check=False)
            self.created = False


# Rows per statement per user, to split the PostgreSQL load in two halves.
FILLER_WEIGHT = {"auth_events": 1, "recovery_codes": 1, "sessions": 1, "refresh_tokens": 1,
                 "users": 1, "authenticators": 1, "device_tokens": 1, "failure_counters": 0.1,
                 "rate_buckets": 0.05, "pending_tokens": 0.02, "check_claims": 0.001}


def split_by_weight(items, weight, parts=2):
    """Items in `parts` lists of about equal weight (greedy, in order)."""
    out = [[] for _ in range(parts)]
    load = [0.0] * parts
    for item in items:
        i = load.index(min(load))
        out[i].append(item)
        load[i] += weight(item)
    return [o for o in out if o]


def parallel(work, parts):
    errors = []

    def run(part):
        try:
            work(part)
        except Exception as e:  # re-raised below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(part,)) for part in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def psql(url, sql, tuples=False, check=True):
    cmd = ["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    if tuples:
        cmd += ["-A", "-t", "-F", "\x1f"]
    res = subprocess.run(cmd, input=sql, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"psql failed ({res.returncode}): {res.stderr.strip()[:800]}\nSQL: {sql[:400]}")
    return res.stdout


# ================================================================== server
class Server:
    def __init__(self, binary, backend, data_dir):
        self.bin = binary
        self.backend = backend
        self.data_dir = data_dir
        self.proc = None
        self.port = None
        self.log_path = os.path.join(data_dir, "server.log")
        self.keys = (base64.urlsafe_b64encode(os.urandom(48)).decode(), base64.b64encode(os.urandom(32)).decode())

    def env(self, **extra):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "RUST_LOG": "warn,otpgate=info,otpgate::http=warn",
            "OTPGATE_DATA_DIR": self.data_dir,
            "DATABASE_URL": self.backend.url(),
            "OTPGATE_BCRYPT_COST": "4",
            "OTPGATE_EVENT_RETENTION_DAYS": str(SERVER_RETENTION_DAYS),
            # Set, as in production (PostgreSQL instances must share them).
            "OTPGATE_JWT_SECRET": self.keys[0],
            "OTPGATE_ENCRYPTION_KEY": self.keys[1],
            **SERVER_LIMITS,
        }
        env.update(extra)
        return env

    def run(self, *args, **extra):
        res = subprocess.run([self.bin, *args], env=self.env(**extra), cwd=self.data_dir,
                             capture_output=True, text=True)
        return res.returncode, res.stdout + res.stderr

    def start(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        log = open(self.log_path, "a")
        log.write(f"---- start {time.strftime('%H:%M:%S')}\n")
        log.flush()
        offset = os.path.getsize(self.log_path)
        t0 = time.time()
        self.proc = subprocess.Popen([self.bin, "serve", "--bind", f"127.0.0.1:{self.port}"],
                                     env=self.env(), cwd=self.data_dir, stdout=log, stderr=log)
        log.close()
        # Up when /healthz answers and the start-up prune pass has logged.
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); log:\n" + self.log_tail())
            with open(self.log_path) as f:
                f.seek(offset)
                text = f.read()
            if "pruned" in text or "pruning failed" in text:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                    c.request("GET", "/healthz")
                    if c.getresponse().status == 200:
                        return time.time() - t0
                except OSError:
                    pass
            if time.time() - t0 > 600:
                raise RuntimeError("server did not come up in 600 s; log:\n" + self.log_tail())
            time.sleep(0.1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self, n=20):
        with open(self.log_path) as f:
            return "".join(f.readlines()[-n:])

    def warnings(self):
        with open(self.log_path) as f:
            return [line.rstrip() for line in f
                    if re.search(r"\b(WARN|ERROR)\b|panic", line) and "is not set: generated" not in line]


# ================================================================ the flow
def enrol(client, users, conns):
    """register -> setup -> verify, through the API."""
    phase = Phase("enrol")

    def job(t):
        for u in users[t::conns]:
            st, body, _ = client.call("POST", "/auth/register", {"username": u.name, "password": PASSWORD})
            if st != 201:
                phase.problem(st, body)
                continue
            u.id, pending = body["user"]["id"], body["pending_token"]
            st, body, _ = client.call("POST", "/2fa/setup", token=pending)
            if st != 200:
                phase.problem(st, body)
                continue
            u.secret = body["secret"]
            step = current_step(lead=0.5)
            st, body, ms = client.call("POST", "/2fa/verify", {"code": totp_at_step(u.secret, step)},
                                       token=pending)
            if st != 200:
                phase.problem(st, body)
                continue
            u.last_step = step
            u.access.append(body["access_token"])
            phase.ok(ms)

    t0 = time.time()
    run_threads(conns, job)
    phase.wall = time.time() - t0
    return phase


def measure(port, users, conns, logins_per_user, me_requests):
    """Login (which mints the pending tokens), verify, /me; returns phases."""
    client = Client(port)
    ready = [u for u in users if u.secret]
    # Warm-up (not counted): a few of each, on every connection.
    warm = Phase("warm-up")

    def warmup(t):
        for u in ready[t::conns][:5]:
            client.call("POST", "/auth/login", {"username": u.name, "password": PASSWORD})
            if u.access:
                client.call("GET", "/me", token=u.access[-1])

    run_threads(conns, warmup)
    del warm

    login = Phase("login")

    def do_login(t):
        mine = ready[t::conns]
        for _ in range(logins_per_user):
            for u in mine:
                st, body, ms = client.call("POST", "/auth/login", {"username": u.name, "password": PASSWORD})
                if st == 200 and body.get("next_step") == "verify_2fa":
                    login.ok(ms)
                    u.pending.append(body["pending_token"])
                else:
                    login.problem(st, body)

    t0 = time.time()
    run_threads(conns, do_login)
    login.wall = time.time() - t0

    # Each authenticator accepts a step once, from current-1 to current+1,
    # each newer than the last it accepted: up to three verifications per
    # user (steps c-1, c, c+1 in that order). L of them need the current
    # step to be at least last + L - 1; wait until that holds for 9 users
    # in 10 (only when two runs follow each other within a minute; a run
    # that crossed a step boundary left a few users a step ahead: they
    # verify fewer times, counted as skipped).
    needs = sorted(u.last_step + logins_per_user - 1 for u in ready)
    while needs and current_step(lead=0.5) < needs[int(0.9 * (len(needs) - 1))]:
        wait = 30 - time.time() % 30 + 0.2
        say(f"     (waiting {wait:.0f} s for fresh TOTP steps: the last verify run was moments ago)")
        time.sleep(wait)

    verify = Phase("verify")

    def do_verify(t):
        for u in ready[t::conns]:
            while u.pending:
                token = u.pending.pop(0)
                cur = current_step(lead=0.5)
                step = max(u.last_step + 1, cur - 1)
                if step > cur + 1:
                    verify.skipped += 1
                    continue
                st, body, ms = client.call("POST", "/2fa/verify", {"code": totp_at_step(u.secret, step)},
                                           token=token)
                u.last_step = step
                if st == 200:
                    verify.ok(ms)
                    u.access.append(body["access_token"])
                else:
                    verify.problem(st, body)

    t0 = time.time()
    run_threads(conns, do_verify)
    verify.wall = time.time() - t0

    me = Phase("/me")
    tokens = [(u, u.access[-1]) for u in ready if u.access]

    def do_me(t):
        mine = tokens[t::conns] or tokens
        for i in range(me_requests // conns):
            u, token = mine[i % len(mine)]
            st, body, ms = client.call("GET", "/me", token=token)
            if st == 200 and body.get("id") == u.id:
                me.ok(ms)
            else:
                me.problem(st, body)

    t0 = time.time()
    run_threads(conns, do_me)
    me.wall = time.time() - t0
    for u in users:  # keep the newest access token only
        u.access = u.access[-1:]
    return [login, verify, me]


# =============================================================== EXPLAIN
def hot_queries(backend, sample_user):
    """(group, name, sql) with literal values of real loaded rows."""
    d = backend.dialect
    q = backend.query
    uid = sample_user.id
    ukey = q(f"SELECT username_key FROM users WHERE id = '{uid}'")[0][0]
    sid = q(f"SELECT id FROM sessions WHERE user_id = '{uid}' AND revoked_at IS NULL "
            "ORDER BY created_at DESC LIMIT 1")[0][0]
    refresh = q(f"SELECT token_hash FROM refresh_tokens WHERE session_id = '{sid}' LIMIT 1")[0][0]
    jti = q(f"SELECT jti FROM pending_tokens WHERE user_id = '{uid}' LIMIT 1")[0][0]
    auth_id = q(f"SELECT id FROM authenticators WHERE user_id = '{uid}' LIMIT 1")[0][0]
    device = q(f"SELECT token_hash FROM device_tokens WHERE user_id = '{uid}' LIMIT 1")[0][0]
    counter = q("SELECT key FROM failure_counters ORDER BY key LIMIT 1 OFFSET 7")[0][0]
    bucket = q("SELECT key FROM rate_buckets ORDER BY key LIMIT 1")[0][0]
    # The session cache's change feed (schema 2026-11-30-000008 on SQLite).
    feed_seq = None
    if isinstance(backend, Sqlite) and "seq" in backend.columns("account_changes"):
        feed_seq = int(q("SELECT COALESCE(MAX(seq), 0) FROM account_changes")[0][0])
    now_unix = int(time.time())
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime(now_unix))
    fresh = lambda: hashlib.sha256(os.urandom(16)).hexdigest()  # noqa: E731
    fresh_uuid = lambda: "%s-%s-4%s-a%s-%s" % tuple(  # noqa: E731
        os.urandom(n).hex()[:m] for n, m in ((4, 8), (2, 4), (2, 3), (2, 3), (6, 12)))
    user_cols = "users.id, users.username, users.username_key, users.password_hash, " \
                "users.two_factor_enabled, users.created_at"
    auth_cols = "id, user_id, name, totp_secret, totp_key_id, last_step, confirmed_at, created_at, last_used_at"
    counter_cols = "failures, last_failure_at, locked_until, lockouts, window_start, window_failures, " \
                   "previous_window_failures"
    return [
        ("/me", "sessions::live_user (every request with an access token)",
         f"SELECT {user_cols} FROM sessions INNER JOIN users ON users.id = sessions.user_id "
         f"WHERE sessions.id = '{sid}' AND sessions.user_id = '{uid}' AND sessions.revoked_at IS NULL "
         f"AND sessions.expires_at > '{now}'"),
        # The account's failure counters (login-client and login-username
        # on a login, second-factor on a verify), as the store has them
        # since the upsert change: PostgreSQL locks the row with a no-op
        # upsert, SQLite reads it; both save with an upsert.
        ("login", "throttle::lock_counter",
         f"INSERT INTO failure_counters (key) VALUES ('{counter}') ON CONFLICT (key) DO UPDATE "
         f"SET key = excluded.key RETURNING {counter_cols}" if isinstance(backend, Postgres) else
         f"SELECT {counter_cols} FROM failure_counters WHERE key = '{counter}'"),
        ("login", "throttle::save_counter (upsert)",
         f"INSERT INTO failure_counters (key, {counter_cols}) VALUES ('{counter}', 1, {now_unix}, 0, 0, "
         f"{now_unix}, 1, 0) ON CONFLICT (key) DO UPDATE SET failures = 1, last_failure_at = {now_unix}, "
         f"locked_until = 0, lockouts = 0, window_start = {now_unix}, window_failures = 1, "
         f"previous_window_failures = 0"),
        ("login", "users::find_by_key",
         f"SELECT {user_cols} FROM users WHERE users.username_key = '{ukey}'"),
        ("login", "pending::insert",
         f"INSERT INTO pending_tokens (jti, user_id, expires_at, known_device) "
         f"VALUES ('{fresh_uuid()}', '{uid}', '{now}', FALSE)"),
        ("login", "devices::is_live_for (a login carrying a device token)",
         f"SELECT device_tokens.token_hash FROM device_tokens INNER JOIN users ON users.id = device_tokens.user_id "
         f"WHERE device_tokens.token_hash = '{device}' AND users.username_key = '{ukey}' "
         f"AND device_tokens.expires_at > '{now}'"),
        ("login", "throttle::lock_bucket read (per-IP bucket, non-local clients)",
         f"SELECT tokens, refilled_at FROM rate_buckets WHERE key = '{bucket}'{d.for_update}"),
        ("verify", "pending::find_with_user",
         f"SELECT pending_tokens.jti, pending_tokens.user_id, pending_tokens.failed_attempts, "
         f"pending_tokens.consumed_at, pending_tokens.expires_at, pending_tokens.known_device, {user_cols} "
         f"FROM pending_tokens INNER JOIN users ON users.id = pending_tokens.user_id "
         f"WHERE pending_tokens.jti = '{jti}' AND pending_tokens.user_id = '{uid}'"),
        ("verify", "authenticators::confirmed",
         f"SELECT {auth_cols} FROM authenticators WHERE user_id = '{uid}' AND confirmed_at IS NOT NULL "
         f"ORDER BY created_at, id"),
        ("verify", "authenticators::unconfirmed (before 2FA is on)",
         f"SELECT {auth_cols} FROM authenticators WHERE user_id = '{uid}' AND confirmed_at IS NULL"),
        ("verify", "authenticators::advance_step",
         f"UPDATE authenticators SET last_step = {now_unix // 30 + 5}, last_used_at = '{now}' "
         f"WHERE id = '{auth_id}' AND (last_step IS NULL OR last_step < {now_unix // 30 + 5})"),
        ("verify", "users::enable_two_factor",
         f"UPDATE users SET two_factor_enabled = TRUE WHERE id = '{uid}' AND two_factor_enabled = FALSE"),
        ("verify", "pending::consume",
         f"UPDATE pending_tokens SET consumed_at = '{now}' WHERE jti = '{jti}' AND consumed_at IS NULL "
         f"AND failed_attempts < 5 AND expires_at > '{now}'"),
        ("verify", "devices::insert",
         f"INSERT INTO device_tokens (token_hash, user_id, created_at, expires_at) "
         f"VALUES ('{fresh()}', '{uid}', '{now}', '{now}')"),
        ("verify", "sessions::insert",
         f"INSERT INTO sessions (id, user_id, amr, created_at, expires_at, ip, user_agent) "
         f"VALUES ('{fresh_uuid()}', '{uid}', 'pwd otp', '{now}', '{now}', '127.0.0.1', 'x')"),
        ("verify", "sessions::insert_refresh",
         f"INSERT INTO refresh_tokens (token_hash, session_id, expires_at, created_at) "
         f"VALUES ('{fresh()}', '{sid}', '{now}', '{now}')"),
        ("verify", "security_log::insert",
         f"INSERT INTO auth_events (user_id, event_type, ip, user_agent, created_at) "
         f"VALUES ('{uid}', 'login_succeeded', '127.0.0.1', 'x', '{now}')"),
    ] + ([
        ("/me", "change_feed read (SQLite: before the session cache trusts an entry)",
         f"SELECT seq, user_id FROM account_changes WHERE seq >= {feed_seq} ORDER BY seq"),
    ] if feed_seq is not None else []) + [
        ("other", "sessions::find_refresh (POST /auth/refresh)",
         f"SELECT refresh_tokens.token_hash, refresh_tokens.session_id, refresh_tokens.expires_at, "
         f"refresh_tokens.rotated_at, sessions.id, sessions.user_id FROM refresh_tokens "
         f"INNER JOIN sessions ON sessions.id = refresh_tokens.session_id "
         f"WHERE refresh_tokens.token_hash = '{refresh}'"),
        ("other", "sessions::list_live (GET /me/sessions)",
         f"SELECT id, user_id, amr, created_at, expires_at, revoked_at, last_used_at, ip, user_agent "
         f"FROM sessions WHERE user_id = '{uid}' AND revoked_at IS NULL AND expires_at > '{now}' "
         f"ORDER BY created_at DESC, id DESC"),
        ("other", "security_log::latest (GET /me/events)",
         f"SELECT event_type, ip, user_agent, created_at FROM auth_events WHERE user_id = '{uid}' "
         f"ORDER BY id DESC LIMIT 50"),
    ]


def prune_queries(now_unix):
    fmt = lambda t: time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime(t))  # noqa: E731
    cut = fmt(now_unix - PRUNE_RETENTION_DAYS * DAY)
    return [
        ("prune", "security_log::delete_older_than", f"DELETE FROM auth_events WHERE created_at < '{cut}'"),
        ("prune", "pending::delete_expired",
         f"DELETE FROM pending_tokens WHERE expires_at < '{fmt(now_unix - 3600)}'"),
        ("prune", "sessions::delete_ended",
         f"DELETE FROM sessions WHERE expires_at < '{cut}' OR revoked_at < '{cut}'"),
        ("prune", "devices::delete_expired", f"DELETE FROM device_tokens WHERE expires_at < '{fmt(now_unix)}'"),
        ("prune", "throttle::delete_idle (counters)",
         f"DELETE FROM failure_counters WHERE last_failure_at < {now_unix - DAY} "
         f"AND locked_until < {now_unix - DAY}"),
        ("prune", "throttle::delete_idle (buckets)",
         f"DELETE FROM rate_buckets WHERE refilled_at < {now_unix - DAY}"),
    ]


def explain_all(backend, queries, analyze=True):
    return {(g, n): (sql, backend.explain(sql, analyze)) for g, n, sql in queries}


def format_plans(plans):
    out = []
    for (group, name), (sql, plan) in plans.items():
        out.append(f"  [{group}] {name}")
        out.append(f"    {sql}")
        out.extend("      " + line for line in plan)
    return out


# ================================================================== main
def main():
    global LOG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--postgres", default="", help="admin URL of a PostgreSQL server (enables it)")
    ap.add_argument("--backends", default="", help="sqlite,postgres (default: sqlite, + postgres if --postgres)")
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--measured", type=int, default=400, help="users enrolled through the API and measured")
    ap.add_argument("--conns", type=int, default=8, help="client threads (keep-alive connections)")
    ap.add_argument("--logins-per-user", type=int, default=2, choices=(1, 2, 3),
                    help="logins, then verifications, per measured user and size")
    ap.add_argument("--me-requests", type=int, default=6000)
    ap.add_argument("--no-recovery-codes", action="store_true", help="filler users get no recovery codes")
    ap.add_argument("--results", required=True, help="directory for scale-latest.txt / .log")
    args = ap.parse_args()

    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    backends = [b for b in (args.backends or ("sqlite,postgres" if args.postgres else "sqlite")).split(",") if b]
    if "postgres" in backends and not args.postgres:
        sys.exit("--backends postgres needs --postgres URL")
    if sizes[0] < args.measured:
        sys.exit(f"the smallest size ({sizes[0]}) must hold the {args.measured} measured users")

    os.makedirs(args.results, exist_ok=True)
    LOG = open(os.path.join(args.results, "scale-latest.log"), "w")
    work = tempfile.mkdtemp(prefix="otpgate-scale.")
    binary = os.path.join(work, "otpgate")
    shutil.copy2(args.bin, binary)  # a private copy: a rebuild must not swap it
    built = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(args.bin)))

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    started = time.time()
    rows = []  # the final table
    reports = []  # EXPLAIN etc., per backend
    findings = []
    verdicts = []
    servers, dbs = [], []
    try:
        say(f"otpgate scale run {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} on {os.cpu_count()} cores, "
            f"load average {open('/proc/loadavg').read().split()[0]}; binary {args.bin} (built {built})")
        say(f"   sizes {', '.join(human_count(s) for s in sizes)}; backends {', '.join(backends)}; "
            f"{args.measured} measured users, {args.conns} client threads, "
            f"{args.logins_per_user} logins/verifies per user, {args.me_requests} /me requests")
        for name in backends:
            backend = Sqlite(work) if name == "sqlite" else Postgres(args.postgres)
            dbs.append(backend)
            data_dir = os.path.join(work, f"data-{name}")
            os.makedirs(data_dir)
            server = Server(binary, backend, data_dir)
            servers.append(server)
            say(f"\n== {backend.label}: {backend.describe()}")
            rc, out = server.run("migrate", "--database-url", backend.url(), "--data-dir", data_dir)
            if rc != 0:
                raise RuntimeError(f"migrate failed: {out}")
            say(f"   migrate: {out.strip().splitlines()[-1] if out.strip() else 'ok'}")
            server.start()
            users = [MeasuredUser(f"scale-m-{i:05d}") for i in range(args.measured)]
            ph = enrol(Client(server.port), users, args.conns)
            say(f"   enrolled {len(ph.ms)}/{len(users)} measured users through the API in {ph.wall:.1f} s")
            if not ph.ms:
                raise RuntimeError("no user could be enrolled; server log:\n" + server.log_tail())
            server.stop()
            sample = next(u for u in users if u.secret)
            password_hash, = backend.query(f"SELECT password_hash FROM users WHERE id = '{sample.id}'")[0]
            key_id, = backend.query(f"SELECT totp_key_id FROM authenticators WHERE user_id = '{sample.id}'")[0]
            loaded = args.measured  # users in the database
            per_backend = []
            plans_by_size = {}
            for size in sizes:
                say(f"\n-- {backend.label}, {human_count(size)} users")
                t_load = 0.0
                if size > loaded:
                    now = int(time.time())
                    t0 = time.time()
                    stmts, times = backend.load(loaded - args.measured + 1, size - args.measured + 1, now,
                                                password_hash, key_id, not args.no_recovery_codes)
                    t_load = time.time() - t0
                    say(f"   loaded {size - loaded} filler users in {t_load:.1f} s: " +
                        ", ".join(f"{t} {s:.1f}s" for t, s in times.items()))
                    cols = loaded_columns(stmts)
                    for table, set_cols in cols.items():
                        left = [c for c in backend.columns(table) if c not in set_cols and c != "id"]
                        if left:
                            say(f"   note: the loader leaves {table}.{', '.join(left)} to the default")
                    loaded = size
                t_analyze = 0.0
                if isinstance(backend, Postgres):
                    t0 = time.time()
                    backend.analyze()
                    t_analyze = time.time() - t0
                    say(f"   ANALYZE in {t_analyze:.1f} s")
                counts = {t: int(backend.query(f"SELECT COUNT(*) FROM {t}")[0][0]) for t, _ in FILLER}
                say("   rows: " + ", ".join(f"{t} {c}" for t, c in counts.items()))
                up = server.start()
                say(f"   server up in {up:.1f} s (start-up prune pass included)")
                phases = measure(server.port, users, args.conns, args.logins_per_user, args.me_requests)
                for ph in phases:
                    say("   " + ph.summary())
                plans = explain_all(backend, hot_queries(backend, sample))
                plans_by_size[size] = plans
                server.stop()
                db_bytes, note = backend.size()
                say(f"   database {human_size(db_bytes)} = {db_bytes / size:.0f} B/user {note}")
                per_backend.append({"size": size, "phases": phases, "bytes": db_bytes, "load": t_load,
                                    "analyze": t_analyze, "label": human_count(size)})
            largest = sizes[-1]
            tables = backend.table_sizes()
            if tables:
                say(f"   largest objects at {human_count(largest)} users: " +
                    ", ".join(f"{name} {human_size(int(b))}" for name, b in tables[:12]))
            report = [f"== {backend.label}: EXPLAIN of the hot queries at {human_count(largest)} users"
                      + (" (EXPLAIN QUERY PLAN, no ANALYZE run: as a deployment has it)"
                         if isinstance(backend, Sqlite) else " (EXPLAIN (ANALYZE, BUFFERS), after ANALYZE;"
                         " writes rolled back)")]
            report += format_plans(plans_by_size[largest])
            # Same plan shapes at every size?
            for size in sizes[:-1]:
                differ = [k for k, (_, plan) in plans_by_size[size].items()
                          if backend.shape(plan) != backend.shape(plans_by_size[largest][k][1])]
                report.append(f"  plans at {human_count(size)} users: " +
                              ("the same shape" if not differ else
                               "differ for " + "; ".join(n for _, n in differ)))
                for k in differ:
                    report.append(f"    {k[1]} at {human_count(size)}:")
                    report.extend("      " + line for line in plans_by_size[size][k][1])
            for (group, name), (_, plan) in plans_by_size[largest].items():
                for line in backend.scans(plan):
                    findings.append(f"{backend.label} [{group}] {name}: {line}")
            if isinstance(backend, Sqlite):
                t0 = time.time()
                backend.analyze()
                say(f"\n   SQLite ANALYZE at {human_count(largest)} users in {time.time() - t0:.1f} s")
                after = explain_all(backend, hot_queries(backend, sample))
                changed = [k for k in after if after[k][1] != plans_by_size[largest][k][1]]
                report.append(f"  after ANALYZE (sqlite_stat1): " +
                              ("no plan changed" if not changed else
                               f"{len(changed)} plan(s) changed:"))
                for k in changed:
                    report.append(f"    {k[1]}:")
                    report.extend("      " + line for line in after[k][1])
                say(f"\n-- {backend.label}, {human_count(largest)} users, after ANALYZE")
                server.start()
                phases = measure(server.port, users, args.conns, args.logins_per_user, args.me_requests)
                for ph in phases:
                    say("   " + ph.summary())
                server.stop()
                per_backend.append({"size": largest, "phases": phases, "bytes": backend.size()[0], "load": 0,
                                    "analyze": 0, "label": human_count(largest) + " +ANALYZE"})
            # Pruning at the largest size, with the default retention.
            now_unix = int(time.time())
            explain_kind = "EXPLAIN QUERY PLAN" if isinstance(backend, Sqlite) else "plain EXPLAIN"
            pplans = explain_all(backend, prune_queries(now_unix), analyze=False)
            report.append(f"  prune statements with the month of backlog ({explain_kind}; the prune run does them):")
            report += format_plans(pplans)
            backlog_scans = [(name, line) for (_, name), (_, plan) in pplans.items()
                             for line in backend.scans(plan)]
            cut = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now_unix - PRUNE_RETENTION_DAYS * DAY))
            old, total = (int(x) for x in backend.query(
                f"SELECT (SELECT COUNT(*) FROM auth_events WHERE created_at < '{cut}'), "
                f"(SELECT COUNT(*) FROM auth_events)")[0])
            t0 = time.time()
            rc, out = server.run("admin", "prune", OTPGATE_EVENT_RETENTION_DAYS=str(PRUNE_RETENTION_DAYS))
            wall = time.time() - t0
            out = out.strip().splitlines()[-1] if out.strip() else ""
            m = re.search(r"in (\d+) ms", out)
            prune = {"ok": rc == 0, "ms": int(m.group(1)) if m else None, "wall": wall, "out": out,
                     "old": old, "total": total}
            say(f"\n   admin prune at {human_count(largest)} users ({old} of {total} events older than "
                f"{PRUNE_RETENTION_DAYS} days): rc {rc}, {wall:.1f} s wall: {out}")
            if isinstance(backend, Postgres):
                backend.analyze()
            after_bytes = backend.size()[0]
            prune["after_bytes"] = after_bytes
            # What every later (hourly) pass runs: the backlog is gone.
            pplans = explain_all(backend, prune_queries(int(time.time())), analyze=False)
            report.append(f"  prune statements once the backlog is gone, as each hourly pass runs them "
                          f"({explain_kind}):")
            report += format_plans(pplans)
            steady = [(name, line) for (_, name), (_, plan) in pplans.items() for line in backend.scans(plan)]
            findings.extend(f"{backend.label} [prune, every hourly pass] {name}: {line}" for name, line in steady)
            findings.extend(f"{backend.label} [prune, with the backlog only] {name}: {line} (a scan can be the "
                            f"right plan when a large share of the table goes)"
                            for name, line in backlog_scans if name not in {n for n, _ in steady})
            for w in server.warnings():
                findings.append(f"{backend.label} server log: {w[:300]}")
            first, last = per_backend[0], next(r for r in per_backend if r["label"] == human_count(largest))
            ratios = {ph.name: last["phases"][i].p(0.5) / first["phases"][i].p(0.5)
                      for i, ph in enumerate(first["phases"])}
            worst = max(ratios.values())
            word = "flat" if worst < 1.5 else "NOT FLAT"
            verdicts.append(f"{backend.label}: {word}: {human_count(largest)}/{human_count(sizes[0])} p50 ratio "
                            + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
            rows.append((backend, per_backend, prune))
            reports.append(report)
            if isinstance(backend, Postgres):
                backend.drop()
    except KeyboardInterrupt as e:
        say(f"\ninterrupted ({e})")
        return 130
    finally:
        for s in servers:
            s.stop()
        for b in dbs:
            try:
                b.drop()
            except Exception as e:  # noqa: BLE001
                print(f"could not drop {getattr(b, 'db', '?')}: {e}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)

    # ------------------------------------------------------------ summary
    out = []
    out.append(f"otpgate scale summary — {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, "
               f"{os.cpu_count()} cores, run took {time.time() - started:.0f} s; binary built {built}")
    out.append(f"{args.measured} measured users (enrolled through the API), {args.conns} client threads "
               f"(Python, keep-alive), bcrypt cost 4; {args.logins_per_user} logins and verifies per user, "
               f"{args.me_requests} /me requests per size; server restarted after each load")
    out.append("")
    hdr = (f"{'backend':<11} {'users':<13} {'login p50/p99 ms':>17} {'verify p50/p99 ms':>18} "
           f"{'/me p50/p99 ms':>15} {'bytes/user':>11} {'load s':>7}")
    out.append(hdr)
    out.append("-" * len(hdr))
    for backend, per, _ in rows:
        for r in per:
            login, verify, me = r["phases"]
            load = f"{r['load']:.1f}" if r["load"] else "-"
            if r["analyze"]:
                load += f"+{r['analyze']:.0f}"
            out.append(f"{backend.label:<11} {r['label']:<13} {login.p(.5):8.2f}/{login.p(.99):<8.2f} "
                       f"{verify.p(.5):8.2f}/{verify.p(.99):<9.2f} {me.p(.5):6.2f}/{me.p(.99):<8.2f} "
                       f"{r['bytes'] / r['size']:11.0f} {load:>7}")
    out.append("(load s: filler loading for that step; +N: PostgreSQL ANALYZE seconds)")
    bad = [f"{b.label} {r['label']} {ph.name}: " + ", ".join(f"{k} x{v}" for k, v in ph.bad.items())
           for b, per, _ in rows for r in per for ph in r["phases"] if ph.bad]
    if bad:
        out.append("unexpected answers: " + "; ".join(bad))
    out.append("")
    for backend, _, prune in rows:
        ms = f"{prune['ms']} ms" if prune["ms"] is not None else "n/a"
        out.append(f"prune at {human_count(sizes[-1])} users, {backend.label}: {ms} (command wall "
                   f"{prune['wall']:.1f} s) for {prune['old']} of {prune['total']} events older than "
                   f"{PRUNE_RETENTION_DAYS} days; database {human_size(prune['after_bytes'])} after")
        out.append(f"    {prune['out']}")
    out.append("")
    for v in verdicts:
        out.append("verdict " + v)
    out.append("")
    out.append("filler data per user: " + "; ".join(f"{t}: {d}" for t, d in FILLER))
    out.append("")
    if findings:
        out.append("FINDINGS (scans in the plans at the largest size, server warnings):")
        out.extend("  - " + f for f in findings)
    else:
        out.append("No scan in any hot-query or prune plan at the largest size; no server warnings.")
    out.append("")
    for report in reports:
        out.extend(report)
        out.append("")
    text = "\n".join(out)
    say("\n" + text)
    with open(os.path.join(args.results, "scale-latest.txt"), "w") as f:
        f.write(text + "\n")
    say(f"(saved to {os.path.join(args.results, 'scale-latest.txt')}; progress log scale-latest.log)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
