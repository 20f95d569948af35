from datetime import UTC, datetime, timedelta, timezone

import pytest

from ml_connector.sync import transforms as t


@pytest.mark.parametrize(("value", "expected"), [
    ("NO", "NO"), ("nor", "NO"), ("Norway", "NO"), ("norge", "NO"), ("Sverige", "SE"), (" dk ", "DK"),
    ("Atlantis", "Atlantis"), (None, None), ("  ", None),
])
def test_country_code(value, expected):
    assert t.country_code(value) == expected


def test_country_name():
    assert t.country_name("FI") == "Finland"
    assert t.country_name("Suomi") == "Finland"
    assert t.country_name("XX") == "XX"


@pytest.mark.parametrize(("value", "expected"), [
    (" Kari@Example.NO ", "kari@example.no"), ("not-an-email", None), ("a@b", None), ("", None),
    ("kåre@example.no", None), (None, None),
])
def test_email(value, expected):
    assert t.email(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("+47 22 00-00 00", "+4722000000"), ("0046 8 123 456", "+468123456"), ("22 00 00 00", "22000000"),
    ("n/a", None), (None, None),
])
def test_phone(value, expected):
    assert t.phone(value) == expected


def test_text_transforms():
    assert t.trim("  a b ") == "a b"
    assert t.trim("   ") is None
    assert t.trim(5) == 5
    assert t.upper(" nok ") == "NOK"
    assert t.lower("ABC") == "abc"
    assert t.lower(None) is None


def test_iso_utc_normalises_offsets():
    local = datetime(2025, 3, 14, 10, 41, 27, tzinfo=timezone(timedelta(hours=1)))
    assert t.iso_utc(local) == "2025-03-14T09:41:27Z"
    assert t.iso_utc(datetime(2025, 3, 14, 9, 41, 27, tzinfo=UTC)) == "2025-03-14T09:41:27Z"
