#!/usr/bin/env python3
"""Client-side helpers for bench/run.sh (standard library only).

Prepares the state each wrk run needs (users, pending tokens, access
tokens, TOTP codes) against a running otpgate, and measures raw bcrypt.

  otpbench.py freeport
  otpbench.py users    --base URL --count N --prefix P --out FILE
  otpbench.py enroll   --base URL --count N --prefix P --out FILE
  otpbench.py pending  --base URL --count N --prefix P --out FILE [--setup]
  otpbench.py codes    --in FILE --out FILE
  otpbench.py relogin  --base URL --in FILE --out FILE [--devices FILE]
  otpbench.py startup  --bin PATH --cwd DIR --runs N --log FILE [--env NAME=VALUE ...]
  otpbench.py bcrypt-raw --cost C --seconds S --procs N   (needs the bcrypt package)
  otpbench.py report   --rows FILE --meta FILE [--text FILE] [--markdown FILE] [--svg FILE]

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
STEP = 30  # TOTP period, seconds


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
        return (pending, secret, name)

    rows = run_parallel(args.count, args.workers, job)
    write_lines(args.out, rows)
    tally.report("registered" + (" and set up" if args.setup else ""), args.count, started)
    return 0 if tally.ok else 1


def cmd_codes(args):
    """(pending token, secret, name) lines → (pending token, current code,
    its step, secret, name) lines: the first two are what wrk sends, the
    rest is what `relogin` needs afterwards."""
    now = time.time()
    step = int(now // STEP)
    rows = []
    with open(args.input) as src:
        for line in src:
            token, secret, name = line.rstrip("\n").split("\t")[:3]
            rows.append((token, totp_at_step(secret, step), str(step), secret, name))
    write_lines(args.out, rows)
    print(f"  codes for step {step} ({STEP - now % STEP:.0f}s of it left; "
          f"the next step still accepts them)", file=sys.stderr)
    return 0


def jwt_sub(token):
    """The `sub` claim of a JWT (not verified: only to match tokens up)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def totp_at_step(secret_b32, step):
    return totp(secret_b32, at=step * STEP)


