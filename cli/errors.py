"""What an operator sees when a command cannot run: one line naming the cause and the fix, no traceback.

``explain`` turns the failures an operator can cause (AWS credentials, region, stack name, configuration)
into an exit code and that line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from pydantic import ValidationError

from cli.target import TargetError
from ml_connector.config import ConfigError
from ml_connector.queues import OperationError

EXIT_PROBLEM, EXIT_USAGE = 1, 2
REFUSED_CREDENTIALS = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
                       "InvalidSignatureException", "SignatureDoesNotMatch", "AuthFailure"}


def explain(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, one line) for an expected failure; None for anything else."""
    if isinstance(exc, (ConfigError, TargetError)):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, ValidationError):  # a target or configuration document of the wrong shape
        return EXIT_USAGE, f"bad configuration: {exc.error_count()} error(s), first: {_first(exc)}"
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return EXIT_USAGE, ("no usable AWS credentials: configure them (`aws configure`, AWS_PROFILE, or "
                            f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) ({exc})")
    if isinstance(exc, NoRegionError):
        return EXIT_USAGE, "no AWS region: pass --region, or set AWS_REGION or your profile's region"
    if isinstance(exc, InvalidRegionError):
        return EXIT_USAGE, f"invalid AWS region: {exc}"
    if isinstance(exc, EndpointConnectionError):
        return EXIT_USAGE, f"cannot reach AWS ({exc}): check --region and your network"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", exc))
        operation = exc.operation_name
        if code in REFUSED_CREDENTIALS:
            return EXIT_USAGE, f"AWS refused the credentials ({code}): {message}"
        if code in ("AccessDenied", "AccessDeniedException"):
            return EXIT_USAGE, f"AWS denied {operation}: {message}"
        return EXIT_PROBLEM, f"AWS {operation} failed ({code}): {message}"
    if isinstance(exc, OperationError):
        return EXIT_PROBLEM, str(exc)
    return None


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc']) or 'document'}: {error['msg']}"
