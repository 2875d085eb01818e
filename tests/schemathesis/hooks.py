"""Schemathesis 4 hooks for otpgate: real credentials for every operation.

Loaded by `.ci/api-contract` through SCHEMATHESIS_HOOKS. Every generated case gets a
fixture of its own, built over HTTP against the server under test
(OTPGATE_URL), because tokens do not survive fuzzing: a pending token is
spent by a good code and dies after five bad ones, logout and disable revoke
sessions, and a TOTP step is accepted once per user.

- Operations secured with `pending_token` get a fresh pending token: from
  registration (setup), registration + setup (verify), or an enrolled
  user's login (recover).
- Operations secured with `access_token` get a fresh access token of a newly
  enrolled user (register -> setup -> verify with a pyotp code). So a case
  that changes the password or deletes the account only ever touches its own
  throw-away user; for confirming or removing an authenticator the user also
  has a second one, added (and, for removal, confirmed), whose id goes into
  the path when the body is made valid.

For a share of the cases the generated body is then replaced by one that
succeeds (a current TOTP code, a real recovery or refresh token, the real
password), so that success responses are checked against the schema too,
not only errors.
"""

from __future__ import annotations

import os
import random
import threading
import time
import base64
import json
import uuid
from dataclasses import dataclass, field

import httpx
import pyotp
import schemathesis

BASE_URL = os.environ.get("OTPGATE_URL", "http://127.0.0.1:8080")
PASSWORD = "correct horse battery staple"
# Share of cases whose body is replaced by a valid one.
VALID_BODY_SHARE = 0.3

PENDING_OPERATIONS = ("setup_two_factor", "verify_two_factor", "recover_two_factor")
ACCESS_OPERATIONS = (
    "logout",
    "get_current_user",
    "list_security_events",
    "regenerate_recovery_codes",
    "disable_two_factor",
    "list_sessions",
    "revoke_session",
    "change_password",
    "delete_account",
    "list_authenticators",
    "add_authenticator",
    "confirm_authenticator",
    "remove_authenticator",
)
# Operations without a bearer token whose bodies we can make valid from an
# enrolled user.
BODY_OPERATIONS = ("login", "refresh_tokens")

_client = httpx.Client(base_url=BASE_URL, timeout=10.0)
_lock = threading.Lock()
# Fixture of each case, keyed by id(case): set by the auth provider, used by
# `before_call` to make the body valid.
_fixtures: dict[int, "Fixture"] = {}
_rng = random.Random(os.environ.get("OTPGATE_FUZZ_SEED", "otpgate"))


@dataclass
class Fixture:
    username: str
    pending_token: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    secret: str | None = None
    recovery_codes: list[str] = field(default_factory=list)
    verified_at: float = 0.0
    # A second authenticator, for confirm and remove.
    authenticator_id: str | None = None
    authenticator_secret: str | None = None


def session_id(access_token: str) -> str:
    """The `sid` claim of an access token (the caller's session id)."""
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


