"""Can the connector reach Visma and Marketo with these credentials? Four probes, each pass/fail with a reason:
a Visma Connect token, one customer list call with ``ipp-company-id``, a Marketo token, and Marketo's
company describe. ``ml-connector ping`` and ``doctor`` run them.

No secret or token is ever part of a result: details are built from server messages and scrubbed of every
credential value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
from pydantic import BaseModel, ValidationError

from ml_connector.config import ConnectionConfig, MarketoSettings, VismaSettings
from ml_connector.marketo.client import MarketoClient
from ml_connector.marketo.client import forget_tokens as forget_marketo_tokens
from ml_connector.marketo.models import MarketoCredentials
from ml_connector.runtime import Runtime
from ml_connector.visma.client import VismaClient
from ml_connector.visma.client import forget_tokens as forget_visma_tokens
from ml_connector.visma.models import VismaCredentials


class Check(BaseModel):
    name: str
    ok: bool
    detail: str
    connection: str | None = None
    advice: str | None = None  # what to do when it fails


ADVICE = {
    "Visma": "check client_id, client_secret, tenant_id (the company tenant) and company_id in the Visma secret",
    "Marketo": "check client_id and client_secret in the Marketo secret, and the Munchkin ID",
}


def check_credentials(visma: dict[str, Any], marketo: dict[str, Any], connection: str | None = None) -> list[Check]:
    """The four probes; ``visma``/``marketo`` hold the secret's fields plus optional endpoint settings
    (``base_url``, ``token_url``, ``send_company_header``; ``munchkin_id``, ``endpoint_override``)."""
    # A probe must really ask for tokens: one cached in this process for the same client would pass a wrong secret.
    forget_visma_tokens()
    forget_marketo_tokens()
    secrets = _secret_values(visma, marketo)
    results: list[Check] = []
    try:
        visma_settings = VismaSettings.model_validate({"secret_id": "ping", **_pick(visma, VismaSettings)})
        client = VismaClient(VismaCredentials.model_validate(visma), base_url=visma_settings.base_url,
                             token_url=visma_settings.token_url,
                             send_company_header=visma_settings.send_company_header, timeout=20)
        results.append(_check("Visma Connect token", lambda: _visma_token(client), secrets))
        results.append(_check("Visma customer list (ipp-company-id)", lambda: _visma_list(client), secrets))
    except ValidationError as exc:
        results.append(Check(name="Visma settings", ok=False, detail=_scrub(str(exc), secrets)))
    try:
        marketo_settings = MarketoSettings.model_validate({"secret_id": "ping", **_pick(marketo, MarketoSettings)})
        mclient = MarketoClient(marketo_settings.munchkin_id, MarketoCredentials.model_validate(marketo),
                                endpoint_override=marketo_settings.endpoint_override)
        results.append(_check("Marketo token", lambda: _marketo_token(mclient), secrets))
        results.append(_check("Marketo company describe", lambda: _marketo_describe(mclient), secrets))
    except ValidationError as exc:
        results.append(Check(name="Marketo settings", ok=False, detail=_scrub(str(exc), secrets)))
    return [c.model_copy(update={"connection": connection,
                                 "advice": None if c.ok else ADVICE[c.name.split()[0]]}) for c in results]


def check_connection(runtime: Runtime, connection: ConnectionConfig) -> list[Check]:
    """The probes with a deployed connection's own secrets and endpoints. The secrets are read from Secrets
    Manager now, past the runtime's cache and without filling it: a check must see what is stored, and a
    secret it finds wrong must not linger for the functions' next five minutes."""
    v, m = connection.visma, connection.marketo
    found: dict[str, dict[str, Any]] = {}
    client = boto3.client("secretsmanager")
    for system, secret_id in (("Visma", v.secret_id), ("Marketo", m.secret_id)):
        try:
            value = json.loads(client.get_secret_value(SecretId=secret_id)["SecretString"])
        except Exception as exc:  # noqa: BLE001 - a missing or unreadable secret is a failed check, said why
            return [Check(name=f"{system} secret", ok=False, connection=connection.id,
                          detail=f"{secret_id}: {type(exc).__name__}",
                          advice=f"put the {system} credentials into secret {secret_id} (see README, Deploy)")]
        found[system] = value if isinstance(value, dict) else {}
    visma = {**found["Visma"], "base_url": v.base_url, "token_url": v.token_url,
             "send_company_header": v.send_company_header}
    marketo = {**found["Marketo"], "munchkin_id": m.munchkin_id, "endpoint_override": m.endpoint_override}
    return check_credentials(visma, marketo, connection.id)


def _check(name: str, probe: Callable[[], str], secrets: list[str]) -> Check:
    try:
        return Check(name=name, ok=True, detail=_scrub(probe(), secrets))
    except Exception as exc:  # noqa: BLE001 - every failure is a FAIL line with its reason
        return Check(name=name, ok=False, detail=_scrub(f"{type(exc).__name__}: {exc}", secrets))


def _visma_token(client: VismaClient) -> str:
    client._token()  # noqa: SLF001 - the check is exactly "can we get a token"
    return "token received"


def _visma_list(client: VismaClient) -> str:
    body = client.get("/v1/customer", {"pageNumber": 1, "pageSize": 1})
    count = len(body) if isinstance(body, list) else len(body.get("records") or [])
    total = (body[0].get("metadata") or {}).get("totalCount") if isinstance(body, list) and body else None
    mode = ("with the ipp-company-id header" if client.sends_company_header
            else "without ipp-company-id (the gateway refused it and fixes the company by the token's tenant)")
    return (f"HTTP 200, {count} record(s) on page 1" + (f", {total} customers in all" if total is not None else "")
            + f"; works {mode}")


def _marketo_token(client: MarketoClient) -> str:
    client._token()  # noqa: SLF001
    return f"token received from {client.base_url}"


def _marketo_describe(client: MarketoClient) -> str:
    described = client.describe_companies()
    return f"{len(described.fields)} company fields, dedupe on {', '.join(described.dedupe_fields)}"


def _pick(data: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k in model.model_fields and k != "secret_id" and v is not None}


def _secret_values(visma: dict[str, Any], marketo: dict[str, Any]) -> list[str]:
    values = [str(visma.get("client_secret") or ""), str(marketo.get("client_secret") or "")]
    return [v for v in values if len(v) >= 4]


def _scrub(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = text.replace(value, "***")
    return text
