"""The Marketo client against the Marketo sandbox, through real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from ml_connector.marketo.client import MarketoClient, forget_tokens, instance_url
from ml_connector.marketo.errors import MarketoCrmEnabled, MarketoError, MarketoQuotaExceeded
from ml_connector.marketo.limits import CallBudget, LocalCallLimiter
from ml_connector.marketo.models import MarketoCredentials
from ml_connector.marketo.payload import COMPANIES, MAX_BODY_BYTES, sync_body, sync_envelope
from ml_connector.retry import Backoff
from sandbox.marketo import MarketoSandbox

FAST = Backoff(base=0.01, cap=0.05, max_attempts=4)


@pytest.fixture(scope="module")
def marketo() -> Iterator[MarketoSandbox]:
    with MarketoSandbox() as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _clean(marketo: MarketoSandbox) -> Iterator[None]:
    forget_tokens()
    marketo.faults.clear()
    yield
    marketo.faults.clear()


def client_for(sandbox: MarketoSandbox, **kwargs: object) -> MarketoClient:
    kwargs.setdefault("backoff", FAST)
    kwargs.setdefault("sleep", lambda _s: None)
    kwargs.setdefault("limiter", LocalCallLimiter(CallBudget(calls=100, window_seconds=0.2, concurrency=10)))
    return MarketoClient(sandbox.munchkin_id, MarketoCredentials.model_validate(sandbox.credentials),
                         endpoint_override=sandbox.url, **kwargs)  # type: ignore[arg-type]


def company(key: str, **fields: object) -> dict[str, object]:
    return {"externalCompanyId": key, "company": f"Company {key}", **fields}


def test_sync_creates_then_updates_with_per_record_results(marketo: MarketoSandbox) -> None:
    client = client_for(marketo)
    first = client.sync_companies([company("c-1"), company("c-2")])
    assert [(r.seq, r.status) for r in first] == [(0, "created"), (1, "created")]
    again = client.sync_companies([company("c-1", vismaStatus="OnHold")])
    assert again[0].status == "updated" and again[0].id == first[0].id
    held = {c["externalCompanyId"]: c for c in marketo.store.companies()}
    assert held["c-1"]["vismaStatus"] == "OnHold"


def test_bad_records_are_skipped_with_reasons_and_the_rest_written(marketo: MarketoSandbox) -> None:
    results = client_for(marketo).sync_companies(
        [company("s-1", noSuchField=1), company("s-2", vismaCurrency="TOO-LONG"), company("s-3")])
    assert [r.status for r in results] == ["skipped", "skipped", "created"]
    assert results[0].reasons[0].code == "1006"
    assert results[1].reasons[0].code == "1001"


def test_token_is_reused_and_refreshed_on_601_and_602(marketo: MarketoSandbox) -> None:
    client = client_for(marketo)
    before = marketo.stats.snapshot()["token_requests"]
    client.describe_companies()
    client.describe_companies()
    assert marketo.stats.snapshot()["token_requests"] == before + 1
    marketo.expire_tokens()
    client.describe_companies()
    marketo.revoke_tokens()
    client.describe_companies()
    assert marketo.stats.snapshot()["token_requests"] == before + 3
    assert marketo.stats.snapshot()["token_in_url_refused"] == 0


@pytest.mark.parametrize("code", ["606", "615", "604", "608", "611", "713", 502])
def test_transient_and_limit_codes_are_retried(marketo: MarketoSandbox, code: str | int) -> None:
    sleeps: list[float] = []
    client = client_for(marketo, sleep=sleeps.append)
    marketo.faults.inject(code, times=2)
    assert client.sync_companies([company(f"r-{code}")])[0].status in ("created", "updated")
    assert len(sleeps) == 2


def test_limit_codes_wait_out_the_rate_window(marketo: MarketoSandbox) -> None:
    sleeps: list[float] = []
    limiter = LocalCallLimiter(CallBudget(calls=50, window_seconds=20, concurrency=5))
    client = client_for(marketo, sleep=sleeps.append, limiter=limiter)
    marketo.faults.inject("606", times=1)
    client.describe_companies()
    assert sleeps and sleeps[0] >= 10


def test_daily_quota_raises_its_own_error(marketo: MarketoSandbox) -> None:
    marketo.faults.inject("607", times=1)
    with pytest.raises(MarketoQuotaExceeded):
        client_for(marketo).sync_companies([company("q-1")])


def test_permanent_errors_fail_at_once(marketo: MarketoSandbox) -> None:
    client = client_for(marketo)
    with pytest.raises(MarketoError) as info:
        client.sync_custom_objects("noSuchObject_c", [{"x": 1}])
    assert info.value.code == "610" and not info.value.retryable
    assert client.calls == 1


def test_crm_enabled_instance_says_what_to_do() -> None:
    with MarketoSandbox(crm_enabled=True) as crm, pytest.raises(MarketoCrmEnabled, match="custom object"):
        client_for(crm).sync_companies([company("x")])


def test_describe_and_query(marketo: MarketoSandbox) -> None:
    client = client_for(marketo)
    described = client.describe_companies()
    assert described.dedupe_fields == ["externalCompanyId"]
    assert described.fields["company"].length == 255
    assert not described.fields["externalCompanyId"].updateable
    client.sync_companies([company("g-1", vismaStatus="Active"), company("g-2")])
    found = client.get_companies("externalCompanyId", ["g-1", "g-2", "g-none"], ["externalCompanyId", "vismaStatus"])
    assert {f["externalCompanyId"] for f in found} == {"g-1", "g-2"}


def test_custom_objects(marketo: MarketoSandbox) -> None:
    client = client_for(marketo)
    described = client.describe_custom_object("vismaSupplier_c")
    assert described.dedupe_fields == ["vismaKey"]
    results = client.sync_custom_objects("vismaSupplier_c", [{"vismaKey": "k-1", "name": "Fjordtrans AS"}])
    assert results[0].status == "created" and results[0].marketoGUID
    assert [r["vismaKey"] for r in marketo.store.custom_objects("vismaSupplier_c")] == ["k-1"]


def test_leads_sync_by_email_with_results_in_input_order(marketo: MarketoSandbox) -> None:
    client = client_for(marketo)
    described = client.describe_target("leads")
    assert "email" in described.dedupe_fields and described.fields["unsubscribed"].data_type == "boolean"
    results = client.sync_records("leads", [{"email": "a@lead.example", "firstName": "Ada"},
                                            {"email": "b@lead.example", "noSuchField": 1},
                                            {"email": "c@lead.example", "unsubscribed": True}], "email")
    # Sync Leads answers without seq; the position is the seq.
    assert [(r.seq, r.status) for r in results] == [(0, "created"), (1, "skipped"), (2, "created")]
    assert results[1].reasons[0].code == "1006"
    again = client.sync_records("leads", [{"email": "a@lead.example", "lastName": "Lovelace"}], "email")
    assert again[0].status == "updated"
    lead = marketo.store.lead_by_email("a@lead.example")
    assert lead is not None and (lead["firstName"], lead["lastName"]) == ("Ada", "Lovelace")
    found = client.get_records("leads", "email", ["c@lead.example"], ["email", "unsubscribed"])
    assert found[0]["unsubscribed"] is True


def test_more_than_300_records_never_leave_the_client(marketo: MarketoSandbox) -> None:
    with pytest.raises(ValueError, match="at most 300"):
        client_for(marketo).sync_companies([company(str(i)) for i in range(301)])


def nordic(key: str) -> dict[str, object]:
    """About 3 KB of UTF-8 (2-byte Nordic letters, 3-byte CJK, 4-byte emoji), over 7 KB if ASCII-escaped."""
    return company(key, company=("Ærøskøbing Smørbrød Blåbær " * 10)[:255], billingStreet=("東京中文公司" * 43)[:255],
                   billingCity=("🚀🧀🌲" * 85)[:255], vismaContactName=("서울中文" * 64)[:255])


def held_ids(marketo: MarketoSandbox) -> dict[str, object]:
    return {c["externalCompanyId"]: c["id"] for c in marketo.store.companies()}


def test_a_body_measured_under_the_limit_is_sent_as_measured_and_accepted(marketo: MarketoSandbox) -> None:
    """300 records whose UTF-8 body is under 1 MB: one call, and the sandbox receives exactly the bytes the
    batching measures (ASCII-escaped, the same body is over 2 MB and was refused with HTTP 413)."""
    records = [nordic(f"n-{i}") for i in range(300)]
    measured = len(sync_body(sync_envelope(COMPANIES), records))
    assert 850_000 < measured <= MAX_BODY_BYTES
    client = client_for(marketo)
    results = client.sync_companies(records)
    assert client.calls == 1 and marketo.stats.snapshot()["body_bytes"][-1] == measured
    assert [r.status for r in results] == ["created"] * 300
    held = {c["externalCompanyId"]: c for c in marketo.store.companies()}
    assert all(held[str(r["externalCompanyId"])]["billingCity"] == r["billingCity"] for r in records)


def test_a_413_is_split_in_halves_and_every_record_lands_in_input_order(marketo: MarketoSandbox) -> None:
    client = client_for(marketo)
    records = [company(f"h-{i}") for i in range(8)]
    marketo.faults.inject(413, times=3, path_contains="companies")  # the 8, then the first 4, then the first 2
    results = client.sync_companies(records)
    assert [(r.seq, r.status) for r in results] == [(i, "created") for i in range(8)]
    ids = held_ids(marketo)
    assert [r.id for r in results] == [ids[f"h-{i}"] for i in range(8)]  # each result is its own record's
    assert client.calls == 7  # 3 refused + 1 + 1 + 2 + 4 records: every HTTP call counted
    assert marketo.stats.snapshot()["http_errors_by_status"]["413"] >= 3


def test_a_413_split_keeps_lead_positions(marketo: MarketoSandbox) -> None:
    """Sync Leads answers without seq: the halves' positions are offset back into the whole chunk."""
    client = client_for(marketo)
    leads = [{"email": f"split-{i}@lead.example", "firstName": f"S{i}"} for i in range(5)]
    marketo.faults.inject(413, times=1, path_contains="leads")
    results = client.sync_leads(leads)
    assert [r.seq for r in results] == list(range(5)) and client.calls == 3
    for lead, result in zip(leads, results, strict=True):
        held = marketo.store.lead_by_email(str(lead["email"]))
        assert held is not None and held["id"] == result.id


