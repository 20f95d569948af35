"""moto's DynamoDB made atomic per request, as DynamoDB is: used by the whole local stack.

DynamoDB applies each PutItem, UpdateItem and DeleteItem (its condition included) atomically, and a
transaction as one. moto's server answers requests on threads and checks a condition, then writes, with
nothing between: two conditional puts on one key can both pass the check and both succeed. The shared
Marketo limiter's leases rest on that condition, and a CI run saw three calls in flight on two leases.
``install()`` serialises moto's item operations with one lock, so a request sees and leaves whole items and
a condition holds at the write. Nothing else changes. ``LocalAws.start()`` installs it alongside
``localrun.fast_sqs``; ``tests/localrun/test_atomic_dynamodb.py`` races conditional writes through the server.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

from localrun.one_at_a_time import one_at_a_time

# Every backend call that reads or writes items; a batch is answered item by item through these.
_ITEM_OPERATIONS = ("get_item", "put_item", "update_item", "delete_item", "query", "scan",
                    "transact_write_items", "execute_statement", "execute_transaction", "batch_execute_statement")
_ORIGINALS: dict[str, Any] = {}
_install_lock = threading.Lock()
_item_lock = threading.RLock()


def install() -> None:
    """Patch moto's DynamoDB backend in this process (idempotent)."""
    with _install_lock:
        if _ORIGINALS:
            return
        for name in _ITEM_OPERATIONS:
            original = DynamoDBBackend.__dict__[name]
            _ORIGINALS[name] = original
            setattr(DynamoDBBackend, name, one_at_a_time(original, _item_lock))


def uninstall() -> None:
    """Put moto's own methods back (tests that compare the two)."""
    with _install_lock:
        for name, original in _ORIGINALS.items():
            setattr(DynamoDBBackend, name, original)
        _ORIGINALS.clear()


def installed() -> bool:
    return bool(_ORIGINALS)
