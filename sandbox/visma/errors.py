"""Error bodies in the three shapes the ERP API is seen to answer with (reference §7.2)."""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Any, Literal

from sandbox.http import Response

Shape = Literal["message", "ipp", "text"]
SHAPES: tuple[Shape, ...] = ("message", "ipp", "text")
DENIED = "Authorization has been denied for this request."


def message_body(text: str) -> dict[str, Any]:
    return {"message": text}


def ipp_body(text: str, fault_code: str) -> dict[str, Any]:
    return {"ExceptionType": "IPPException", "ExceptionMessage": text, "ExceptionFaultCode": fault_code,
            "ExceptionMessageID": f"{fault_code}_{uuid.uuid4()}", "ExceptionDetails": ""}


def error_response(status: int, shape: Shape = "message", text: str | None = None,
                   fault_code: str = "10000", headers: dict[str, str] | None = None) -> Response:
    text = text or default_text(status)
    if shape == "ipp":
        body: Any = ipp_body(text, fault_code)
    elif shape == "text":
        body = text
    else:
        body = message_body(text)
    return Response(status, body, dict(headers or {}))


def default_text(status: int) -> str:
    if status >= 500:
        return "An error has occurred."
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


class ApiError(Exception):
    """Raised by handlers; becomes the error response."""

    def __init__(self, status: int, text: str, shape: Shape = "message", fault_code: str = "10000",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.shape = shape
        self.fault_code = fault_code
        self.headers = headers or {}

    def response(self) -> Response:
        return error_response(self.status, self.shape, self.text, self.fault_code, self.headers)


def bad_request(text: str) -> ApiError:
    return ApiError(400, text)
