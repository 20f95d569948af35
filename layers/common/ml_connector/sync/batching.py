"""Chunking for Marketo writes: at most 300 records and 1 MB of request body per call, one record per key."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from ml_connector.marketo.payload import MAX_BODY_BYTES, body_size, encode

T = TypeVar("T")

MAX_RECORDS_PER_CALL = 300


def chunked(items: Sequence[T], size: int) -> Iterator[list[T]]:
    if size < 1:
        raise ValueError("size must be >= 1")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def chunk_by_limits(
    items: Iterable[T],
    payload: Callable[[T], dict[str, Any]],
    *,
    envelope: dict[str, Any],
    max_records: int = MAX_RECORDS_PER_CALL,
    max_bytes: int = MAX_BODY_BYTES,
) -> Iterator[list[T]]:
    """Group items into chunks whose sync body (``payload.sync_body(envelope, ...)``, byte for byte what
    the client sends) respects both the record and the byte limit.

    A record too big even alone gets a chunk of its own: the client reports it as skipped with the
    reason, rather than one record failing a whole batch.
    """
    chunk: list[T] = []
    record_bytes = 0
    for item in items:
        size = len(encode(payload(item)))
        over = body_size(envelope, record_bytes + size, len(chunk) + 1) > max_bytes
        if chunk and (len(chunk) >= max_records or over):
            yield chunk
            chunk, record_bytes = [], 0
        chunk.append(item)
        record_bytes += size
    if chunk:
        yield chunk


def latest_per_key(
    items: Iterable[T], key: Callable[[T], str], newer: Callable[[T, T], bool]
) -> tuple[list[T], list[T]]:
    """Keep the newest item per key (a repeated key in one Marketo call is error 1036).

    Returns (kept, superseded) so the caller can acknowledge the superseded ones.
    """
    best: dict[str, T] = {}
    superseded: list[T] = []
    for item in items:
        k = key(item)
        current = best.get(k)
        if current is None:
            best[k] = item
        elif newer(item, current):
            superseded.append(current)
            best[k] = item
        else:
            superseded.append(item)
    return list(best.values()), superseded


def rounds_of_distinct_keys(items: Iterable[T], key: Callable[[T], str]) -> list[list[T]]:
    """The items in rounds, each key at most once per round (in order: the first of each key in the first
    round, a second item with that key in the second ...). Items with distinct keys make one round."""
    rounds: list[list[T]] = []
    seen: dict[str, int] = {}
    for item in items:
        k = key(item)
        n = seen.get(k, 0)
        seen[k] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(item)
    return rounds
