#!/usr/bin/env python3
"""Login answers must not tell which usernames exist.

Starts otpgate (release build if present, else debug) on a fresh SQLite
database, and with `--postgres URL` (a server URL ending in a database the
script may connect to, e.g. postgres://postgres@127.0.0.1:5432/postgres) on
a fresh PostgreSQL database too (created with `psql`, dropped afterwards),
with password throttling relaxed (so every try reaches bcrypt), then times
TRIES (default 500) interleaved sequential logins for each of:
  - an unknown username,
  - a known username with a wrong password,
  - a known username whose second factor is locked out (wrong password).
Prints the median latency of each and a two-sided Mann-Whitney U p-value of
each known case against the unknown one (reported, not gated: with enough
tries any constant gap becomes significant), checks the medians are within
10 % of each other, and that status, body and headers are identical (Date
and X-Request-Id aside). Standard library only.
"""

import base64
import hashlib
import hmac
import http.client
import json
import math
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid

TRIES = int(os.environ.get("TRIES", "500"))
COST = os.environ.get("OTPGATE_BCRYPT_COST", "12")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binary():
    """The newest build (release or debug), or OTPGATE_BIN."""
    if os.environ.get("OTPGATE_BIN"):
        return os.environ["OTPGATE_BIN"]
    builds = [os.path.join(ROOT, "target", profile, "otpgate") for profile in ("release", "debug")]
    builds = [path for path in builds if os.path.exists(path)]
    if not builds:
        sys.exit("build otpgate first: cargo build --release")
    return max(builds, key=os.path.getmtime)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    started = time.perf_counter()
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    headers = {k.lower(): v for k, v in response.getheaders() if k.lower() not in ("date", "x-request-id")}
    return response.status, data, headers, elapsed


def totp(secret, step):
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{code % 1_000_000:06d}"


def mann_whitney_p(xs, ys):
    """Two-sided p-value of the Mann-Whitney U test: the normal
    approximation with tie correction and continuity correction (fine for
    samples of hundreds)."""
    pooled = sorted([(x, 0) for x in xs] + [(y, 1) for y in ys])
    n1, n2 = len(xs), len(ys)
    n = n1 + n2
    rank_sum_x = 0.0
    tie_term = 0
    i = 0
    while i < n:
        j = i
        while j < n and pooled[j][0] == pooled[i][0]:
            j += 1
        tied = j - i
        average_rank = (i + 1 + j) / 2
        rank_sum_x += average_rank * sum(1 for k in range(i, j) if pooled[k][1] == 0)
        tie_term += tied**3 - tied
        i = j
    u = rank_sum_x - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    if sigma == 0:
        return 1.0
    z = (abs(u - mean) - 0.5) / sigma
    return math.erfc(max(z, 0.0) / math.sqrt(2))