def test_a_record_too_large_alone_is_skipped_with_the_reason(marketo: MarketoSandbox) -> None:
    client = client_for(marketo)
    huge = company("big-1", company="ø" * 600_000)  # 1.2 MB of UTF-8
    results = client.sync_companies([company("big-0"), huge, company("big-2")])
    assert [(r.seq, r.status) for r in results] == [(0, "created"), (1, "skipped"), (2, "created")]
    assert results[1].reasons[0].code == "413" and "1000000 bytes" in results[1].reasons[0].message
    assert client.calls == 2  # known too large before sending: never sent
    marketo.faults.inject(413, times=3, path_contains="companies")  # Marketo refuses even single records
    results = client.sync_companies([company("big-3"), company("big-4")])
    assert [(r.seq, r.status, r.reasons[0].code) for r in results] == [(0, "skipped", "413"), (1, "skipped", "413")]
    assert not {"big-1", "big-3", "big-4"} & set(held_ids(marketo)) and client.calls == 2 + 3


def test_base_url_comes_from_the_munchkin_id() -> None:
    assert instance_url("123-ABC-456") == "https://123-ABC-456.mktorest.com"
    with pytest.raises(ValueError, match="Munchkin"):
        instance_url("123-ABC-456.evil.example/x")
    with pytest.raises(ValueError, match="loopback"):
        instance_url("123-ABC-456", "https://evil.example")


def test_threads_sharing_a_limiter_stay_under_the_instance_limits() -> None:
    with MarketoSandbox(rate_limit=(10, 1.0), max_concurrency=2, latency=0.05) as tight:
        # Our budget a little under the instance limit, as deployed (default 50 of 100).
        limiter = LocalCallLimiter(CallBudget(calls=9, window_seconds=1.0, concurrency=2))
        client = client_for(tight, limiter=limiter, sleep=__import__("time").sleep)
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(4):
                    client.sync_companies([company(f"t-{n}-{i}")])
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = tight.stats.snapshot()
        assert not errors
        assert stats["records_created"] == 20
        assert stats["errors_by_code"].get("606", 0) == 0 and stats["errors_by_code"].get("615", 0) == 0
        assert stats["max_concurrency_seen"] <= 2
