"""The sandboxes' steady latency option: every ERP call waits, token requests do not. Wall-clock checks are
lower bounds (a sleep never ends early) or far from the threshold; the ranges are checked without a clock."""

from __future__ import annotations

import time

import requests

from sandbox.http import Latency
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
    with VismaSandbox(customers=10, suppliers=2, latency=1.0) as sb:
        token, token_s = _token(sb)
        assert token_s < 0.9  # a token request would take at least the full second
        assert _erp_call_seconds(sb, token) >= 1.0


def test_latency_range_stays_inside_its_bounds() -> None:
    slept: list[float] = []
    latency = Latency((0.05, 0.1), seed=3, sleep=slept.append)
    for _ in range(200):
        latency.sleep()
    assert len(slept) == 200 and all(0.05 <= s <= 0.1 for s in slept)
    assert max(slept) - min(slept) > 0.04  # spread over the range, not one value


def test_no_latency_by_default() -> None:
    slept: list[float] = []
    Latency(sleep=slept.append).sleep()
    assert slept == []
