"""An emulator speed-up for moto's SQS, used by the whole local stack: same behaviour, no O(N) scans.

moto 5.2 keeps a queue's messages in a list. Every ReceiveMessage builds a list of all visible
messages (``Queue.messages``) before taking ten, and every DeleteMessage / ChangeMessageVisibility
scans the list for the receipt handle (DeleteMessage twice, then rebuilds it). With 100k messages
waiting, a drain spends hours inside the emulator; real SQS does none of this.

``install()`` replaces that storage with an ordered index (message id -> message, receipt handle ->
message id), makes ``Queue.messages`` lazy, and computes a queue's three message counts (each O(N)) only
when its attributes are actually read for them: moto assembles every attribute, counts included, to check
one (the retention period on every receive, ContentBasedDeduplication on every send). Everything else
stays moto's own code: receive counts, visibility timeouts, delays, DLQ redrive at maxReceiveCount
(moto's ``receive_message`` runs unchanged on top of the index), purge, FIFO de-duplication. Deleting
an already-deleted handle stays a no-op and an unknown handle still raises ReceiptHandleIsInvalid.
``LocalAws.start()`` installs it (moto's server runs in that process), so the demo, the tests' local
stack and the benchmark all use it. ``tests/localrun/test_fast_sqs.py`` runs the same script against
patched and unpatched moto, each in a fresh process, and compares what a client sees.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from moto.sqs import models as sqs_models
from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend

from localrun.one_at_a_time import one_at_a_time

_MAX_VISIBILITY_MS = 43200 * 1000  # SQS caps a message's total visibility timeout at 12 hours
_ORIGINALS: dict[tuple[type, str], Any] = {}
_install_lock = threading.Lock()
# moto's SQS is not thread-safe: a receive deep-copies the queue's pending set while another server thread's
# delete changes it ("Set changed size during iteration"). Real SQS is; the emulator serialises these calls.
_queue_lock = threading.RLock()


def _one_at_a_time(function: Any) -> Any:
    return one_at_a_time(function, _queue_lock)


class MessageIndex:
    """A queue's messages in send order, findable by receipt handle in O(1).

    Behaves like the list moto keeps (append, remove, iterate, len), so moto code that touches
    ``queue._messages`` directly (redrive, FIFO de-duplication, attribute counts) keeps working.
    """

    def __init__(self, messages: Iterable[Message] = ()) -> None:
        self._by_key: dict[int, Message] = {}  # keyed by identity: moto compares messages by identity
        self._by_message_id: dict[str, int] = {}
        self._by_handle: dict[str, int] = {}
        for message in messages:
            self.append(message)

    def append(self, message: Message) -> None:
        key = id(message)
        self._by_key[key] = message
        self._by_message_id[message.id] = key
        # A message moved to a dead-letter queue keeps its old handles; moto still accepts them there.
        for handle in message.all_receipt_handles:
            if handle is not None:
                self._by_handle[handle] = key

    def remember_handle(self, message_id: str, handle: str | None) -> None:
        """A receive gave a message a new handle (moto returns copies, which carry the id and the handle)."""
        key = self._by_message_id.get(message_id)
        if handle is not None and key is not None:
            self._by_handle[handle] = key

    def remove(self, message: Message) -> None:
        if self._by_key.pop(id(message), None) is None:
            raise ValueError("message not in queue")  # what list.remove raises
        self._by_message_id.pop(message.id, None)
        for handle in message.all_receipt_handles:
            if handle is not None:
                self._by_handle.pop(handle, None)

    def find(self, handle: str) -> Message | None:
        key = self._by_handle.get(handle)
        return None if key is None else self._by_key.get(key)

    def __iter__(self) -> Iterator[Message]:
        # A snapshot (one C-level copy): other server threads may send or delete while moto iterates.
        return iter(list(self._by_key.values()))

    def __len__(self) -> int:
        return len(self._by_key)

    def __bool__(self) -> bool:
        return bool(self._by_key)


def _index(queue: Queue) -> MessageIndex:
    """The queue's index; queues created before install() keep a plain list, converted on first use."""
    index = queue.__dict__.get("_fast_index")
    if index is None:
        index = MessageIndex(queue.__dict__.pop("_messages", []))
        queue.__dict__["_fast_index"] = index
    return index


def _set_messages(queue: Queue, messages: Iterable[Message]) -> None:
    # moto assigns lists (``[]`` in __init__ and purge_queue): rebuild the index from whatever it gives.
    queue.__dict__["_fast_index"] = MessageIndex(messages)


def _visible(queue: Queue) -> Iterator[Message]:
    """Visible, undelayed messages in send order, produced lazily: a receive stops after ten."""
    return (m for m in _index(queue) if m.visible and not m.delayed)


def _approximate_number_of_messages(queue: Queue) -> int:
    return sum(1 for _ in _visible(queue))


def _wait_for_messages(queue: Queue, timeout: int) -> None:
    # Called inside a (serialised) receive: let sends and deletes through while this one long-polls.
    _queue_lock.release()
    try:
        with queue._messages_lock:
            queue._messages_lock.wait_for(lambda: next(_visible(queue), None) is not None, timeout=timeout)
    finally:
        _queue_lock.acquire()


