#!/usr/bin/env python3
"""Client-side helpers for bench/run.sh (standard library only).

Prepares the state each wrk run needs (users, pending tokens, access
tokens, TOTP codes) against a running otpgate, and measures raw bcrypt.

  otpbench.py freeport
  otpbench.py users    --base URL --count N --prefix P --out FILE
  otpbench.py enroll   --base URL --count N --prefix P --out FILE
  otpbench.py pending  --base URL --count N --prefix P --out FILE [--setup]
  otpbench.py codes    --in FILE --out FILE
  otpbench.py bcrypt-raw --cost C --seconds S --procs N   (needs the bcrypt package)

Files are one record a line, fields separated by a tab. Every unexpected
answer from the server is printed (status, code, detail) and counted; the
command exits non-zero when nothing at all succeeded.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

PASSWORD = "bench-Pa55word-7q!"  # not common, not a username
API = "/api/v1"


# --------------------------------------------------------------------- TOTP
def b32decode_nopad(secret):
    secret = secret.strip().upper()
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


def totp(secret_b32, at=None, step=30, digits=6):
    """RFC 6238, SHA1 (what oathtool --totp -b computes)."""
    key = b32decode_nopad(secret_b32)
    counter = int((time.time() if at is None else at) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


# --------------------------------------------------------------------- HTTP
class Client:
    """One keep-alive connection per thread."""

    def __init__(self, base):
        assert base.startswith("http://")
        hostport = base[len("http://"):].rstrip("/")
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.local = threading.local()

    def _conn(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            self.local.conn = conn
        return conn

    def call(self, method, path, body=None, token=None):
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = "Bearer " + token
        for attempt in range(2):
            conn = self._conn()
            try:
                conn.request(method, API + path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
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
        return resp.status, payload


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.problems = {}
        self.ok = 0

    def problem(self, step, status, payload):
        code = payload.get("code") if isinstance(payload, dict) else None
        key = f"{step}: HTTP {status} {code}"
        with self.lock:
            first = key not in self.problems
            self.problems[key] = self.problems.get(key, 0) + 1
        if first:
            print(f"  unexpected answer {key}: {json.dumps(payload)[:300]}", file=sys.stderr)

    def success(self):
        with self.lock:
            self.ok += 1

    def report(self, what, count, started):
        took = time.time() - started
        print(f"  {what}: {self.ok}/{count} ok in {took:.1f}s", file=sys.stderr)
        for key, n in sorted(self.problems.items()):
            print(f"  PROBLEM {key} x{n}", file=sys.stderr)


def username(prefix, i):
    return f"{prefix}-{i:06d}"


def register(client, tally, name):
    status, body = client.call("POST", "/auth/register", {"username": name, "password": PASSWORD})
    if status != 201 or not body or "pending_token" not in body:
        tally.problem("register", status, body)
        return None
    return body["pending_token"]


def setup(client, tally, pending):
    status, body = client.call("POST", "/2fa/setup", token=pending)
    if status != 200 or not body or "secret" not in body:
        tally.problem("setup", status, body)
        return None
    return body["secret"]


def run_parallel(count, workers, job):
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(job, range(count)))


def write_lines(path, rows):
    with open(path, "w") as out:
        for row in rows:
            if row is not None:
                out.write("\t".join(row) + "\n")


# ----------------------------------------------------------------- commands
def cmd_freeport(_args):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def cmd_users(args):
    """Registers users (no 2FA) and writes their names."""
    client, tally, started = Client(args.base), Tally(), time.time()

    def job(i):
        name = username(args.prefix, i)
        if register(client, tally, name) is None:
            return None
        tally.success()
        return (name,)

    rows = run_parallel(args.count, args.workers, job)
    write_lines(args.out, rows)
    tally.report("registered", args.count, started)
    return 0 if tally.ok else 1


def cmd_enroll(args):
    """register → setup → verify with the current code; writes access tokens."""
    client, tally, started = Client(args.base), Tally(), time.time()

    def job(i):
        name = username(args.prefix, i)
        pending = register(client, tally, name)
        secret = pending and setup(client, tally, pending)
        if not secret:
            return None
        status, body = client.call("POST", "/2fa/verify", {"code": totp(secret)}, token=pending)
        if status != 200 or not body or "access_token" not in body:
            tally.problem("verify", status, body)
            return None
        tally.success()
        return (body["access_token"], name)

    rows = run_parallel(args.count, args.workers, job)
    write_lines(args.out, rows)
    tally.report("enrolled", args.count, started)
    return 0 if tally.ok else 1


def cmd_pending(args):
    """Registers users; writes each pending token (and secret with --setup)."""
    client, tally, started = Client(args.base), Tally(), time.time()

    def job(i):
        name = username(args.prefix, i)
        pending = register(client, tally, name)
        if not pending:
            return None
        if not args.setup:
            tally.success()
            return (pending, name)
        secret = setup(client, tally, pending)
        if not secret:
            return None
        tally.success()
        return (pending, secret)

    rows = run_parallel(args.count, args.workers, job)
    write_lines(args.out, rows)
    tally.report("registered" + (" and set up" if args.setup else ""), args.count, started)
    return 0 if tally.ok else 1


def cmd_codes(args):
    """(pending token, secret) lines → (pending token, current code) lines."""
    now = time.time()
    rows = []
    with open(args.input) as src:
        for line in src:
            token, secret = line.rstrip("\n").split("\t")[:2]
            rows.append((token, totp(secret, now)))
    write_lines(args.out, rows)
    print(f"  codes for step {int(now // 30)} ({30 - now % 30:.0f}s of it left; "
          f"the next step still accepts them)", file=sys.stderr)
    return 0


def _bcrypt_worker(job):
    cost, seconds, password = job
    import bcrypt  # the venv's package; same Rust bcrypt crate the server uses

    hashed = bcrypt.hashpw(password, bcrypt.gensalt(rounds=cost))
    assert bcrypt.checkpw(password, hashed)
    count, started, cpu_started = 0, time.perf_counter(), time.process_time()
    while True:
        ok = bcrypt.checkpw(password, hashed)
        count += 1
        elapsed = time.perf_counter() - started
        if not ok:
            raise SystemExit("bcrypt verification failed")
        if elapsed >= seconds:
            return count, elapsed, time.process_time() - cpu_started


def cmd_bcrypt_raw(args):
    """Raw bcrypt verifications/s on --procs processes, 44-byte input like
    the server's HMAC-SHA256-then-base64 pre-hash. Prints two numbers: the
    total wall-clock rate, and verifications per CPU-second."""
    import multiprocessing

    import bcrypt

    digest = hmac.new(b"otpgate/password/v1", PASSWORD.encode(), hashlib.sha256).digest()
    password = base64.b64encode(digest)
    assert len(password) == 44
    with multiprocessing.Pool(args.procs) as pool:
        results = pool.map(_bcrypt_worker, [(args.cost, args.seconds, password)] * args.procs)
    total = sum(count / elapsed for count, elapsed, _ in results)
    per_cpu_second = sum(count for count, _, _ in results) / sum(cpu for _, _, cpu in results)
    per = ", ".join(f"{count} in {elapsed:.2f}s ({cpu:.2f}s CPU)" for count, elapsed, cpu in results)
    print(f"  bcrypt {bcrypt.__version__} cost {args.cost}: {per}; "
          f"{1000 / per_cpu_second:.1f} ms CPU per verification", file=sys.stderr)
    # verifications/s on all processes (wall clock), and per CPU-second
    print(f"{total:.3f} {per_cpu_second:.4f}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("freeport").set_defaults(func=cmd_freeport)
    for name, func in (("users", cmd_users), ("enroll", cmd_enroll), ("pending", cmd_pending)):
        p = sub.add_parser(name)
        p.add_argument("--base", required=True)
        p.add_argument("--count", type=int, required=True)
        p.add_argument("--prefix", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--workers", type=int, default=16)
        if name == "pending":
            p.add_argument("--setup", action="store_true")
        p.set_defaults(func=func)
    p = sub.add_parser("codes")
    p.add_argument("--in", dest="input", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_codes)
    p = sub.add_parser("bcrypt-raw")
    p.add_argument("--cost", type=int, required=True)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--procs", type=int, default=os.cpu_count() or 2)
    p.set_defaults(func=cmd_bcrypt_raw)
    args = parser.parse_args()
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
