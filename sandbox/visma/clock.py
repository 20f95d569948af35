"""Sandbox time: a skewable UTC clock, the two stamp shapes the API serves, and the filter formats it accepts.

Instants are kept as integer milliseconds since the Unix epoch (UTC): compact for 100k rows and exact
at the precision the API serves (``.FFF``), so a served stamp fed back as a filter matches itself.
"""

from __future__ import annotations

import operator
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

MS_PER_DAY = 86_400_000

# Filter formats of §2.1: yyyy-MM-dd, then optionally ' ' or 'T' + HH:mm:ss, then optionally .FFF.
_FILTER = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,3}))?)?$")
_ZONE_SUFFIX = re.compile(r"(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
# Served stamps: naive or with an offset; used to read stamps of raw records put by tests.
_SERVED = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,7}))?(Z|[+-]\d{2}:\d{2})?$")

CONDITIONS: dict[str, Callable[[int, int], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}


class SandboxClock:
    """Real UTC now plus a settable skew (the ERP's clock need not agree with the connector's); naive stamps
    and filter values in UTC, or, for a tenant whose server runs on local time, in a local zone (standard
    offset ``local_minutes`` with the EU summer-time rule)."""

    def __init__(self, skew_seconds: float = 0.0, local_minutes: int | None = None) -> None:
        self._skew = float(skew_seconds)
        self._local_minutes = local_minutes
        self._lock = threading.Lock()

    def naive(self, ms: int) -> str:
        """A stamp without offset: UTC, or the local wall time."""
        if self._local_minutes is None:
            return format_stamp(ms)
        return format_stamp(ms + local_offset_minutes(ms, self._local_minutes) * 60_000)

    def filter_ms(self, text: str) -> int:
        """A naive filter value -> UTC ms, read as the stamps are written."""
        wall = parse_filter_value(text)
        if self._local_minutes is None:
            return wall
        guess = wall - self._local_minutes * 60_000
        return wall - local_offset_minutes(guess, self._local_minutes) * 60_000

    def set_skew(self, seconds: float) -> None:
        with self._lock:
            self._skew = float(seconds)

    def now_ms(self) -> int:
        with self._lock:
            skew = self._skew
        return int((time.time() + skew) * 1000)


def to_ms(value: datetime) -> int:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def day_floor(ms: int) -> int:
    return ms - ms % MS_PER_DAY


def _last_sunday(year: int, month: int) -> datetime:
    last = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def local_offset_minutes(ms: int, standard_minutes: int) -> int:
    """The local UTC offset at an instant under the EU summer-time rule (01:00 UTC, last Sundays of
    March and October); computed rather than looked up so no tz database is needed."""
    at = from_ms(ms)
    start = _last_sunday(at.year, 3).replace(hour=1)
    end = _last_sunday(at.year, 10).replace(hour=1)
    return standard_minutes + (60 if start <= at < end else 0)


def format_stamp(ms: int, offset_minutes: int | None = None) -> str:
    """``2025-03-14T09:41:27.513`` (naive UTC) or ``2025-03-14T10:41:27.513+01:00`` (same instant, local);
    trailing zeros of the fraction are dropped as .NET's ``FFF`` does."""
    local = from_ms(ms) + timedelta(minutes=offset_minutes or 0)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ms % 1000:03d}".rstrip("0")
    if fraction:
        text += "." + fraction
    if offset_minutes is None:
        return text
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def format_date(ms: int) -> str:
    """A date field as the API serves it (``2026-10-02T00:00:00``)."""
    return from_ms(day_floor(ms)).strftime("%Y-%m-%dT%H:%M:%S")


def parse_filter_value(text: str) -> int:
    """A filter value in one of the accepted formats -> UTC ms (naive values are UTC here; a date alone
    means its midnight). Raises ValueError for anything else, a zone suffix included."""
    value = text.strip()
    if _ZONE_SUFFIX.search(value) and not _FILTER.match(value):
        raise ValueError(f"'{text}' has a time zone suffix; send the date-time without Z or an offset")
    match = _FILTER.match(value)
    if match is None:
        raise ValueError(f"'{text}' is not a valid date-time; use yyyy-MM-dd, yyyy-MM-dd HH:mm:ss[.FFF] "
                         "or yyyy-MM-ddTHH:mm:ss[.FFF]")
    day, clock, fraction = match.groups()
    try:
        parsed = datetime.fromisoformat(f"{day}T{clock or '00:00:00'}").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"'{text}' is not a valid date-time: {exc}") from exc
    return to_ms(parsed) + int((fraction or "0").ljust(3, "0"))


def parse_served_stamp(value: object) -> int | None:
    """UTC ms of a stamp in either served shape, or None when it is not one (malformed raw records)."""
    if not isinstance(value, str):
        return None
    match = _SERVED.match(value.strip())
    if match is None:
        return None
    day, clock, fraction, zone = match.groups()
    try:
        parsed = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=UTC)
    except ValueError:
        return None
    ms = to_ms(parsed) + int((fraction or "0")[:3].ljust(3, "0"))
    if zone and zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        ms -= sign * (int(zone[1:3]) * 60 + int(zone[4:6])) * 60_000
    return ms
