"""Value transforms a mapping file can name. Each takes a value and returns the normalised value
(None when nothing usable is left). Unknown inputs pass through unchanged rather than fail a record."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# ISO 3166-1 alpha-2 -> (alpha-3, English name, other names seen in Nordic ERPs).
COUNTRIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "NO": ("NOR", "Norway", ("Norge", "Noreg")),
    "SE": ("SWE", "Sweden", ("Sverige",)),
    "DK": ("DNK", "Denmark", ("Danmark",)),
    "FI": ("FIN", "Finland", ("Suomi",)),
    "IS": ("ISL", "Iceland", ("Ísland",)),
    "NL": ("NLD", "Netherlands", ("Nederland", "Holland", "The Netherlands")),
    "DE": ("DEU", "Germany", ("Deutschland", "Tyskland")),
    "GB": ("GBR", "United Kingdom", ("UK", "Great Britain", "Storbritannia", "England")),
    "IE": ("IRL", "Ireland", ()),
    "FR": ("FRA", "France", ("Frankrike",)),
    "ES": ("ESP", "Spain", ("España", "Spania")),
    "PT": ("PRT", "Portugal", ()),
    "IT": ("ITA", "Italy", ("Italia",)),
    "BE": ("BEL", "Belgium", ("België", "Belgique")),
    "LU": ("LUX", "Luxembourg", ()),
    "CH": ("CHE", "Switzerland", ("Schweiz", "Sveits")),
    "AT": ("AUT", "Austria", ("Österreich", "Østerrike")),
    "PL": ("POL", "Poland", ("Polska", "Polen")),
    "CZ": ("CZE", "Czechia", ("Czech Republic",)),
    "EE": ("EST", "Estonia", ("Eesti", "Estland")),
    "LV": ("LVA", "Latvia", ("Latvija", "Latvia")),
    "LT": ("LTU", "Lithuania", ("Lietuva", "Litauen")),
    "US": ("USA", "United States", ("USA", "United States of America")),
    "CA": ("CAN", "Canada", ()),
    "CN": ("CHN", "China", ("Kina",)),
    "JP": ("JPN", "Japan", ()),
    "IN": ("IND", "India", ()),
    "AU": ("AUS", "Australia", ()),
}
_COUNTRY_INDEX: dict[str, str] = {}
for _code, (_alpha3, _name, _aliases) in COUNTRIES.items():
    for _alias in (_code, _alpha3, _name, *_aliases):
        _COUNTRY_INDEX[_alias.casefold()] = _code

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def trim(value: Any) -> Any:
    return _text(value) if isinstance(value, str) else value


def lower(value: Any) -> Any:
    text = _text(value) if isinstance(value, str) else None
    return text.lower() if text else (value if not isinstance(value, str) else None)


def upper(value: Any) -> Any:
    text = _text(value) if isinstance(value, str) else None
    return text.upper() if text else (value if not isinstance(value, str) else None)


def email(value: Any) -> str | None:
    """Lower-cased address, or None for anything that is not an address (Marketo would skip the record)."""
    text = _text(value)
    if not text:
        return None
    text = text.lower()
    return text if EMAIL_PATTERN.match(text) and text.isascii() else None


def phone(value: Any) -> str | None:
    """Digits with an optional leading '+': '+47 22 00-00 00' -> '+4722000000', '0047…' -> '+47…'."""
    text = _text(value)
    if not text:
        return None
    digits = re.sub(r"\D", "", text)
    if not digits:
        return None
    if text.startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    return digits


def country_code(value: Any) -> Any:
    text = _text(value)
    return _COUNTRY_INDEX.get(text.casefold(), text) if text else None


def country_name(value: Any) -> Any:
    code = country_code(value)
    return COUNTRIES[code][1] if code in COUNTRIES else code


def iso_utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "trim": trim,
    "lower": lower,
    "upper": upper,
    "email": email,
    "phone": phone,
    "country_code": country_code,
    "country_name": country_name,
    "iso_utc": iso_utc,
}
