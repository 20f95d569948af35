"""The state table's key schema: the one place that builds a key.

One table, key ``pk`` (hash) + ``sk`` (range):

================================  =====================  ============================================
pk                                sk                     holds
================================  =====================  ============================================
``WM#{connection}``               ``{entity}``           watermark (UTC ISO), last cycle summary
                                                         (entity ``reference``: reference data's last run)
``POLL#{connection}#{entity}``    ``{internalId}``       row version last enqueued by the poller
``REC#{connection}#{entity}``     ``{internalId}``       version and content hash last written to Marketo
``FIX#{connection}#{entity}``     ``{internalId}``       record to read again: a concurrent write may have
                                                         left an older version in Marketo (its number)
``NUM#{connection}#{entity}``     ``{number}``           internalId of a customer number (contacts link by it)
``JOB#{connection}``              ``{jobId}``            chunk outcome (TTL ``expiresAt``)
``QUAR#{connection}``             ``{entity}#{ref}``     quarantined record: reason, raw payload
``PAY#{connection}``              ``{customer number}``  payment facts (only customers with a non-zero fact)
``REF#{connection}``              ``{reference key}``    content hash of reference data last written
``LIMIT#{munchkin}``              ``QUOTA``              daily quota used up: no call before ``until``
``LIMIT#{munchkin}``              ``RATE``/``LEASE#{n}`` shared Marketo call budget (next start, leases)
``RUN#{connection}``              ``POLL``               poll lease (owner, until) and the schedule tick the
                                                         last started poll serves (due-ness counts from it)
================================  =====================  ============================================
"""

from __future__ import annotations

Key = dict[str, str]


def key(pk: str, sk: str | int) -> Key:
    return {"pk": pk, "sk": str(sk)}


def watermarks(connection: str) -> str:
    return f"WM#{connection}"


def enqueued(connection: str, entity: str) -> str:
    return f"POLL#{connection}#{entity}"


def records(connection: str, entity: str) -> str:
    return f"REC#{connection}#{entity}"


def repairs(connection: str, entity: str) -> str:
    return f"FIX#{connection}#{entity}"


def numbers(connection: str, entity: str) -> str:
    return f"NUM#{connection}#{entity}"


def jobs(connection: str) -> str:
    return f"JOB#{connection}"


def quarantine(connection: str) -> str:
    return f"QUAR#{connection}"


def quarantine_sk(entity: str, ref: str) -> str:
    return f"{entity}#{ref}"


def payments(connection: str) -> str:
    return f"PAY#{connection}"


def reference(connection: str) -> str:
    return f"REF#{connection}"


def limits(munchkin_id: str) -> str:
    return f"LIMIT#{munchkin_id}"


QUOTA_SK = "QUOTA"
RATE_SK = "RATE"


def lease_sk(index: int) -> str:
    return f"LEASE#{index}"


def runs(connection: str) -> str:
    return f"RUN#{connection}"


POLL_SK = "POLL"
