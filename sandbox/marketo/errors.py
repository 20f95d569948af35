"""Marketo's error model: response-level codes, record-level skip reasons and the response envelope.

Reference §3: response-level errors are HTTP 200 with ``success: false`` and ``errors[{code, message}]``
(codes are quoted integers; nothing ran). Record-level problems are ``status: "skipped"`` results with
``reasons[{code, message}]`` while the rest of the call is written.
"""

from __future__ import annotations

import uuid
from typing import Any

MESSAGES = {
    "600": "Empty access token",
    "601": "Access token invalid",
    "602": "Access token expired",
    "604": "Request timed out",
    "605": "Request method not supported",
    "606": "Max rate limit '{calls}' exceeded with in '{window}' secs",
    "607": "Daily quota reached",
    "608": "API Temporarily Unavailable",
    "609": "Invalid JSON",
    "610": "Requested resource not found",
    "611": "System error",
    "612": "Invalid Content Type",
    "615": "Concurrent access limit reached",
    "701": "input cannot be blank",
    "713": "Transient Error",
    "1018": "CRM Enabled",
}

# Calls answering these are not counted toward the rate limit or the daily quota: the starred codes of
# reference §3a, plus 600 (a call without a token cannot be charged to an instance). Every other answer is
# counted, the limit refusals 606/607/615 included: the reference does not exempt them (conservative).
NOT_COUNTED = frozenset({"600", "601", "602", "604", "605", "608", "611"})


class MarketoError(Exception):
    """A response-level failure: the whole call answers ``success: false`` with this code."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message or MESSAGES.get(code, "Error")


class Skip(Exception):
    """A record-level failure: this input record is ``skipped`` with one reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def result(self) -> dict[str, Any]:
        return {"status": "skipped", "reasons": [{"code": self.code, "message": self.message}]}


def request_id() -> str:
    """Marketo's request ids look like ``a1b2#17c5f3e2d11``."""
    raw = uuid.uuid4().hex
    return f"{raw[:4]}#{raw[4:15]}"


def envelope(success: bool, result: list[Any] | None = None, errors: list[dict[str, str]] | None = None,
             **extra: Any) -> dict[str, Any]:
    """A body with every key the swagger ``ResponseOf*`` definitions require."""
    return {"requestId": request_id(), "success": success, "result": result or [], "errors": errors or [],
            "warnings": [], **extra}
