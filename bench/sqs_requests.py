"""SQS requests as AWS bills them, counted where SQS answers (moto's SQS responder, in whichever process hosts it).

AWS (../shared/reference/aws-costs.md): "each 64 KB chunk of a payload is billed as 1 request (for example, an
API action with a 256 KB payload is billed as 4 requests)"; a batch of 10 is one request if under 64 KB in all.
The payload is the message bodies and attributes (name, type and value, UTF-8) a SendMessage / SendMessageBatch
sends or a ReceiveMessage returns; every other action (deletes, visibility, queue attributes) is one request.
Both of moto's protocols are read: the request from moto's own parse (JSON, or the query protocol's form
fields), the ReceiveMessage answer as JSON or XML.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from moto.sqs.responses import SQSResponse

EMPTY_RECEIVE = "ReceiveMessage (empty)"
BILLED_CHUNK_BYTES = 64 * 1024

# (body, message attributes as {name: {"DataType": ..., "StringValue": ... | "BinaryValue": bytes}})
SqsMessage = tuple[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class SqsCounts:
    """SQS requests by action: the API calls made, and the requests they are billed as."""

    calls: Counter[str] = field(default_factory=Counter)
    billed: Counter[str] = field(default_factory=Counter)

    def __sub__(self, before: SqsCounts) -> SqsCounts:
        return SqsCounts(self.calls - before.calls, self.billed - before.billed)

    def to_json(self) -> dict[str, dict[str, int]]:
        return {"calls": dict(self.calls), "billed": dict(self.billed)}

    @classmethod
    def from_json(cls, value: dict[str, dict[str, int]]) -> SqsCounts:
        return cls(Counter(value.get("calls", {})), Counter(value.get("billed", {})))


class SqsRequests:
    """Counts every SQS request moto's responder answers in this process. One per process."""

    _instance: SqsRequests | None = None
    _original: Any = None

    def __init__(self) -> None:
        self.counts = SqsCounts()
        self._lock = threading.Lock()

    @classmethod
    def installed(cls) -> SqsRequests:
        if cls._instance is None:
            cls._instance = counter = cls()
            cls._original = original = SQSResponse.call_action

            def counted(response: Any) -> Any:
                answer = original(response)
                counter.add(*billed_request(response, answer))
                return answer

            SQSResponse.call_action = counted  # type: ignore[method-assign,assignment]
        return cls._instance

    @classmethod
    def uninstall(cls) -> None:
        if cls._instance is not None:
            SQSResponse.call_action = cls._original  # type: ignore[method-assign]
            cls._instance = cls._original = None

    def add(self, action: str, billed: int) -> None:
        with self._lock:
            self.counts.calls[action] += 1
            self.counts.billed[action] += billed

    def snapshot(self) -> SqsCounts:
        with self._lock:
            return SqsCounts(Counter(self.counts.calls), Counter(self.counts.billed))


def billed_request(response: SQSResponse, answer: Any) -> tuple[str, int]:
    """(action, requests billed) of one answered request."""
    action = response._get_action()
    if action == "SendMessage":
        return action, billed_units([(response._get_param("MessageBody") or "",
                                      response._get_param("MessageAttributes") or {})])
    if action == "SendMessageBatch":
        entries = response._get_param("Entries") or []
        return action, billed_units([(e.get("MessageBody") or "", e.get("MessageAttributes") or {}) for e in entries])
    if action == "ReceiveMessage":
        received = received_messages(answer)
        # The polling loop's empty receives, apart: Lambda's pollers long-poll at a fixed cost a month.
        return (action if received else EMPTY_RECEIVE), billed_units(received)
    return action, 1


def billed_units(messages: list[SqsMessage]) -> int:
    """Requests one API call with these messages as its payload is billed as: one per started 64 KB, at least 1."""
    payload = sum(_size(body) + sum(_attribute_size(name, value) for name, value in attributes.items())
                  for body, attributes in messages)
    return max(1, math.ceil(payload / BILLED_CHUNK_BYTES))


def _attribute_size(name: str, value: dict[str, Any]) -> int:
    data = value.get("StringValue", value.get("BinaryValue"))
    return _size(name) + _size(value.get("DataType") or "") + _size(data or "")


def _size(value: str | bytes) -> int:
    return len(value) if isinstance(value, bytes) else len(value.encode())


def received_messages(answer: Any) -> list[SqsMessage]:
    """The messages of a moto ReceiveMessage answer ((status, headers, body) or body; JSON or XML protocol)."""
    body = answer[2] if isinstance(answer, tuple) and len(answer) == 3 else answer
    text = body.decode() if isinstance(body, bytes) else str(body)
    if not text.strip():
        return []
    if text.lstrip().startswith("{"):
        return [(m.get("Body", ""), {name: _decoded(value) for name, value in m.get("MessageAttributes", {}).items()})
                for m in json.loads(text).get("Messages", [])]
    root = ElementTree.fromstring(text)  # noqa: S314 - moto's own answer, serialised in this process
    return [(_text(m, "Body"), {_text(a, "Name"): _xml_value(a) for a in _children(m, "MessageAttribute")})
            for m in root.iter() if _local(m.tag) == "Message"]


def _decoded(value: dict[str, Any]) -> dict[str, Any]:
    """An answer's attribute value with a binary value as the bytes sent (both protocols answer it in base64)."""
    if isinstance(value.get("BinaryValue"), str):
        return {**value, "BinaryValue": base64.b64decode(value["BinaryValue"])}
    return value


def _xml_value(attribute: ElementTree.Element) -> dict[str, Any]:
    value = next(iter(_children(attribute, "Value")), None)
    found = {} if value is None else {_local(child.tag): child.text or "" for child in value}
    return _decoded(found)


def _children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if _local(child.tag) == name]


def _text(element: ElementTree.Element, name: str) -> str:
    return next((child.text or "" for child in _children(element, name)), "")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # the tag without its XML namespace
