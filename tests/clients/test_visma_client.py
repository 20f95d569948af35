"""The Visma client against the Visma sandbox, through real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ml_connector.deadline import Deadline
from ml_connector.retry import Backoff, RepeatedFailures
from ml_connector.visma.client import VismaClient, forget_tokens
from ml_connector.visma.errors import VismaAuthError, VismaError, VismaTimeBudgetExceeded
from ml_connector.visma.models import VismaCredentials
from sandbox.visma import VismaSandbox

FAST = Backoff(base=0.01, cap=0.05, max_attempts=4)


@pytest.fixture(scope="module")
def visma() -> Iterator[VismaSandbox]:
    with VismaSandbox(seed=3, customers=250, suppliers=40, max_page_size=100) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _clean(visma: VismaSandbox) -> Iterator[None]:
    forget_tokens()
    visma.faults.clear()
    yield
    visma.faults.clear()


def client_for(visma: VismaSandbox, sleeps: list[float] | None = None, **overrides: object) -> VismaClient:
    creds = VismaCredentials.model_validate({**visma.credentials, **overrides.pop("creds", {})})  # type: ignore[dict-item]
    recorder = sleeps.append if sleeps is not None else (lambda _s: None)
    overrides.setdefault("failures", RepeatedFailures())  # each test starts with no failure history
    return VismaClient(creds, base_url=visma.url, token_url=visma.token_url, backoff=FAST, sleep=recorder,
                       **overrides)  # type: ignore[arg-type]


def test_reads_every_page_when_the_server_caps_the_page_size(visma: VismaSandbox) -> None:
    client = client_for(visma)
    pages = list(client.iter_pages("customer", page_size=1000))
    ids = [r["internalId"] for p in pages for r in p.records]
    assert len(pages) == 3  # 250 records at the silent cap of 100
    assert sorted(ids) == sorted(r["internalId"] for r in visma.store.records("customer"))
    assert all("metadata" not in r for p in pages for r in p.records)
    assert pages[0].total_count == 250 and pages[0].max_page_size == 100


def test_smaller_requested_page_size_is_honoured(visma: VismaSandbox) -> None:
    client = client_for(visma)
    pages = list(client.iter_pages("supplier", page_size=15))
    assert [len(p.records) for p in pages] == [15, 15, 10]


def test_wrapper_shape_is_read_too(visma: VismaSandbox) -> None:
    terms = list(client_for(visma).records("/v1/creditTerm", page_size=2))
    assert len(terms) >= 3
    assert all("termsId" in t for t in terms)


def test_delta_from_a_watermark_returns_the_edits(visma: VismaSandbox) -> None:
    client = client_for(visma)
    since = datetime.now(UTC) - timedelta(seconds=1)
    edited = visma.store.edit_random(7, rng_seed=5, entity="customer")
    got = {r["internalId"] for p in client.iter_pages("customer", modified_since=since) for r in p.records}
    assert {i for _, i in edited} <= got
    assert len(got) < 250


def test_token_is_cached_and_refreshed_once_on_401(visma: VismaSandbox) -> None:
    client = client_for(visma)
    before = visma.stats.snapshot()["token_requests"]
    client.get("/v1/customer", {"pageSize": 1})
    client.get("/v1/customer", {"pageSize": 1})
    assert visma.stats.snapshot()["token_requests"] == before + 1
    visma.expire_tokens()
    client.get("/v1/customer", {"pageSize": 1})
    assert visma.stats.snapshot()["token_requests"] == before + 2
    assert client.token_refreshes == 2


def test_customer_tenant_gets_a_clear_message(visma: VismaSandbox) -> None:
    client = client_for(visma, creds={"tenant_id": visma.customer_tenant_id})
    with pytest.raises(VismaAuthError, match="customer tenant rather than the company tenant"):
        client.get("/v1/customer", {"pageSize": 1})


def test_bad_secret_is_an_auth_error_without_the_secret(visma: VismaSandbox) -> None:
    client = client_for(visma, creds={"client_secret": "wrong-secret-value"})
    with pytest.raises(VismaAuthError) as info:
        client.get("/v1/customer", {"pageSize": 1})
    assert "wrong-secret-value" not in str(info.value)


def test_company_header_is_sent_and_can_be_turned_off(visma: VismaSandbox) -> None:
    assert client_for(visma).sends_company_header
    client = client_for(visma, send_company_header=False)
    assert not client.sends_company_header
    assert len(client.get("/v1/customer", {"pageSize": 1})) == 1


def test_a_gateway_refusing_the_company_header_is_called_without_it(visma: VismaSandbox,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 15 case 4: a Visma Connect gateway that fixes the company by tenant_id refuses ipp-company-id
    ("Invalid parameter exception: ipp-company-id", IPP 12002). The call is retried once without it, the
    process remembers that for the connection, and says so once."""
    visma.refuse_company_header(True)
    try:
        client = client_for(visma)
        before = visma.stats.snapshot()["erp_calls"]
        assert len(client.get("/v1/customer", {"pageSize": 1})) == 1
        assert visma.stats.snapshot()["erp_calls"] - before == 2  # refused once, then without the header
        assert not client.sends_company_header  # what ping reports
        other = client_for(visma)  # a later invocation's client of the same connection
        assert not other.sends_company_header
        assert len(list(other.iter_pages("supplier", page_size=100))) == 1
        assert visma.stats.snapshot()["erp_calls"] - before == 3
        assert capsys.readouterr().out.count("refused ipp-company-id") == 1
    finally:
        visma.refuse_company_header(False)


