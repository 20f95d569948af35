"""Identity (reference §1): client-credentials tokens, reused while valid, and the REST token check."""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from sandbox.http import Request, Response
from sandbox.marketo.errors import MarketoError

SCOPE = "apiuser@example.com"  # the API-only user that owns the sandbox's custom service


def make_credentials(munchkin_id: str, seed: int) -> dict[str, str]:
    """Deterministic LaunchPoint-style credentials: a UUID client id and a 32-character secret."""
    rng = random.Random(f"{munchkin_id}/{seed}")
    client_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    secret = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(32))
    return {"client_id": client_id, "client_secret": secret}


class Tokens:
    """Issued tokens and their expiry. While the current token is valid, identity hands out the same
    token with its remaining lifetime; a new one is minted only once it has expired."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._expiry: dict[str, float] = {}  # token -> expiry on the clock
        self._current: str | None = None
        self._lock = threading.Lock()

    def issue(self) -> tuple[str, int]:
        with self._lock:
            now = self._clock()
            current = self._current
            if current is not None and self._expiry[current] > now:
                return current, max(0, math.floor(self._expiry[current] - now))
            token = f"{uuid.uuid4()}:ab"
            self._expiry[token] = now + self.ttl
            self._current = token
            return token, math.floor(self.ttl)

    def check(self, token: str | None) -> None:
        """Raise 600 (no token), 601 (unknown) or 602 (expired); return for a valid token."""
        if not token:
            raise MarketoError("600")
        with self._lock:
            expiry = self._expiry.get(token)
            now = self._clock()
        if expiry is None:
            raise MarketoError("601")
        if expiry <= now:
            raise MarketoError("602")

    def issued(self) -> list[str]:
        """Every token handed out so far (tests check that none leaks into logs or output)."""
        with self._lock:
            return list(self._expiry)

    def expire_all(self) -> None:
        with self._lock:
            past = self._clock() - 1
            self._expiry = dict.fromkeys(self._expiry, past)
            self._current = None

    def revoke_all(self) -> None:
        with self._lock:
            self._expiry.clear()
            self._current = None


def identity_params(request: Request) -> dict[str, str]:
    """Query parameters as documented; a form-encoded POST body is accepted too (Segment sends one)."""
    form = request.form() if request.method == "POST" and request.body else {}
    return {**form, **request.query}


def identity_response(params: dict[str, Any], credentials: dict[str, str], tokens: Tokens) -> Response:
    if params.get("grant_type") != "client_credentials":
        return Response(400, {"error": "invalid_request", "error_description": "Missing or unsupported grant type"})
    if params.get("client_id") != credentials["client_id"]:
        return Response(401, {"error": "unauthorized",
                              "error_description": f"No client with requested id: {params.get('client_id')}"})
    if params.get("client_secret") != credentials["client_secret"]:
        return Response(401, {"error": "invalid_client", "error_description": "Bad client credentials"})
    token, expires_in = tokens.issue()
    return Response(200, {"access_token": token, "token_type": "bearer", "expires_in": expires_in, "scope": SCOPE})
