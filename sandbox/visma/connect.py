"""Visma Connect's token endpoint (client_credentials) and the tokens it issued.

Two tenants authenticate: the company tenant (whose tokens the ERP API accepts) and a customer tenant
(tokens are issued, but the ERP API answers 401: the classic wrong-tenant mistake, reference §1.1).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from random import Random
from typing import Any

from sandbox.http import Request, Response

READ_SCOPE = "vismanet_erp_service_api:read"
KNOWN_SCOPES = frozenset(f"vismanet_erp_service_api:{a}" for a in ("read", "create", "update", "delete"))


@dataclass(frozen=True)
class Identity:
    client_id: str
    client_secret: str
    company_tenant: str
    customer_tenant: str


def identity_for(seed: int) -> Identity:
    """Deterministic credentials per seed (a test can hard-code nothing and still reproduce a run)."""
    rng = Random(f"visma-connect:{seed}")
    return Identity(
        client_id=f"isv_sandbox_{rng.getrandbits(40):010x}",
        client_secret=base64.urlsafe_b64encode(rng.getrandbits(256).to_bytes(32, "big")).decode().rstrip("="),
        company_tenant=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        customer_tenant=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    )


@dataclass
class Token:
    client_id: str
    tenant_id: str
    expires_at: float  # time.monotonic()

    def valid(self) -> bool:
        return time.monotonic() < self.expires_at


def _oauth_error(error: str, description: str) -> Response:
    return Response(400, {"error": error, "error_description": description})


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


class TokenService:
    def __init__(self, identity: Identity, ttl: int) -> None:
        self.identity = identity
        self.ttl = ttl
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        form = request.form()
        if form.get("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type"})
        if form.get("client_id") != self.identity.client_id or \
                not secrets.compare_digest(form.get("client_secret", ""), self.identity.client_secret):
            return Response(400, {"error": "invalid_client"})
        scopes = form.get("scope", "").split()
        if READ_SCOPE not in scopes or not set(scopes) <= KNOWN_SCOPES:
            return _oauth_error("invalid_scope", f"the scope must include {READ_SCOPE}")
        tenant = form.get("tenant_id", "")
        if tenant not in (self.identity.company_tenant, self.identity.customer_tenant):
            return _oauth_error("invalid_tenant", "unknown tenant_id")
        return Response(200, {"access_token": self._issue(tenant), "expires_in": self.ttl,
                              "token_type": "Bearer", "scope": " ".join(sorted(set(scopes)))},
                        {"Cache-Control": "no-store"})

    def _issue(self, tenant: str) -> str:
        claims = {"iss": "https://connect.visma.com", "client_id": self.identity.client_id, "tenant_id": tenant,
                  "exp": int(time.time()) + self.ttl, "jti": secrets.token_hex(8)}
        token = f"{_b64({'alg': 'RS256', 'typ': 'at+jwt'})}.{_b64(claims)}.{secrets.token_urlsafe(32)}"
        with self._lock:
            self._tokens[token] = Token(self.identity.client_id, tenant, time.monotonic() + self.ttl)
        return token

    def lookup(self, token: str | None) -> Token | None:
        if token is None:
            return None
        with self._lock:
            return self._tokens.get(token)

    def issued(self) -> list[str]:
        """Every token handed out so far (tests check that none leaks into logs or output)."""
        with self._lock:
            return list(self._tokens)

    def expire_all(self) -> None:
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = float("-inf")
