"""The state table's key schema: the one place that builds a key.

One table, key ``pk`` (hash) + ``sk`` (range):

================================  =====================  ============================================
pk                                sk                     holds
================================  =====================  ============================================
``WM#{connection}``               ``{entity}``           watermark (UTC ISO), last cycle summary
                                                         (entity ``reference``: reference data's last run)
``REC#{connection}#{entity}``     ``{internalId}``       version and content hash last written to Marketo
``FIX#{connection}#{entity}``     ``{internalId}``       record to read again: a concurrent write may have
                                                         left an older version in Marketo (its number)
``NUM#{connection}#{entity}``     ``{number}``           internalId of a customer number (contacts link by it)
``JOB#{connection}``              ``{jobId}``            chunk outcome (TTL ``expiresAt``)
``QUAR#{connection}``             ``{entity}#{ref}``     quarantined record: reason, raw payload
``QIDX#{connection}``             ``{entity}#{ref}``     the same entry's stage and version only (cheap to read);
                                                         sk ``INDEXED``: older entries were indexed
``PARK#{connection}``             ``{jobId}``            chunk parked until Marketo's quota resets
``PAYB#{connection}``             ``{bucket}``           payment facts of up to 64 customers (bucket =
                                                         internalId // 64), an attribute each: number and
                                                         facts (only customers with a non-zero fact)
``PAYO#{connection}``             ``{bucket}``           the same entries of those with overdue invoices: the
                                                         poll reads them all (no longer overdue is found
                                                         without reading every customer's facts); sk
                                                         ``MIGRATED``: PAYID# items were converted
``PAYID#{connection}``            ``{internalId}``       before PAYB#: one item per customer (read once, to
                                                         convert; no longer written)
``SWEEP#{connection}``            ``{entity}``           when the window was last read deep (late writes)
``RECON#{connection}``            ``{entity}``           full reconcile: start of the last completed one, when
                                                         one was requested, its counts
``GONE#{connection}#{entity}``    ``{internalId}``       record a reconcile found deleted in Visma (action taken)
``REF#{connection}``              ``{reference key}``    content hash of reference data last written
``RUN#{connection}``              ``{started}``          one poll cycle (sk: its start, UTC ISO): counts,
                                                         finish time, first error (TTL ``expiresAt``)
``LIMIT#{munchkin}``              ``QUOTA``              daily quota used up: no call before ``until``
``LIMIT#{munchkin}``              ``RATE``/``LEASE#{n}`` shared Marketo call budget (next start, leases)
``LEASE#{connection}``            ``POLL``               poll lease (owner, until) and the schedule tick the
                                                         last started poll serves (due-ness counts from it)
``WIN#{connection}#{entity}``     ``META``               checkpoint of a poll window spanning invocations:
                                                         where it stopped, its generation and part count
``WIN#{connection}#{entity}``     ``PART#{gen}#{n}``     the checkpoint's id sets (packed, zlib), in parts
                                                         under DynamoDB's 400 KB item limit
================================  =====================  ============================================
"""

from __future__ import annotations

Key = dict[str, str]


def key(pk: str, sk: str | int) -> Key:
    return {"pk": pk, "sk": str(sk)}


def watermarks(connection: str) -> str:
    return f"WM#{connection}"


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


def quarantine_index(connection: str) -> str:
    return f"QIDX#{connection}"


def parked(connection: str) -> str:
    return f"PARK#{connection}"


QUARANTINE_INDEXED_SK = "INDEXED"  # no entity is named so: an entry's sk is ``{entity}#{ref}``


def quarantine_sk(entity: str, ref: str) -> str:
    return f"{entity}#{ref}"


def legacy_payments(connection: str) -> str:
    """Before PAYB#/PAYO#: one item per customer (not PAY#: facts were keyed by customer number there, before
    a renumbered customer lost them)."""
    return f"PAYID#{connection}"


def payment_buckets(connection: str) -> str:
    return f"PAYB#{connection}"


def overdue_payments(connection: str) -> str:
    return f"PAYO#{connection}"


PAYMENT_BUCKET = 64  # customers (consecutive internalIds) per PAYB# item: 64 entries are ~1.5 KB at most
MIGRATED_SK = "MIGRATED"


def payment_bucket(internal_id: int) -> int:
    return internal_id // PAYMENT_BUCKET


def payment_bucket_sk(bucket: int) -> str:
    """Zero-padded, so that sort keys order as the buckets do (a range of buckets is one query)."""
    return f"{bucket:09d}"


def sweeps(connection: str) -> str:
    return f"SWEEP#{connection}"


def reconciles(connection: str) -> str:
    return f"RECON#{connection}"


def gone(connection: str, entity: str) -> str:
    return f"GONE#{connection}#{entity}"


def reference(connection: str) -> str:
    return f"REF#{connection}"


def runs(connection: str) -> str:
    return f"RUN#{connection}"


def limits(munchkin_id: str) -> str:
    return f"LIMIT#{munchkin_id}"


QUOTA_SK = "QUOTA"
RATE_SK = "RATE"


def lease_sk(index: int) -> str:
    return f"LEASE#{index}"


def leases(connection: str) -> str:
    return f"LEASE#{connection}"


POLL_SK = "POLL"


def windows(connection: str, entity: str) -> str:
    return f"WIN#{connection}#{entity}"


WINDOW_META_SK = "META"


def window_part_sk(generation: str, index: int) -> str:
    return f"PART#{generation}#{index:04d}"