def _queue_delete_message(queue: Queue, receipt_handle: str) -> None:
    if receipt_handle in queue.deleted_messages:
        return  # already deleted: SQS (and moto) accept a second delete
    message = _index(queue).find(receipt_handle)
    if message is None:
        raise ReceiptHandleIsInvalid()
    queue.pending_messages.discard(message)
    queue.deleted_messages.update(message.all_receipt_handles)  # type: ignore[arg-type]
    _index(queue).remove(message)


def _receive_message(backend: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> list[Message]:
    received: list[Message] = _ORIGINALS[(SQSBackend, "receive_message")](backend, queue_name, *args, **kwargs)
    index = _index(backend.get_queue(queue_name))
    for copy in received:
        index.remember_handle(copy.id, copy.receipt_handle)
    return received


def _change_message_visibility(backend: SQSBackend, queue_name: str, receipt_handle: str,
                               visibility_timeout: int) -> None:
    # moto's own logic, with the handle looked up in the index instead of a scan.
    queue = backend.get_queue(queue_name)
    message = _index(queue).find(receipt_handle)
    if message is None:
        raise ReceiptHandleIsInvalid
    given = sqs_models.unix_time_millis() + int(visibility_timeout) * 1000
    if given - message.sent_timestamp > _MAX_VISIBILITY_MS:  # type: ignore[operator]
        raise InvalidParameterValue(
            f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
            "VisibilityTimeout for the message is beyond the limit [43200 seconds]")
    message.change_visibility(visibility_timeout)
    if message.visible and message in queue.pending_messages:
        queue.pending_messages.remove(message)


class _Deferred:
    """Stands in for a message count while moto assembles a queue's attributes; computed when read."""

    def __init__(self, name: str) -> None:
        self.name = name


_deferring = threading.local()


def _count(name: str) -> property:
    """A message-count property that defers itself while attributes are assembled (see _lazy_attributes)."""

    def get(queue: Queue) -> Any:
        if getattr(_deferring, "active", False):
            return _Deferred(name)
        if name == "approximate_number_of_messages":
            return _approximate_number_of_messages(queue)
        return _ORIGINALS[(Queue, name)].fget(queue)

    return property(get)


class LazyAttributes(dict[str, Any]):
    """A queue's attributes whose three O(N) message counts are computed only if someone reads them.

    moto builds every attribute (all three counts included) whenever it checks one, e.g.
    ``queue.attributes.get("ContentBasedDeduplication")`` for each message sent.
    """

    def __init__(self, queue: Queue, data: dict[str, Any]) -> None:
        super().__init__(data)
        self._queue = queue

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if isinstance(value, _Deferred):
            value = getattr(self._queue, value.name)
            super().__setitem__(key, value)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key not in self:
            return default
        return self[key]  # through __getitem__, which computes a deferred count

    def resolved(self) -> dict[str, Any]:
        return {key: self[key] for key in list(self.keys())}


def _lazy_attributes(queue: Queue) -> LazyAttributes:
    _deferring.active = True
    try:
        data = _ORIGINALS[(Queue, "attributes")].fget(queue)
    finally:
        _deferring.active = False
    return LazyAttributes(queue, data)


def _get_queue_attributes(backend: SQSBackend, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
    # What leaves the backend is a plain dict with every count computed, as before.
    attributes = _ORIGINALS[(SQSBackend, "get_queue_attributes")](backend, queue_name, attribute_names)
    return attributes.resolved() if isinstance(attributes, LazyAttributes) else dict(attributes)


def _retained(backend: SQSBackend, queue_name: str, message: Message) -> bool:
    # moto reads the retention period through get_queue_attributes, which computes every attribute, including
    # three O(N) message counts, once per received message. Same rule, reading the one attribute.
    retention_period = backend.get_queue(queue_name).message_retention_period  # type: ignore[attr-defined]
    return bool(retention_period + message.sent_timestamp / 1000 > sqs_models.unix_time())  # type: ignore[operator]


_PATCHES: dict[tuple[type, str], Any] = {
    (Queue, "_messages"): property(_index, _set_messages),
    (Queue, "messages"): property(_visible),
    (Queue, "approximate_number_of_messages"): _count("approximate_number_of_messages"),
    (Queue, "approximate_number_of_messages_delayed"): _count("approximate_number_of_messages_delayed"),
    (Queue, "approximate_number_of_messages_not_visible"): _count("approximate_number_of_messages_not_visible"),
    (Queue, "attributes"): property(_lazy_attributes),
    (Queue, "wait_for_messages"): _wait_for_messages,
    (Queue, "delete_message"): _one_at_a_time(_queue_delete_message),
    (SQSBackend, "receive_message"): _one_at_a_time(_receive_message),
    (SQSBackend, "change_message_visibility"): _one_at_a_time(_change_message_visibility),
    (SQSBackend, "send_message"): _one_at_a_time(lambda *a, **k: _ORIGINALS[(SQSBackend, "send_message")](*a, **k)),
    (SQSBackend, "is_message_valid_based_on_retention_period"): _retained,
    (SQSBackend, "get_queue_attributes"): _get_queue_attributes,
}


def install() -> None:
    """Patch moto's SQS classes in this process (idempotent); LocalAws.start() calls this."""
    with _install_lock:
        if _ORIGINALS:
            return
        for (cls, name), replacement in _PATCHES.items():
            _ORIGINALS[(cls, name)] = cls.__dict__.get(name)
            setattr(cls, name, replacement)


def installed() -> bool:
    return bool(_ORIGINALS)
