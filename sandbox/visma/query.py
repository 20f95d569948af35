"""Query parameters of the list endpoints: paging, date conditions and field filters, validated as the API does.

Unknown parameters are ignored (reference §8: the API answers 200 to misspelt filters).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sandbox.visma.clock import CONDITIONS, parse_filter_value
from sandbox.visma.errors import bad_request

# Page size when the request names none; the API's own default is unconfirmed (reference §2.2).
DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class PageRequest:
    number: int  # 1-based
    size: int  # effective: min(requested, max page size)

    @property
    def start(self) -> int:
        return (self.number - 1) * self.size

    def bounds(self, repeat_previous_last: bool = False) -> tuple[int, int]:
        """Slice of the filtered rows; with the duplicate hazard a later page also starts with the last
        row of the page before it (one extra row, nothing skipped)."""
        start = self.start
        if repeat_previous_last and self.number > 1:
            start -= 1
        return start, self.start + self.size


def page_request(query: Mapping[str, str], max_page_size: int) -> PageRequest:
    number = _positive_int(query, "pageNumber", 1)
    size = _positive_int(query, "pageSize", DEFAULT_PAGE_SIZE)
    return PageRequest(number, min(size, max_page_size))


def _positive_int(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"The value '{raw}' is not valid for {name}.") from None
    if value < 1:
        raise bad_request(f"{name} must be greater than 0.")
    return value


@dataclass(frozen=True)
class DateCondition:
    condition: str
    ms: int

    def holds(self, value_ms: int | None) -> bool:
        return value_ms is not None and CONDITIONS[self.condition](value_ms, self.ms)


def date_condition(query: Mapping[str, str], name: str,
                   to_ms: Callable[[str], int] = parse_filter_value) -> DateCondition | None:
    """``name`` + ``nameCondition``: both or neither ("mutually inclusive"), a known operator, an accepted format
    (read by ``to_ms``: naive values are in the server's zone)."""
    value, condition = query.get(name), query.get(f"{name}Condition")
    if not value and not condition:
        return None
    if not value or not condition:
        raise bad_request(f"{name} and {name}Condition are mutually inclusive: send both or neither.")
    condition = condition.strip()
    if condition not in CONDITIONS:
        raise bad_request(f"{name}Condition '{condition}' is not valid; use one of >, >=, <, <=.")
    try:
        return DateCondition(condition, to_ms(value))
    except ValueError as exc:
        raise bad_request(f"{name}: {exc}") from None


class Filterable(Protocol):
    """The stamps a filter reads straight from a row (the store's rows)."""

    modified_ms: int
    created_ms: int | None


R = TypeVar("R", bound=Filterable)


@dataclass(frozen=True)
class ListFilter:
    modified: DateCondition | None = None
    created: DateCondition | None = None
    status: str | None = None
    name_contains: str | None = None  # casefolded
    equals: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def is_empty(self) -> bool:
        """Nothing to filter on: every row matches."""
        return self.modified is None and self.created is None and not self.reads_fields

    @property
    def reads_fields(self) -> bool:
        return self.status is not None or self.name_contains is not None or bool(self.equals)

    def matches(self, row: R, fields: Callable[[R], Mapping[str, Any]]) -> bool:
        # Stamps first: they are cheap; the other fields may need the record to be generated.
        if self.modified and not self.modified.holds(row.modified_ms):
            return False
        if self.created and not self.created.holds(row.created_ms):
            return False
        if not self.reads_fields:
            return True
        values = fields(row)
        if self.status is not None and values.get("status") != self.status:
            return False
        name = values.get("name")
        if self.name_contains is not None and not (isinstance(name, str) and self.name_contains in name.casefold()):
            return False
        return all(values.get(key) == wanted for key, wanted in self.equals)


def list_filter(query: Mapping[str, str], *, statuses: tuple[str, ...], equality: tuple[str, ...],
                created: bool, name: bool = True, booleans: tuple[str, ...] = (),
                to_ms: Callable[[str], int] = parse_filter_value) -> ListFilter:
    """The list's filter. ``statuses`` empty: no status filter; ``name``: "contains" on the name;
    ``booleans``: equality parameters with a true/false value (compared as "true"/"false")."""
    status = query.get("status") if statuses else None
    if status and status not in statuses:
        raise bad_request(f"The value '{status}' is not valid for status; use one of {', '.join(statuses)}.")
    contains = query.get("name") if name else None
    return ListFilter(
        modified=date_condition(query, "lastModifiedDateTime", to_ms),
        created=date_condition(query, "createdDateTime", to_ms) if created else None,
        status=status or None,
        name_contains=contains.casefold() if contains else None,
        equals=tuple((key, _boolean(key, query[key]) if key in booleans else query[key])
                     for key in equality if query.get(key)),
    )


def _boolean(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise bad_request(f"The value '{raw}' is not valid for {name}.")
    return value


def page_slice(rows: list[Any], bounds: tuple[int, int]) -> list[Any]:
    start, stop = bounds
    return rows[max(start, 0):max(stop, 0)]


def with_metadata(items: list[dict[str, Any]], total: int, max_page_size: int) -> list[dict[str, Any]]:
    """The bare-array list shape: every element carries the same ``metadata``."""
    return [{**item, "metadata": {"totalCount": total, "maxPageSize": max_page_size}} for item in items]


def wrapped(items: list[dict[str, Any]], page: PageRequest, total: int) -> dict[str, Any]:
    """The wrapper list shape of newer endpoints such as ``/v1/creditTerm``."""
    return {"pageNumber": page.number, "pageSize": page.size, "totalCount": total, "records": items}
