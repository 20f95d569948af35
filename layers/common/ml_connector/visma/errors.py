"""Errors from the Visma.net ERP API and Visma Connect, with the server's message extracted."""

from __future__ import annotations

import json
from typing import Any

from ml_connector.retry import TimeBudgetExceeded


class VismaError(RuntimeError):
    def __init__(self, message: str, *, status: int | None = None, fault_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.fault_code = fault_code


class VismaAuthError(VismaError):
    """Credentials or tenant refused; retrying cannot help until the configuration changes."""


class VismaTimeBudgetExceeded(VismaError, TimeBudgetExceeded):
    """The Lambda's remaining time ran short; the poller stops cleanly and the next run resumes."""


def error_message(body: bytes, content_type: str | None) -> tuple[str, str | None]:
    """The message (and IPP fault code) from any of the three body shapes Visma returns:
    ``{"message": ...}`` (or ``Message``), the IPPException shape, or plain text."""
    text = body.decode("utf-8", errors="replace").strip()
    data: Any = None
    if text.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
    if isinstance(data, dict):
        if "ExceptionMessage" in data:
            code = data.get("ExceptionFaultCode")
            return str(data["ExceptionMessage"]), str(code) if code is not None else None
        for key in ("message", "Message", "error_description", "error"):
            if data.get(key):
                return str(data[key]), None
    return (text[:500] or "(empty body)"), None