def _post(path: str, token: str | None = None, body: dict | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = _client.post(path, headers=headers, json=body)
    return response


def _expect(response: httpx.Response, status: int, what: str) -> dict:
    if response.status_code != status:
        raise RuntimeError(f"{what}: expected {status}, got {response.status_code}: {response.text}")
    return response.json() if response.content else {}


def registered() -> Fixture:
    username = f"fuzz-{uuid.uuid4().hex[:16]}"
    body = _expect(
        _post("/api/v1/auth/register", body={"username": username, "password": PASSWORD}),
        201,
        "register",
    )
    return Fixture(username=username, pending_token=body["pending_token"])


def set_up(fixture: Fixture) -> Fixture:
    body = _expect(_post("/api/v1/2fa/setup", fixture.pending_token), 200, "setup")
    fixture.secret = body["secret"]
    return fixture


def enrolled() -> Fixture:
    """A user with two-factor on and a live session (fresh access token)."""
    fixture = set_up(registered())
    code = pyotp.TOTP(fixture.secret).now()
    tokens = _expect(
        _post("/api/v1/2fa/verify", fixture.pending_token, {"code": code}), 200, "verify"
    )
    fixture.pending_token = None
    fixture.access_token = tokens["access_token"]
    fixture.refresh_token = tokens["refresh_token"]
    fixture.recovery_codes = tokens["recovery_codes"]
    fixture.verified_at = time.time()
    return fixture


def logged_in(fixture: Fixture) -> Fixture:
    body = _expect(
        _post("/api/v1/auth/login", body={"username": fixture.username, "password": PASSWORD}),
        200,
        "login",
    )
    fixture.pending_token = body["pending_token"]
    return fixture


def fresh_code(fixture: Fixture) -> str:
    """A code of a step newer than the one accepted at enrolment (the
    server refuses a step it has already accepted); the next step is within
    the accepted window of one step either side."""
    return pyotp.TOTP(fixture.secret).at(fixture.verified_at + 30)


def with_authenticator(fixture: Fixture, confirmed: bool) -> Fixture:
    """Adds a second authenticator (with a code of the first), confirmed
    with a code of its own when asked."""
    body = _expect(
        _post(
            "/api/v1/2fa/authenticators",
            fixture.access_token,
            {"name": "spare", "code": fresh_code(fixture)},
        ),
        201,
        "add authenticator",
    )
    fixture.authenticator_id = body["id"]
    fixture.authenticator_secret = body["secret"]
    if confirmed:
        _expect(
            _post(
                f"/api/v1/2fa/authenticators/{body['id']}/confirm",
                fixture.access_token,
                {"code": pyotp.TOTP(body["secret"]).now()},
            ),
            200,
            "confirm authenticator",
        )
    return fixture


def fixture_for(operation_id: str) -> Fixture:
    if operation_id == "setup_two_factor":
        return registered()
    if operation_id == "verify_two_factor":
        # Now and then without setup, for the 409 `two_factor_setup_required`.
        return registered() if _rng.random() < 0.15 else set_up(registered())
    if operation_id == "recover_two_factor":
        return logged_in(enrolled())
    if operation_id == "confirm_authenticator":
        return with_authenticator(enrolled(), confirmed=False)
    if operation_id == "remove_authenticator":
        return with_authenticator(enrolled(), confirmed=True)
    return enrolled()


def valid_body(operation_id: str, fixture: Fixture | None) -> dict | None:
    if operation_id == "register_user":
        return {"username": f"fuzz-{uuid.uuid4().hex[:16]}", "password": PASSWORD}
    if fixture is None:
        return None
    if operation_id == "verify_two_factor" and fixture.secret:
        return {"code": pyotp.TOTP(fixture.secret).now()}
    if operation_id == "recover_two_factor":
        return {"recovery_code": fixture.recovery_codes[0]}
    if operation_id == "regenerate_recovery_codes":
        return {"code": fresh_code(fixture)}
    if operation_id == "disable_two_factor":
        return {"password": PASSWORD, "code": fresh_code(fixture)}
    if operation_id == "change_password":
        return {
            "current_password": PASSWORD,
            "new_password": "a brand new passphrase",
            "code": fresh_code(fixture),
        }
    if operation_id == "delete_account":
        return {"password": PASSWORD, "code": fresh_code(fixture)}
    if operation_id == "add_authenticator":
        return {"name": f"fuzz-{uuid.uuid4().hex[:8]}", "code": fresh_code(fixture)}
    if operation_id == "confirm_authenticator":
        return {"code": pyotp.TOTP(fixture.authenticator_secret).now()}
    if operation_id == "remove_authenticator":
        # Its own code, a step after the one that confirmed it.
        return {"code": pyotp.TOTP(fixture.authenticator_secret).at(time.time() + 30)}
    if operation_id == "login":
        return {"username": fixture.username, "password": PASSWORD}
    if operation_id == "refresh_tokens":
        return {"refresh_token": fixture.refresh_token}
    return None


@schemathesis.auth(refresh_interval=None).apply_to(operation_id=list(PENDING_OPERATIONS))
class PendingTokenAuth:
    """A fresh pending-2FA token for every case."""

    def get(self, case, context):
        return fixture_for(context.operation.definition.raw["operationId"])

    def set(self, case, fixture, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {fixture.pending_token}"
        with _lock:
            _fixtures[id(case)] = fixture


@schemathesis.auth(refresh_interval=None).apply_to(operation_id=list(ACCESS_OPERATIONS))
class AccessTokenAuth:
    """A fresh access token (a newly enrolled user's session) for every case."""

    def get(self, case, context):
        return fixture_for(context.operation.definition.raw["operationId"])

    def set(self, case, fixture, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {fixture.access_token}"
        with _lock:
            _fixtures[id(case)] = fixture


@schemathesis.hook
def before_call(context, case, kwargs):
    operation_id = case.operation.definition.raw.get("operationId")
    with _lock:
        fixture = _fixtures.pop(id(case), None)
    if operation_id == "revoke_session" and fixture is not None:
        # The caller's own session whenever the case is authenticated (few
        # cases reach this operation): a live one, so that 204 is seen too.
        case.path_parameters = {"id": session_id(fixture.access_token)}
        return
    if _rng.random() >= VALID_BODY_SHARE:
        return
    if fixture is None and operation_id in BODY_OPERATIONS:
        fixture = enrolled()
    body = valid_body(operation_id, fixture)
    if body is not None:
        case.body = body
        case.media_type = "application/json"
        if fixture is not None and fixture.authenticator_id:
            case.path_parameters = {**(case.path_parameters or {}), "id": fixture.authenticator_id}
