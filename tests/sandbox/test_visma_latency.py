"""The Visma sandbox's steady latency option: every ERP call waits, token requests do not."""

from __future__ import annotations

import time

import requests

from sandbox.visma import VismaSandbox

READ = "vismanet_erp_service_api:read"


def _token(sb: VismaSandbox) -> tuple[str, float]:
    form = {"grant_type": "client_credentials", "client_id": sb.credentials["client_id"],
            "client_secret": sb.credentials["client_secret"], "scope": READ, "tenant_id": sb.credentials["tenant_id"]}
    started = time.monotonic()
    response = requests.post(sb.token_url, data=form, timeout=10)
    response.raise_for_status()
    return str(response.json()["access_token"]), time.monotonic() - started


def _erp_call_seconds(sb: VismaSandbox, token: str) -> float:
    started = time.monotonic()
    response = requests.get(f"{sb.url}/v1/customer", params={"pageSize": 5, "pageNumber": 1}, timeout=10,
                            headers={"Authorization": f"Bearer {token}", "ipp-company-id": sb.company_id})
    assert response.status_code == 200
    return time.monotonic() - started


def test_fixed_latency_applies_to_erp_calls_only() -> None:
    with VismaSandbox(customers=10, suppliers=2, latency=0.15) as sb:
        token, token_s = _token(sb)
        assert token_s < 0.12
        assert 0.15 <= _erp_call_seconds(sb, token) < 0.6


def test_latency_range_stays_inside_its_bounds() -> None:
    with VismaSandbox(customers=10, suppliers=2, latency=(0.05, 0.1)) as sb:
        token, _ = _token(sb)
        seconds = [_erp_call_seconds(sb, token) for _ in range(4)]
        assert all(0.05 <= s < 0.5 for s in seconds)


def test_no_latency_by_default() -> None:
    with VismaSandbox(customers=10, suppliers=2) as sb:
        token, _ = _token(sb)
        assert _erp_call_seconds(sb, token) < 0.1
