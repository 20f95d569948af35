"""Marketo errors and the table that decides what is retried (reference: Marketo error codes)."""

from __future__ import annotations

from ml_connector.retry import TimeBudgetExceeded

# Refresh the token, then retry once.
TOKEN_CODES = frozenset({"601", "602"})
# Instance-wide rate (606) and concurrency (615) limits: back off long enough to clear the window.
LIMIT_CODES = frozenset({"606", "615"})
# Transient: capped exponential backoff.
TRANSIENT_CODES = frozenset({"502", "604", "608", "611", "614", "713"})
QUOTA_CODE = "607"
CRM_ENABLED_CODE = "1018"


class MarketoError(RuntimeError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"Marketo {code}: {message}")
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code in TOKEN_CODES | LIMIT_CODES | TRANSIENT_CODES


class MarketoAuthError(MarketoError):
    """The identity endpoint refused the client id/secret."""


class MarketoQuotaExceeded(MarketoError):
    """607: the instance's daily quota is used up; writing stops until the reset (midnight US Central)."""


class MarketoCrmEnabled(MarketoError):
    """1018: native CRM sync owns companies here; the Company API is read-only."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, f"{message}. This instance syncs companies from a CRM, so Marketo's Company API is "
                               "read-only: map the entity to a custom object instead (see README, 'Targets').")


class MarketoTimeBudgetExceeded(MarketoError, TimeBudgetExceeded):
    def __init__(self, message: str) -> None:
        super().__init__("time", message)


def error_for(code: str, message: str) -> MarketoError:
    if code == QUOTA_CODE:
        return MarketoQuotaExceeded(code, message)
    if code == CRM_ENABLED_CODE:
        return MarketoCrmEnabled(code, message)
    return MarketoError(code, message)
