"""The complete flow through a client generated from openapi/openapi.json.

`.ci/run` generates `otpgate_client` with openapi-python-client, installs it
and runs this file (plain python or pytest) against a live server at
OTPGATE_URL. No hand-written HTTP: every call goes through the generated
functions and models; the TOTP code comes from pyotp, independent of the
server's implementation.
"""

from __future__ import annotations

import os
import sys
import uuid

import pyotp
from otpgate_client import AuthenticatedClient, Client
from otpgate_client.api.account import get_current_user
from otpgate_client.api.auth import logout, register_user
from otpgate_client.api.two_factor import setup_two_factor, verify_two_factor
from otpgate_client.models import (
    CodeRequest,
    NextStepName,
    Problem,
    RegisterRequest,
    RegisterResponse,
    SetupResponse,
    TokenResponse,
    TokenType,
    User,
)

BASE_URL = os.environ.get("OTPGATE_URL", "http://127.0.0.1:8080")
PASSWORD = "correct horse battery staple"


def test_register_setup_verify_me_logout() -> None:
    username = f"client-{uuid.uuid4().hex[:12]}"
    anonymous = Client(base_url=BASE_URL, raise_on_unexpected_status=True)

    # Register: a user without 2FA and a pending token.
    registered = register_user.sync(
        client=anonymous, body=RegisterRequest(username=username, password=PASSWORD)
    )
    assert isinstance(registered, RegisterResponse), registered
    assert registered.user.username == username
    assert registered.user.two_factor_enabled is False
    assert registered.token_type == TokenType.BEARER
    assert registered.next_step == NextStepName.SETUP_2FA
    pending = AuthenticatedClient(
        base_url=BASE_URL, token=registered.pending_token, raise_on_unexpected_status=True
    )

    # Setup: the secret and its otpauth URI.
    setup = setup_two_factor.sync(client=pending)
    assert isinstance(setup, SetupResponse), setup
    assert (setup.algorithm, setup.digits, setup.period) == ("SHA1", 6, 30)
    parsed = pyotp.parse_uri(setup.otpauth_uri)
    assert parsed.secret == setup.secret
    assert setup.qr_data_uri == "data:image/png;base64," + setup.qr_png_base64

    # Verify with a code computed by pyotp: the first access token.
    tokens = verify_two_factor.sync(
        client=pending, body=CodeRequest(code=pyotp.TOTP(setup.secret).now())
    )
    assert isinstance(tokens, TokenResponse), tokens
    assert tokens.token_type == TokenType.BEARER
    assert len(tokens.recovery_codes) == 10
    access = AuthenticatedClient(
        base_url=BASE_URL, token=tokens.access_token, raise_on_unexpected_status=True
    )

    # The current user, now with 2FA on.
    me = get_current_user.sync(client=access)
    assert isinstance(me, User), me
    assert me.id == registered.user.id
    assert me.username == username
    assert me.two_factor_enabled is True
    assert me.created_at == registered.user.created_at

    # Logout: 204, and the access token is refused from then on.
    ended = logout.sync_detailed(client=access)
    assert ended.status_code == 204, ended
    refused = get_current_user.sync(client=access)
    assert isinstance(refused, Problem), refused
    assert (refused.status, refused.code) == (401, "invalid_token")


if __name__ == "__main__":
    test_register_setup_verify_me_logout()
    print("client: 1 passed, 0 failed")
    sys.exit(0)