def postgres_database(admin_url):
    """Creates a fresh database on the server of `admin_url`; its URL and
    a function that drops it."""
    name = f"otpgate_enum_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", admin_url, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    url = admin_url.rsplit("/", 1)[0] + "/" + name

    def drop():
        subprocess.run(["psql", admin_url, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False)

    return url, drop


def measure(backend, database_url):
    """Runs the check against a fresh server on `database_url`; whether it
    passed."""
    data_dir = tempfile.mkdtemp(prefix="otpgate-enum-")
    port = free_port()
    env = dict(
        os.environ,
        OTPGATE_DATA_DIR=data_dir,
        DATABASE_URL=database_url or os.path.join(data_dir, "otpgate.db"),
        OTPGATE_BCRYPT_COST=COST,
        OTPGATE_LOGIN_FAILURES_BEFORE_LOCK="1000",
        OTPGATE_LOGIN_FAILURES_PER_HOUR="100000",
        OTPGATE_IP_RATE_PER_MIN="0",
        RUST_LOG="warn",
    )
    server = subprocess.Popen([binary(), "serve", "--bind", f"127.0.0.1:{port}"], env=env)
    try:
        for _ in range(100):
            try:
                if call(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        password = "correct horse battery staple"
        for name in ("known-user", "locked-user"):
            status, body, _, _ = call(port, "POST", "/api/v1/auth/register", {"username": name, "password": password})
            assert status == 201, body
        # Enrol locked-user, then lock its second factor with five wrong codes.
        pending = json.loads(call(port, "POST", "/api/v1/auth/login", {"username": "locked-user", "password": password})[1])["pending_token"]
        secret = json.loads(call(port, "POST", "/api/v1/2fa/setup", token=pending)[1])["secret"]
        status, body, _, _ = call(port, "POST", "/api/v1/2fa/verify", {"code": totp(secret, int(time.time()) // 30)}, pending)
        assert status == 200, body
        pending = json.loads(call(port, "POST", "/api/v1/auth/login", {"username": "locked-user", "password": password})[1])["pending_token"]
        near = {totp(secret, int(time.time()) // 30 + d) for d in (-1, 0, 1, 2)}
        wrong = [c for c in (f"{n:06d}" for n in range(100, 200)) if c not in near][:5]
        for code in wrong:
            call(port, "POST", "/api/v1/2fa/verify", {"code": code}, pending)
        status, _, _, _ = call(port, "POST", "/api/v1/2fa/verify", {"code": wrong[0]}, pending)
        pending2 = json.loads(call(port, "POST", "/api/v1/auth/login", {"username": "locked-user", "password": password})[1])["pending_token"]
        status, _, headers, _ = call(port, "POST", "/api/v1/2fa/verify", {"code": wrong[0]}, pending2)
        assert status == 429, f"second factor not locked: {status}"

        cases = {
            "unknown username": {"username": "nobody-at-all", "password": "wrong password"},
            "known, wrong password": {"username": "known-user", "password": "wrong password"},
            "2FA-locked, wrong password": {"username": "locked-user", "password": "wrong password"},
        }
        results = {label: [] for label in cases}
        for body in cases.values():
            call(port, "POST", "/api/v1/auth/login", body)  # warm-up
        # Interleaved, in a fresh random order each round, so that load from
        # anything else (and any effect of the previous request) hits all
        # three alike.
        order = list(cases.items())
        for _ in range(TRIES):
            random.shuffle(order)
            for label, body in order:
                results[label].append(call(port, "POST", "/api/v1/auth/login", body))
        print(f"{backend}: login answers over {TRIES} interleaved tries each (bcrypt cost {COST}):")
        medians = {}
        unknown_times = [a[3] for a in results["unknown username"]]
        for label, answers in results.items():
            times = [a[3] for a in answers]
            medians[label] = statistics.median(times) * 1000
            versus = "" if label == "unknown username" else f"   p vs unknown {mann_whitney_p(times, unknown_times):.3g}"
            print(f"  {label:<28} median {medians[label]:8.2f} ms   status {answers[0][0]}{versus}")
        first = results["unknown username"][0][:3]
        identical = True
        for label, answers in results.items():
            for answer in answers:
                if answer[:3] != first:
                    identical = False
                    print(f"  differs ({label}): {answer[:3]} vs {first}")
                    break
        spread = (max(medians.values()) - min(medians.values())) / min(medians.values()) * 100
        print(f"  identical status, body and headers: {'yes' if identical else 'NO'}")
        print(f"  spread between medians: {spread:.1f} % (target: within 10 %)")
        ok = identical and spread <= 10 and first[0] == 401
        print(f"{backend} enumeration check:", "PASS" if ok else "FAIL")
        return ok
    finally:
        server.terminate()
        server.wait()


def main():
    args = sys.argv[1:]
    backends = [("SQLite", None, lambda: None)]
    if args[:1] == ["--postgres"] and len(args) == 2:
        url, drop = postgres_database(args[1])
        backends.append(("PostgreSQL", url, drop))
    elif args:
        sys.exit("usage: enumeration.py [--postgres postgres://user@host:port/database]")
    results = []
    for backend, url, drop in backends:
        try:
            results.append(measure(backend, url))
        finally:
            drop()
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
