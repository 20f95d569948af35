"""`ml-connector ping`: add your credentials, ping your real systems, see if we fit.

Four checks, each pass/fail with a reason: a Visma Connect token, one customer list call with
``ipp-company-id``, a Marketo token, and Marketo's company describe. No secret or token is ever part
of the output: details are built from server messages and scrubbed of every credential value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ml_connector.config import MarketoSettings, VismaSettings
from ml_connector.marketo.client import MarketoClient
from ml_connector.marketo.client import forget_tokens as forget_marketo_tokens
from ml_connector.marketo.models import MarketoCredentials
from ml_connector.visma.client import VismaClient
from ml_connector.visma.client import forget_tokens as forget_visma_tokens
from ml_connector.visma.models import VismaCredentials

if TYPE_CHECKING:  # the sandboxes are imported only when pinged
    from sandbox.marketo import MarketoSandbox
    from sandbox.visma import VismaSandbox


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


class PingCredentials(BaseModel):
    """The credentials file: ``{"visma": {...}, "marketo": {...}}`` (see README, 'Check your systems')."""

    visma: dict[str, Any]
    marketo: dict[str, Any]

    @classmethod
    def of_sandboxes(cls, visma: VismaSandbox, marketo: MarketoSandbox) -> PingCredentials:
        """The credentials that reach the local sandboxes."""
        return cls(visma={**visma.credentials, "base_url": visma.url, "token_url": visma.token_url},
                   marketo={**marketo.credentials, "munchkin_id": marketo.munchkin_id,
                            "endpoint_override": marketo.url})


def run_checks(credentials_file: str | None) -> list[Check]:
    if credentials_file is None:
        with _sandbox_credentials() as creds:
            return _checks(creds)
    try:
        creds = PingCredentials.model_validate_json(Path(credentials_file).read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        return [Check(name="credentials file", ok=False, detail=f"{credentials_file}: {exc}")]
    return _checks(creds)


def _checks(creds: PingCredentials) -> list[Check]:
    # A check must really ask for tokens: one cached in this process for the same client would pass a wrong secret.
    forget_visma_tokens()
    forget_marketo_tokens()
    secrets = _secret_values(creds)
    results: list[Check] = []
    try:
        visma_settings = VismaSettings.model_validate({"secret_id": "ping", **_pick(creds.visma, VismaSettings)})
        visma = VismaClient(VismaCredentials.model_validate(creds.visma), base_url=visma_settings.base_url,
                            token_url=visma_settings.token_url,
                            send_company_header=visma_settings.send_company_header, timeout=20)
        results.append(_check("Visma Connect token", lambda: _visma_token(visma), secrets))
        results.append(_check("Visma customer list (ipp-company-id)", lambda: _visma_list(visma), secrets))
    except ValidationError as exc:
        results.append(Check(name="Visma settings", ok=False, detail=_scrub(str(exc), secrets)))
    try:
        marketo_fields = _pick(creds.marketo, MarketoSettings)
        marketo_settings = MarketoSettings.model_validate({"secret_id": "ping", **marketo_fields})
        marketo = MarketoClient(marketo_settings.munchkin_id, MarketoCredentials.model_validate(creds.marketo),
                                endpoint_override=marketo_settings.endpoint_override)
        results.append(_check("Marketo token", lambda: _marketo_token(marketo), secrets))
        results.append(_check("Marketo company describe", lambda: _marketo_describe(marketo), secrets))
    except ValidationError as exc:
        results.append(Check(name="Marketo settings", ok=False, detail=_scrub(str(exc), secrets)))
    return results


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
    return f"HTTP 200, {count} record(s) on page 1" + (f", {total} customers in all" if total is not None else "")


def _marketo_token(client: MarketoClient) -> str:
    client._token()  # noqa: SLF001
    return f"token received from {client.base_url}"


def _marketo_describe(client: MarketoClient) -> str:
    described = client.describe_companies()
    return f"{len(described.fields)} company fields, dedupe on {', '.join(described.dedupe_fields)}"


def _pick(data: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k in model.model_fields and k != "secret_id"}


def _secret_values(creds: PingCredentials) -> list[str]:
    values = [str(creds.visma.get("client_secret") or ""), str(creds.marketo.get("client_secret") or "")]
    return [v for v in values if len(v) >= 4]


def _scrub(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = text.replace(value, "***")
    return text


@contextlib.contextmanager
def _sandbox_credentials() -> Iterator[PingCredentials]:
    from sandbox.marketo import MarketoSandbox
    from sandbox.visma import VismaSandbox

    with VismaSandbox(seed=1, customers=20, suppliers=5) as visma, MarketoSandbox() as marketo:
        yield PingCredentials.of_sandboxes(visma, marketo)
