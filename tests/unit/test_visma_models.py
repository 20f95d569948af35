from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ml_connector.visma.client import to_page
from ml_connector.visma.models import CustomerDto, format_visma_datetime, parse_visma_datetime


@pytest.mark.parametrize(("raw", "expected"), [
    ("2025-03-14T09:41:27.513", datetime(2025, 3, 14, 9, 41, 27, 513000, tzinfo=UTC)),
    ("2025-03-14T10:41:27.513+01:00", datetime(2025, 3, 14, 9, 41, 27, 513000, tzinfo=UTC)),
    ("2025-03-14T09:41:27Z", datetime(2025, 3, 14, 9, 41, 27, tzinfo=UTC)),
    ("2025-03-14 09:41:27", datetime(2025, 3, 14, 9, 41, 27, tzinfo=UTC)),
    ("2025-03-14T09:41:27.1234567-0200", datetime(2025, 3, 14, 11, 41, 27, 123456, tzinfo=UTC)),
    ("2025-03-14", datetime(2025, 3, 14, tzinfo=UTC)),
])
def test_parses_both_timestamp_shapes(raw: str, expected: datetime) -> None:
    assert parse_visma_datetime(raw) == expected


@pytest.mark.parametrize("raw", ["", "14.03.2025", "2025-03-14T9:41", "yesterday"])
def test_rejects_what_is_not_a_timestamp(raw: str) -> None:
    with pytest.raises(ValueError, match="not a Visma date-time"):
        parse_visma_datetime(raw)


def test_filter_format_has_no_zone_suffix() -> None:
    value = datetime(2025, 3, 14, 10, 41, 27, 513999, tzinfo=UTC)
    assert format_visma_datetime(value) == "2025-03-14T10:41:27.513"


def base_customer(**changes: object) -> dict[str, object]:
    raw: dict[str, object] = {"internalId": 1, "number": "10001", "name": "Nordlys AS",
                              "lastModifiedDateTime": "2025-01-01T00:00:00", "unknownNewField": {"x": 1}}
    raw.update(changes)
    return raw


def test_dto_tolerates_unknown_fields() -> None:
    assert CustomerDto.model_validate(base_customer()).internalId == 1


@pytest.mark.parametrize(("changes", "field"), [
    ({"internalId": "1"}, "internalId"), ({"number": None}, "number"), ({"name": "  "}, "name"),
    ({"lastModifiedDateTime": "soon"}, "lastModifiedDateTime"), ({"mainAddress": "Storgata 1"}, "mainAddress"),
    ({"customerClass": {"id": 7}}, "customerClass"),
])
def test_dto_is_strict_on_mapped_fields(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CustomerDto.model_validate(base_customer(**changes))
    assert field in str(info.value)


def test_page_shapes() -> None:
    bare = to_page([{"internalId": 1, "metadata": {"totalCount": 5, "maxPageSize": 2}}], 1)
    assert (bare.total_count, bare.max_page_size, bare.records) == (5, 2, [{"internalId": 1}])
    wrapped = to_page({"pageNumber": 2, "pageSize": 10, "totalCount": 12, "records": [{"termsId": "30D"}]}, 2)
    assert (wrapped.page_number, wrapped.total_count, wrapped.records) == (2, 12, [{"termsId": "30D"}])
    assert to_page([], 3).records == []
