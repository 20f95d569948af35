"""Chunking for Marketo writes: at most 300 records and 1 MB of JSON per call, one record per key."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

MAX_RECORDS_PER_CALL = 300
# Marketo rejects bodies over 1 MB (HTTP 413); leave room for the request envelope.
MAX_BYTES_PER_CALL = 1_000_000 - 4_096


def chunked(items: Sequence[T], size: int) -> Iterator[list[T]]:
    if size < 1:
        raise ValueError("size must be >= 1")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def json_size(record: dict[str, Any]) -> int:
    return len(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")) + 1


def chunk_by_limits(
    items: Iterable[T],
    payload: Callable[[T], dict[str, Any]],
    *,
    max_records: int = MAX_RECORDS_PER_CALL,
    max_bytes: int = MAX_BYTES_PER_CALL,
) -> Iterator[list[T]]:
    """Group items into chunks whose Marketo payloads respect both the record and the byte limit."""
    chunk: list[T] = []
    size = 0
    for item in items:
        item_size = json_size(payload(item))
        if item_size > max_bytes:
            raise ValueError(f"one record is {item_size} bytes, over the {max_bytes}-byte call limit")
        if chunk and (len(chunk) >= max_records or size + item_size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
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