def cmd_relogin(args):
    """Users who have just enabled 2FA (the `codes` file of their first
    verify) sign in again: a password login each (→ a pending token,
    next_step verify_2fa), then, right after the last login, a code each
    that the server will take. Writes (pending token, code) lines.

    The server accepts, per authenticator, the code of a step within ±1 of
    its current step and newer than the last step it accepted
    (src/auth/totp.rs, matching_step; the newest matching step in the
    window is the one recorded). The first verify recorded step e (the
    step the code was computed for; e + 1 if that step's code happens to
    be the same number). The code sent now is for step c = max(e + 1, s),
    s the current step: so c is s (a user's fresh code) or, while the
    enrolment's step is still current, s + 1. A code for s is accepted
    while the server is in s-1..s+1 and one for s + 1 in s..s+2: either
    way for 30 s or more from now, so a burst that crosses one 30-s
    boundary still gets only 200s."""
    client, tally, started = Client(args.base), Tally(), time.time()
    # --devices: the (access token, device token) of each first verify; a
    # returning user's client sends its device token with the login (then
    # the sign-in writes no new device), matched to the user by the `sub`
    # of the access token and of the first pending token.
    devices = {}
    if args.devices:
        with open(args.devices) as src:
            for line in src:
                access, _, device = line.rstrip("\n").partition("\t")
                if device and device != "-":
                    devices[jwt_sub(access)] = device
    users = []
    with open(args.input) as src:
        for line in src:
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 5:
                users.append((fields[4], fields[3], int(fields[2]), devices.get(jwt_sub(fields[0]))))
    with_device = sum(1 for user in users if user[3])

    def job(i):
        name, secret, step, device = users[i]
        body = {"username": name, "password": PASSWORD}
        if device:
            body["device_token"] = device
        status, body = client.call("POST", "/auth/login", body)
        if status != 200 or not body or "pending_token" not in body:
            tally.problem("login", status, body)
            return None
        if body.get("next_step") != "verify_2fa":
            tally.problem("login next_step " + str(body.get("next_step")), status, body)
            return None
        tally.success()
        return (body["pending_token"], secret, step)

    logged_in = [row for row in run_parallel(len(users), args.workers, job) if row]
    tally.report(f"signed in again (password step; {with_device} with the device token of their first verify)",
                 len(users), started)
    now = time.time()
    current = int(now // STEP)
    rows, ahead = [], 0
    for token, secret, enrolled in logged_in:
        last = enrolled + 1 if totp_at_step(secret, enrolled + 1) == totp_at_step(secret, enrolled) else enrolled
        use = max(last + 1, current)
        ahead += use > current
        rows.append((token, totp_at_step(secret, use)))
    write_lines(args.out, rows)
    print(f"  codes for step {current} ({STEP - now % STEP:.0f}s of it left), "
          f"{ahead} of {len(rows)} for step {current + 1} (those whose first verify was in step {current})",
          file=sys.stderr)
    return 0 if tally.ok else 1


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


# ------------------------------------------------------------ start-up time
def _readyz_status(port):
    """The status of GET /readyz on 127.0.0.1:port, or None if nothing
    answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            head = b""
            while b"\r\n" not in head:
                chunk = sock.recv(256)
                if not chunk:
                    break
                head += chunk
    except OSError:
        return None
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def _vmhwm_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cmd_startup(args):
    """Starts the server --runs times in a row on the same data (each one
    stopped with SIGTERM before the next), and times each from just before
    the exec to the first 200 of GET /readyz, polled every --interval-ms.
    Prints one line per start to stderr and, on stdout,
    `best_ms median_ms worst_ms peak_rss_mib failures`."""
    import signal
    import statistics
    import subprocess

    env = dict(item.split("=", 1) for item in args.env)
    times, failures, peak = [], 0, 0.0
    for run in range(1, args.runs + 1):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with open(args.log, "ab") as log:
            log.write(f"--- start {run} of {args.runs} on port {port}\n".encode())
            log.flush()
            started = time.perf_counter()
            proc = subprocess.Popen([args.bin, "serve", "--bind", f"127.0.0.1:{port}"], cwd=args.cwd,
                                    env=env, stdout=log, stderr=subprocess.STDOUT)
            ready, first_status = None, None
            while time.perf_counter() - started < args.timeout:
                if proc.poll() is not None:
                    break
                status = _readyz_status(port)
                if status is not None and first_status is None:
                    first_status = status
                if status == 200:
                    ready = (time.perf_counter() - started) * 1000
                    break
                time.sleep(args.interval_ms / 1000)
            rss = _vmhwm_mib(proc.pid)
            peak = max(peak, rss)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        if ready is None:
            failures += 1
            print(f"  PROBLEM start {run}: no 200 from /readyz within {args.timeout:.0f}s "
                  f"(first answer: {first_status}; exit status {rc})", file=sys.stderr)
            continue
        if rc not in (0, -signal.SIGTERM):
            failures += 1
            print(f"  PROBLEM start {run}: exit status {rc} on SIGTERM", file=sys.stderr)
        extra = "" if first_status == 200 else f" (answered {first_status} first)"
        print(f"  start {run}: /readyz 200 after {ready:.1f} ms{extra}; peak RSS {rss:.1f} MiB", file=sys.stderr)
        times.append(ready)
    if not times:
        print(f"nan nan nan {peak:.1f} {failures}")
        return 1
    print(f"{min(times):.1f} {statistics.median(times):.1f} {max(times):.1f} {peak:.1f} {failures}")
    return 0


# ----------------------------------------------------------------- report
BACKENDS = (("sqlite", "SQLite"), ("postgres", "PostgreSQL"))


def _num(raw):
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def _fmt(value, unit):
    v = _num(value)
    if v is None:
        return "n/a"
    if unit == "/s":
        text = f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"
    elif unit == "ms":
        text = f"{v:.2f}" if v < 10 else f"{v:.1f}"
    else:
        text = f"{v:.1f}"
    return f"{text} {unit}" if unit else text


def _target(target, unit):
    if not target:
        return "-"
    op, value = target.split()
    v = float(value)
    text = f"{v:,.0f}" if v == int(v) else f"{v:g}"
    return f"{'≥' if op == '>=' else '≤'} {text} {unit}"


def _verdict(value, target):
    v = _num(value)
    if not target:
        return "-"
    if v is None:
        return "n/a"
    op, t = target.split()
    ok = v >= float(t) if op == ">=" else v <= float(t)
    return "meets" if ok else "MISSES"


def _rows(path):
    rows = []
    with open(path) as src:
        for line in src:
            if not line.strip():
                continue
            f = (line.rstrip("\n").split("\t") + [""] * 8)[:8]
            rows.append(dict(key=f[0], label=f[1], unit=f[2], chart=f[7],
                             sqlite=(f[3], f[4]), postgres=(f[5], f[6])))
    return rows


def _cells(row, backend):
    value, target = row[backend]
    return _fmt(value, row["unit"]), _target(target, row["unit"]), _verdict(value, target)


def _text_table(rows):
    w = max(len(r["label"]) for r in rows)
    head = f"{'figure':<{w}}  " + "  |  ".join(
        f"{title:>13} {'target':>13} {'verdict':<7}" for _, title in BACKENDS)
    out = [head, "-" * len(head)]
    for r in rows:
        cells = []
        for backend, _ in BACKENDS:
            value, target, verdict = _cells(r, backend)
            cells.append(f"{value:>13} {target:>13} {verdict:<7}")
        out.append(f"{r['label']:<{w}}  " + "  |  ".join(cells))
    return "\n".join(out)


def _markdown_table(rows):
    out = ["| figure | SQLite | target | verdict | PostgreSQL | target | verdict |",
           "|---|--:|--:|---|--:|--:|---|"]
    for r in rows:
        cells = []
        for backend, _ in BACKENDS:
            value, target, verdict = _cells(r, backend)
            verdict = f"**{verdict}**" if verdict == "MISSES" else verdict
            cells += [value, target, verdict]
        label = r["label"].replace("|", "\\|")
        if label.startswith(" "):
            label = "&nbsp;&nbsp;&nbsp;&nbsp;" + label.lstrip()
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _svg_chart(rows, title):
    """Grouped bars, requests/s per scenario, SQLite and PostgreSQL side by
    side, on a log scale, each bar labelled with its value."""
    import math
    from xml.sax.saxutils import escape

    items = [r for r in rows if r["chart"]]
    values = [_num(r[b][0]) for r in items for b, _ in BACKENDS]
    top = max([v for v in values if v] or [10])
    decades = max(1, math.ceil(math.log10(top * 1.5)))
    left, right, top_pad, bottom = 70, 20, 60, 56
    group_w, bar_w = 96, 34
    plot_h = 380
    width = left + right + group_w * len(items)
    height = top_pad + plot_h + bottom
    colours = {"sqlite": "#3b6ea5", "postgres": "#e07b39"}

    def y(v):
        return top_pad + plot_h - plot_h * max(0.0, math.log10(max(v, 1))) / decades

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">'
           f'{escape(title)}</text>']
    # legend
    lx = left
    for backend, name in BACKENDS:
        out.append(f'<rect x="{lx}" y="34" width="12" height="12" fill="{colours[backend]}"/>')
        out.append(f'<text x="{lx + 16}" y="44">{name}</text>')
        lx += 110
    out.append(f'<text x="{lx + 10}" y="44" fill="#555">requests/s, log scale; n/a: not run</text>')
    # grid and axis
    for d in range(decades + 1):
        for m in (1, 2, 5):
            v = m * 10 ** d
            if v > 10 ** decades:
                continue
            gy = y(v)
            if m == 1:
                out.append(f'<line x1="{left}" y1="{gy:.1f}" x2="{width - right}" y2="{gy:.1f}" stroke="#bbb"/>')
                out.append(f'<text x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end">{v:,}</text>')
            else:
                out.append(f'<line x1="{left}" y1="{gy:.1f}" x2="{width - right}" y2="{gy:.1f}" '
                           f'stroke="#e4e4e4"/>')
    out.append(f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - right}" y2="{top_pad + plot_h}" '
               f'stroke="#333"/>')
    out.append(f'<text x="16" y="{top_pad + plot_h / 2}" transform="rotate(-90 16 {top_pad + plot_h / 2})" '
               f'text-anchor="middle">requests/s</text>')
    for i, r in enumerate(items):
        gx = left + i * group_w + (group_w - 2 * bar_w - 4) / 2
        for j, (backend, _) in enumerate(BACKENDS):
            v = _num(r[backend][0])
            bx = gx + j * (bar_w + 4)
            if v is None or v <= 0:
                out.append(f'<text x="{bx + bar_w / 2:.1f}" y="{top_pad + plot_h - 4}" '
                           f'text-anchor="middle" fill="#888">n/a</text>')
                continue
            by = y(v)
            out.append(f'<rect x="{bx:.1f}" y="{by:.1f}" width="{bar_w}" '
                       f'height="{top_pad + plot_h - by:.1f}" fill="{colours[backend]}">'
                       f'<title>{escape(r["label"])}, {BACKENDS[j][1]}: {_fmt(v, "/s")}</title></rect>')
            label = f"{v:,.0f}" if v >= 100 else f"{v:.1f}"
            out.append(f'<text x="{bx + bar_w / 2:.1f}" y="{by - 4:.1f}" text-anchor="middle" '
                       f'font-size="10">{label}</text>')
        cx = left + i * group_w + group_w / 2
        for k, line in enumerate(r["chart"].split("\\n")):
            out.append(f'<text x="{cx:.1f}" y="{top_pad + plot_h + 16 + 13 * k}" text-anchor="middle">'
                       f'{escape(line)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def cmd_report(args):
    """Renders the summary table (text), RESULTS.md and the chart from the
    rows bench/run.sh wrote (tab-separated: key, label, unit, SQLite value,
    SQLite target, PostgreSQL value, PostgreSQL target, chart label; a
    target is `>= N` or `<= N`, empty for an informational figure) and a
    file of everything else, one `kind<TAB>value` a line (kinds: date,
    chart, chart_title, command, note, problem, warning, and
    `run<TAB>name<TAB>value`)."""
    rows = _rows(args.rows)
    meta = {"run": [], "notes": [], "problems": [], "warnings": []}
    with open(args.meta) as src:
        for line in src:
            kind, _, rest = line.rstrip("\n").partition("\t")
            if kind == "run":
                meta["run"].append(tuple(rest.split("\t", 1)))
            elif kind in ("note", "problem", "warning"):
                meta[kind + "s"].append(rest)
            elif kind:
                meta[kind] = rest
    if args.text:
        with open(args.text, "w") as out:
            out.write(_text_table(rows) + "\n")
    if args.svg:
        with open(args.svg, "w") as out:
            out.write(_svg_chart(rows, meta.get("chart_title", "otpgate requests/s")))
    if args.markdown:
        m = meta
        lines = [
            "# otpgate benchmark results",
            "",
            f"Written by `bench/run.sh` on {m['date']}; do not edit by hand, run it again "
            "(see [bench/README.md](README.md)).",
            "",
            f"![requests/s per scenario, SQLite and PostgreSQL]({m['chart']})",
            "",
            "## Figures",
            "",
            _markdown_table(rows),
            "",
            "Targets and verdicts are per backend; `-` is an informational figure and `n/a` one "
            "that was not measured (for example the PostgreSQL column of a run without `--postgres`).",
            "",
        ]
        if m.get("notes"):
            lines += ["## Notes", ""] + [f"- {note}" for note in m["notes"]] + [""]
        lines += ["## Problems and warnings", ""]
        if m.get("problems"):
            lines += [f"- PROBLEM: {p}" for p in m["problems"]]
        else:
            lines.append("- No server problems seen (every answer was the expected one; no crash; "
                         "no warnings logged).")
        lines += [f"- {w}" for w in m.get("warnings", [])]
        lines += ["", "## Run", ""]
        lines += [f"- {key}: {value}" for key, value in m["run"]]
        lines += ["", "Command:", "", "```sh", m["command"], "```", ""]
        with open(args.markdown, "w") as out:
            out.write("\n".join(lines))
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
    p = sub.add_parser("relogin")
    p.add_argument("--base", required=True)
    p.add_argument("--in", dest="input", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--devices", help="(access token, device token) lines of the first verify")
    p.add_argument("--workers", type=int, default=16)
    p.set_defaults(func=cmd_relogin)
    p = sub.add_parser("startup")
    p.add_argument("--bin", required=True)
    p.add_argument("--cwd", required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--log", required=True)
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE, the server's whole environment")
    p.add_argument("--interval-ms", type=float, default=2)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=cmd_startup)
    p = sub.add_parser("report")
    p.add_argument("--rows", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--text")
    p.add_argument("--markdown")
    p.add_argument("--svg")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("bcrypt-raw")
    p.add_argument("--cost", type=int, required=True)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--procs", type=int, default=os.cpu_count() or 2)
    p.set_defaults(func=cmd_bcrypt_raw)
    args = parser.parse_args()
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