@pytest.mark.parametrize("shape", ["message", "ipp", "text"])
def test_server_errors_are_retried_with_backoff(visma: VismaSandbox, shape: str) -> None:
    sleeps: list[float] = []
    client = client_for(visma, sleeps)
    visma.faults.fail_next(1, status=503, shape=shape)
    body = client.get("/v1/customer", {"pageSize": 2})
    assert len(body) == 2
    assert client.retries == 1 and len(sleeps) == 1 and sleeps[0] < 1


def test_a_request_that_failed_twice_is_not_tried_a_third_time(visma: VismaSandbox) -> None:
    """Visma's "same failed request" rule (2 per 5 minutes): rather than sleep minutes for a third try,
    the call stops cleanly (the poller stops early and its next run resumes)."""
    sleeps: list[float] = []
    visma.faults.fail_next(2, status=503)
    client = client_for(visma, sleeps)
    with pytest.raises(VismaTimeBudgetExceeded, match="failed twice within five minutes"):
        client.get("/v1/customer", {"pageSize": 2})
    assert client.calls == 2 and len(sleeps) == 1


def test_the_rule_counts_identical_requests_only(visma: VismaSandbox) -> None:
    failures = RepeatedFailures()
    visma.faults.fail_next(1, status=503)
    client_for(visma, failures=failures).get("/v1/customer", {"pageSize": 2})
    visma.faults.fail_next(1, status=503)
    client_for(visma, failures=failures).get("/v1/customer", {"pageSize": 3})  # another request: retried
    visma.faults.fail_next(1, status=503)
    with pytest.raises(VismaTimeBudgetExceeded):
        client_for(visma, failures=failures).get("/v1/customer", {"pageSize": 2})  # its second failure


@pytest.mark.parametrize("shape", ["message", "ipp", "text"])
def test_permanent_errors_carry_the_server_message(visma: VismaSandbox, shape: str) -> None:
    visma.faults.fail_next(1, status=400, shape=shape)
    with pytest.raises(VismaError, match="HTTP 400") as info:
        client_for(visma).get("/v1/customer", {"pageSize": 2})
    assert len(str(info.value)) > len("GET /v1/customer failed with HTTP 400: ")


def test_a_request_that_keeps_failing_is_not_hammered(visma: VismaSandbox) -> None:
    client = client_for(visma)
    visma.faults.fail_next(50, status=500)
    with pytest.raises(VismaError, match="failed twice within five minutes"):
        client.get("/v1/customer", {"pageSize": 2})
    assert client.calls == 2


def test_429_honours_retry_after(visma: VismaSandbox) -> None:
    sleeps: list[float] = []
    visma.faults.throttle_next(1, retry_after=2)
    client_for(visma, sleeps).get("/v1/customer", {"pageSize": 1})
    assert sleeps and sleeps[0] >= 2


def test_waits_stay_inside_the_time_budget(visma: VismaSandbox) -> None:
    visma.faults.throttle_next(1, retry_after=30)
    client = client_for(visma, deadline=Deadline(lambda: 20.0))
    with pytest.raises(VismaTimeBudgetExceeded):
        client.get("/v1/customer", {"pageSize": 1})


def test_slows_down_before_the_hourly_budget_runs_out() -> None:
    with VismaSandbox(seed=1, customers=30, suppliers=0, rate_limit=(20, 60)) as limited:
        sleeps: list[float] = []
        client = client_for(limited, sleeps)
        for _ in range(19):
            client.get("/v1/customer", {"pageSize": 1})
        assert sleeps, "no pacing although the remaining budget fell below 10 %"
        assert all(0 < s <= 60 for s in sleeps)


def test_contacts_carry_their_consent_flags(visma: VismaSandbox) -> None:
    client = client_for(visma)
    numbers = [r["number"] for r in visma.store.records("customer")[:40]]
    contacts = {n: client.contacts(n) for n in numbers}
    assert all(contacts.values())  # every customer has at least one contact
    served = {n: visma.store.contacts(n) for n in numbers}
    for number, parsed in contacts.items():
        assert [c.contactId for c in parsed] == [c["contactId"] for c in served[number]]
        for model, raw in zip(parsed, served[number], strict=True):
            assert model.opted_out == bool(raw["noMarketing"] or raw["noMassMail"] or raw["doNotEmail"])
    assert any(c.opted_out for cs in contacts.values() for c in cs)
    assert any(not c.opted_out for cs in contacts.values() for c in cs)
    with pytest.raises(VismaError, match="404"):
        client.contacts("no-such-customer")
