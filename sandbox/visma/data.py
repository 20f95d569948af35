"""Deterministic generator of realistic Nordic customers, suppliers, contacts and invoices.

Every record is a pure function of (seed, entity, index): its own ``random.Random`` is seeded with a
string (stable across processes), so a record can be regenerated on demand instead of being kept in
memory, and the same seed always gives the same records byte for byte. The first draws of a record's
stream are its "core" (country and stamps), which the store keeps per row so 100k rows stay cheap.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from random import Random
from typing import Any

from sandbox.visma.clock import MS_PER_DAY, day_floor, format_date, format_stamp, to_ms
from sandbox.visma.reference import (
    ADDRESS_LINE2,
    ADDRESS_LINE3,
    CLASS_PURCHASE,
    CLASS_REGION,
    COUNTRIES,
    CUSTOMER_CLASSES,
    CUSTOMER_STATUS_WEIGHTS,
    CUSTOMER_TERMS,
    DOMESTIC_COUNTRY,
    EU_COUNTRIES,
    PAYMENT_METHOD_TEXT,
    POSITIONS,
    PURCHASE_TEXT,
    REGION_TEXT,
    SEGMENT_TEXT,
    SUPPLIER_CLASSES,
    SUPPLIER_SEGMENT_TEXT,
    SUPPLIER_STATUS_WEIGHTS,
    SUPPLIER_TERMS,
    TITLES,
    VAT_ZONES,
    City,
    Country,
    attribute,
)

Record = dict[str, Any]
ENTITIES = ("customer", "supplier")
# Seeded stamps lie between START and the generator's base (a fixed date, so data does not depend on today).
START_MS = to_ms(datetime(2019, 1, 2, tzinfo=UTC))
FIXED_BASE_MS = to_ms(datetime(2026, 6, 1, tzinfo=UTC))
OFFSET_SHARE = 5  # one record in each block of five is served with a local UTC offset


@dataclass(frozen=True)
class EntitySpec:
    id_base: int  # internalId of index 0
    number_base: int  # customer/supplier number of index 0
    id_block: int  # addressId = block + internalId * 4 + k; contactId the same + CONTACT_OFFSET


SPECS = {"customer": EntitySpec(10001, 10001, 1_000_000), "supplier": EntitySpec(50001, 70001, 5_000_000)}
CONTACT_OFFSET = 1_000_000
CONTACT_ID_BLOCK = 3_000_000  # ContactDto ids of /v1/customer/{cd}/contact
STANDARD_OFFSET = {"FI": 120, "GB": 0}  # minutes; the others are on Central European Time
_ASCII = str.maketrans({"æ": "ae", "ø": "o", "å": "a", "ä": "a", "ö": "o", "ü": "u", "ß": "ss", "é": "e"})


@dataclass(frozen=True)
class Core:
    country: str
    created_ms: int
    modified_ms: int


@dataclass(frozen=True)
class Identity:
    name: str
    domain: str


def internal_id_of(entity: str, index: int) -> int:
    return SPECS[entity].id_base + index


def number_of(entity: str, index: int) -> str:
    return str(SPECS[entity].number_base + index)


def standard_offset(country: str) -> int:
    return STANDARD_OFFSET.get(country, 60)


def ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower().translate(_ASCII)).encode("ascii", "ignore").decode()
    return "-".join("".join(ch if ch.isalnum() else " " for ch in folded).split())


def _weighted(rng: Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _digits(rng: Random, count: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(count))


class Generator:
    def __init__(self, seed: int, base_ms: int) -> None:
        self.seed = seed
        self.base_ms = base_ms

    def rng(self, kind: str, index: int) -> Random:
        return Random(f"visma-sandbox:{self.seed}:{kind}:{index}")

    # -- per-row core -----------------------------------------------------------------------
    def core(self, entity: str, index: int) -> tuple[Random, Core]:
        """The record's rng and its first draws: country, createdDateTime, lastModifiedDateTime."""
        rng = self.rng(entity, index)
        country = _weighted(rng, {code: c.weight for code, c in COUNTRIES.items()})
        span = self.base_ms - START_MS
        created = START_MS + int(rng.random() * span * 0.9)
        modified = created + int(rng.random() * (self.base_ms - created))
        return rng, Core(country, created, modified)

    def offset_shaped(self, entity: str, index: int) -> bool:
        """Exactly one record per block of five carries an offset, so any 20 records show both shapes."""
        digest = hashlib.blake2b(f"{self.seed}:{entity}:{index // OFFSET_SHARE}".encode(), digest_size=4).digest()
        return index % OFFSET_SHARE == int.from_bytes(digest, "big") % OFFSET_SHARE

    def identity(self, entity: str, index: int) -> tuple[Random, Core, Identity]:
        rng, core = self.core(entity, index)
        return rng, core, self._identity(rng, COUNTRIES[core.country])

    @staticmethod
    def _identity(rng: Random, country: Country) -> Identity:
        prefix, sector = rng.choice(country.name_words), rng.choice(country.sector_words)
        form = _weighted(rng, dict(country.legal_forms))
        place = f" {rng.choice(country.cities).short_name}" if rng.random() < 0.25 else ""
        return Identity(f"{prefix} {sector}{place} {form}", f"{ascii_slug(f'{prefix} {sector}')}.example")

    # -- customers and suppliers ------------------------------------------------------------
    def record(self, entity: str, index: int, internal_id: int, number: str) -> Record:
        if entity == "customer":
            return self.customer(index, internal_id, number)
        return self.supplier(index, internal_id, number)

    def customer(self, index: int, internal_id: int, number: str) -> Record:
        rng, core, ident = self.identity("customer", index)
        country = COUNTRIES[core.country]
        ids = SPECS["customer"].id_block + internal_id * 4
        contacts = ids + CONTACT_OFFSET
        city = rng.choice(country.cities)
        class_id = _customer_class(rng, core.country)
        terms = rng.choice(CUSTOMER_TERMS)
        employees = _employees(rng)
        verification = rng.choice(("Disabled", "DaysPastDue", "CreditLimit", "LimitAndDaysPastDue"))
        main_phone = _phone(rng, country, city)
        record: Record = {
            "internalId": internal_id,
            "number": number,
            "name": ident.name,
            "status": _weighted(rng, CUSTOMER_STATUS_WEIGHTS),
            "mainAddress": _address(rng, country, city, ids),
            "mainContact": _main_contact(rng, country, ident, contacts, main_phone),
            "accountReference": f"K-{rng.randrange(10, 9999)}" if rng.random() < 0.4 else None,
            "parentRecord": None,
            "customerClass": _class_ref(CUSTOMER_CLASSES, class_id),
            "creditTerms": {"id": terms.terms_id, "description": terms.description},
            "currencyId": country.currency,
            "creditVerification": verification,
            "creditLimit": float(rng.randrange(1, 100) * 5000),
            "creditDaysPastDue": rng.choice((0, 15, 30, 45, 60)),
            "invoiceAddress": _address(rng, country, city, ids + 1, post_box=True),
            "invoiceContact": {"contactId": contacts + 1, "name": ident.name, "attention": "Accounts payable",
                               "email": f"faktura@{ident.domain}", "phone1": main_phone},
            "deliveryAddress": _address(rng, country, rng.choice(country.cities), ids + 2),
            "deliveryContact": {"contactId": contacts + 2, "name": f"{ident.name} Lager", "phone1": main_phone},
            "printInvoices": rng.random() < 0.1,
            "acceptAutoInvoices": rng.random() < 0.7,
            "sendInvoicesByEmail": rng.random() < 0.85,
            "sendDunningLettersViaEMail": rng.random() < 0.8,
            "printDunningLetters": rng.random() < 0.1,
            "printStatements": False,
            "sendStatementsByEmail": rng.random() < 0.6,
            "printMultiCurrencyStatements": False,
            "statementType": rng.choice(("OpenItem", "BalanceBroughtForward")),
            "vatRegistrationId": None,
            "corporateId": None,
            "gln": _digits(rng, 13) if rng.random() < 0.15 else None,
            "vatZone": VAT_ZONES["DOM" if class_id in ("DOM", "KEY", "PUB") else class_id],
            "location": {"countryId": core.country, "id": "MAIN", "name": "Primary location"},
            "priceClass": {"id": "KEY", "description": "Key account prices"} if class_id == "KEY"
            else {"id": "STD", "description": "Standard prices"},
            "attributes": [attribute("SEGMENT", _segment(employees), SEGMENT_TEXT),
                           attribute("REGION", CLASS_REGION[class_id], REGION_TEXT)],
            "lastModifiedDateTime": None,  # stamps are filled in by the store from the row
            "createdDateTime": None,
            "invoiceToDefaultLocation": True,
            "defaultPaymentMethodId": "EHF" if class_id == "PUB" else "INVOICE",
            "numberOfEmployees": employees,
            "excludeDebtCollection": rng.random() < 0.03,
            "timeStamp": None,
            "errorInfo": None,
        } | _tax_ids(rng, core.country)
        record["mainAddress"] |= self._more_lines("customer", index, core.country)
        return record

    def supplier(self, index: int, internal_id: int, number: str) -> Record:
        rng, core, ident = self.identity("supplier", index)
        country = COUNTRIES[core.country]
        ids = SPECS["supplier"].id_block + internal_id * 4
        city = rng.choice(country.cities)
        terms = rng.choice(SUPPLIER_TERMS)
        method = "GIRO" if core.country == "SE" and rng.random() < 0.6 else "BANK"
        detail = _bank_detail(rng, core.country)
        main_address = _address(rng, country, city, ids) | self._more_lines("supplier", index, core.country)
        main_contact = _main_contact(rng, country, ident, ids + CONTACT_OFFSET, _phone(rng, country, city))
        record: Record = {
            "internalId": internal_id,
            "number": number,
            "name": ident.name,
            "status": _weighted(rng, SUPPLIER_STATUS_WEIGHTS),
            "mainAddress": main_address,
            "mainContact": main_contact,
            "accountReference": f"KUNDE-{rng.randrange(100, 9999)}" if rng.random() < 0.5 else None,
            "parentRecord": None,
            "supplierClass": _class_ref(SUPPLIER_CLASSES, rng.choice(SUPPLIER_CLASSES)["id"]),
            "creditTerms": {"id": terms.terms_id, "description": terms.description},
            "documentLanguage": country.language,
            "currencyId": country.currency,
            "remitAddress": {k: v for k, v in main_address.items() if k != "addressId"},
            "remitContact": {"name": ident.name, "email": f"regnskap@{ident.domain}"},
            "paymentMethod": {"id": method, "description": PAYMENT_METHOD_TEXT[method]},
            "cashAccount": "1920",
            "chargeBearer": "Shared" if core.country != DOMESTIC_COUNTRY else "Payer",
            "accountUsedForPayment": detail["paymentMethodDetailBankingDetailType"],
            "paymentBy": rng.choice(("DueDate", "DueDate", "DiscountDate")),
            "paymentLeadTime": rng.choice((0, 1, 2)),
            "paymentRefDisplayMask": None,
            "paySeparately": rng.random() < 0.05,
            "supplierAddress": None,
            "supplierContact": None,
            "location": {"countryId": core.country, "id": "MAIN", "name": "Main"},
            "vatRegistrationId": None,
            "corporateId": None,
            "vatZone": VAT_ZONES["DOM" if core.country == DOMESTIC_COUNTRY else
                                 "EU" if core.country in EU_COUNTRIES else "EXP"],
            "glAccounts": None,
            "attributes": [],  # filled below from values drawn in the record
            "lastModifiedDateTime": None,
            "supplierPaymentMethodDetails": [detail],
            "retainageApply": False,
            "note": None,
            "numberOfEmployees": _employees(rng),
            "naceCode": rng.choice(("49.410", "46.690", "62.010", "69.201", "25.110", "43.210", "52.290")),
            "landedCostSupplier": rng.random() < 0.05,
            "timeStamp": None,
            "errorInfo": None,
        } | _tax_ids(rng, core.country)
        record["attributes"] = [
            attribute("SEGMENT", _segment(record["numberOfEmployees"]), SUPPLIER_SEGMENT_TEXT),
            attribute("INNKJOP", CLASS_PURCHASE[record["supplierClass"]["id"]], PURCHASE_TEXT)]
        return record

    def _more_lines(self, entity: str, index: int, country: str) -> Record:
        """addressLine2 for about one record in three, addressLine3 for some of those. Drawn from a stream
        of their own so that the record's other values stay what they were before lines 2-3 existed."""
        rng = self.rng(f"{entity}-address-lines", index)
        if rng.random() >= 0.3:
            return {}
        fill = {"n": rng.randint(1, 6), "b": rng.choice("ABCD")}
        line3 = rng.choice(ADDRESS_LINE3[country]) if rng.random() < 0.25 else None
        return {"addressLine2": rng.choice(ADDRESS_LINE2[country]).format(**fill), "addressLine3": line3}

    # -- edits -------------------------------------------------------------------------------
    def edit(self, entity: str, current: Record, rng: Random) -> Record:
        """Changes to one to three mapped fields, each guaranteed to differ from ``current``."""
        country = COUNTRIES.get(_country_of(current), COUNTRIES[DOMESTIC_COUNTRY])
        kinds = rng.sample(_EDIT_KINDS, rng.choice((1, 1, 2, 3)))
        changes: Record = {}
        for kind in kinds:
            changes.update(_EDITS[kind](rng, entity, current, country))
        return changes

    # -- contacts and invoices ---------------------------------------------------------------
    def contacts(self, index: int, internal_id: int, number: str) -> list[Record]:
        """1-3 contact persons of a customer; about 15 % carry at least one consent flag."""
        _, core, ident = self.identity("customer", index)
        return [_contact_dto(draw, CONTACT_ID_BLOCK + internal_id * 4 + k, number, ident.domain,
                             rowversion_at(draw.modified_ms, k))
                for k, draw in enumerate(self._contact_draws(index, core))]

    def contact_stamps(self, index: int) -> list[int]:
        """The lastModifiedDateTime (ms) of each of ``contacts(index, ...)``, without building them."""
        _, core = self.core("customer", index)
        return [draw.modified_ms for draw in self._contact_draws(index, core)]

    def new_contact(self, index: int, contact_id: int, number: str) -> Record:
        """One more contact person of customer ``index`` (stamps are set by the store)."""
        _, core, ident = self.identity("customer", index)
        rng = self.rng("contact-insert", contact_id)
        draw = _draw_contact(rng, COUNTRIES[core.country], core.created_ms, self.base_ms)
        return _contact_dto(draw, contact_id, number, ident.domain, 0)

    def _contact_draws(self, index: int, core: Core) -> list[ContactDraw]:
        rng = self.rng("contacts", index)
        country = COUNTRIES[core.country]
        return [_draw_contact(rng, country, core.created_ms, self.base_ms)
                for _ in range(rng.choice((1, 1, 2, 2, 3)))]

    def edit_contact(self, current: Record, country_code: str, rng: Random) -> Record:
        """Changes to one aspect of a contact (name and e-mail, role, phone, one consent flag, active),
        guaranteed to differ from ``current``."""
        country = COUNTRIES.get(country_code, COUNTRIES[DOMESTIC_COUNTRY])
        return _CONTACT_EDITS[rng.choice(_CONTACT_EDIT_KINDS)](rng, current, country)

    def invoices(self, index: int, customer_id: int, today_ms: int) -> list[Invoice]:
        """Invoices of a seeded customer, dated relative to the sandbox's start day: some closed, some
        open and not yet due, and for about one customer in five at least one open invoice past due."""
        _, core = self.core("customer", index)
        rng = self.rng("invoices", index)
        currency = COUNTRIES[core.country].currency
        kinds = ["Closed"] * rng.randrange(0, 4)
        kinds += ["current"] * (rng.random() < 0.35) + ["overdue"] * (rng.random() < 0.2)
        result = []
        for k, kind in enumerate(kinds):
            terms = rng.choice((10, 14, 30))
            if kind == "overdue":
                document = today_ms - (terms + rng.randrange(1, 90)) * MS_PER_DAY
            elif kind == "current":
                document = today_ms - rng.randrange(0, terms) * MS_PER_DAY
            else:
                document = today_ms - rng.randrange(40, 400) * MS_PER_DAY
            due = document + terms * MS_PER_DAY
            amount = round(rng.uniform(500, 250_000), 2)
            balance = 0.0 if kind == "Closed" else round(amount * rng.choice((1.0, 1.0, 0.5)), 2)
            level = _dunning_level(rng, (today_ms - due) // MS_PER_DAY) if kind == "overdue" else 0
            dunning = due + 14 * level * MS_PER_DAY if level else None
            touched = max(document, dunning or 0) + rng.randrange(8 * 3600_000, 16 * 3600_000)
            result.append(Invoice(
                customer_id=customer_id, reference=str(200_000 + index * 8 + k),
                status="Closed" if kind == "Closed" else "Open", document_ms=document, due_ms=due, amount=amount,
                balance=balance, currency=currency, dunning_level=level, dunning_ms=dunning,
                modified_ms=min(touched, today_ms)))
        return result

    def balance_totals(self, index: int) -> Record:
        rng = self.rng("balance", index)
        sale_year = round(rng.uniform(0, 2_000_000), 2)
        return {"totalOrder": round(rng.uniform(0, 150_000), 2), "totalLoan": 0.0,
                "totalSalePeriod": round(sale_year * rng.uniform(0, 0.2), 2), "totalSaleYear": sale_year,
                "totalDiscountPeriod": 0.0, "totalDiscountYear": round(sale_year * rng.uniform(0, 0.01), 2)}


@dataclass(frozen=True, slots=True)
class ContactDraw:
    """One contact person's random draws, in the order they are taken from the stream."""

    first: str
    last: str
    flags: dict[str, bool]
    modified_ms: int
    active: bool
    title: str | None
    position: str
    phone: str


def _draw_contact(rng: Random, country: Country, created_ms: int, base_ms: int) -> ContactDraw:
    first, last = rng.choice(country.first_names), rng.choice(country.last_names)
    flags = _consent_flags(rng)
    modified = created_ms + int(rng.random() * (base_ms - created_ms))
    active = rng.random() < 0.93
    title, position = rng.choice(TITLES), rng.choice(POSITIONS)
    return ContactDraw(first, last, flags, modified, active, title, position,
                       _phone(rng, country, rng.choice(country.cities)))


def _contact_dto(draw: ContactDraw, contact_id: int, number: str, domain: str, rowversion: int) -> Record:
    return {
        "contactId": contact_id,
        "displayName": f"{draw.first} {draw.last}",
        "active": draw.active,
        "title": draw.title,
        "firstName": draw.first,
        "lastName": draw.last,
        "position": draw.position,
        "businessAccount": number,
        "businessAccountType": "Customer",
        "email": _contact_email(draw.first, draw.last, domain),
        "phone1": draw.phone,
        "doNotFax": False,
        **draw.flags,
        "lastModifiedDateTime": format_stamp(draw.modified_ms),
        "timeStamp": encode_rowversion(rowversion),
    }


def _contact_email(first: str, last: str, domain: str) -> str:
    return f"{ascii_slug(first)}.{ascii_slug(last)}@{domain}"


@dataclass(frozen=True, slots=True)
class Invoice:
    customer_id: int
    reference: str
    status: str
    document_ms: int
    due_ms: int
    amount: float
    balance: float
    currency: str
    dunning_level: int
    dunning_ms: int | None
    modified_ms: int

    def dto(self, customer_ref: Record) -> Record:
        return {
            "referenceNumber": self.reference, "documentType": "Invoice", "status": self.status,
            "hold": False, "customer": customer_ref, "documentDate": format_date(self.document_ms),
            "documentDueDate": format_date(self.due_ms), "amount": self.amount, "balance": self.balance,
            "currencyId": self.currency, "dunningLetterLevel": self.dunning_level,
            "dunningLetterDate": format_date(self.dunning_ms) if self.dunning_ms else None,
            "excludeDebtCollection": False, "debtCollection": False,
            "lastModifiedDateTime": format_stamp(self.modified_ms),
        }


def rowversion_at(ms: int, tiebreak: int) -> int:
    """A rowversion that grows with time (SQL Server's is database-wide and monotonic)."""
    return ((ms - START_MS) << 8) | (tiebreak & 0xFF)


def encode_rowversion(value: int) -> str:
    return base64.b64encode(value.to_bytes(8, "big")).decode("ascii")


def base_ms_for(now_ms: int) -> int:
    """The fixed base, unless the sandbox clock is earlier (then one day before its day)."""
    return min(FIXED_BASE_MS, day_floor(now_ms) - MS_PER_DAY)


# -- field builders -------------------------------------------------------------------------
def _customer_class(rng: Random, country: str) -> str:
    if country == DOMESTIC_COUNTRY:
        return _weighted(rng, {"DOM": 80, "KEY": 12, "PUB": 8})
    if country in EU_COUNTRIES:
        return _weighted(rng, {"EU": 90, "KEY": 10})
    return "EXP"


def _class_ref(classes: list[Record], class_id: str) -> Record:
    found = next(c for c in classes if c["id"] == class_id)
    return {"id": found["id"], "description": found["description"]}


def _employees(rng: Random) -> int:
    return min(20_000, int(rng.lognormvariate(2.6, 1.3)) + 1)


def _segment(employees: int) -> str:
    return "SMB" if employees < 50 else "MID" if employees < 250 else "ENT"


def _postal_code(rng: Random, country: str, city: City) -> str:
    number = rng.randint(city.postal_low, city.postal_high)
    if country == "SE":
        return f"{number // 100:03d} {number % 100:02d}"
    if country == "GB":
        return f"{city.outward} {number}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
    return f"{number:05d}" if country in ("FI", "DE") else f"{number:04d}"


def _street(rng: Random, country: Country) -> str:
    street, number = rng.choice(country.streets), rng.randint(1, 120)
    return f"{number} {street}" if country.street_number_first else f"{street} {number}"


def _address(rng: Random, country: Country, city: City, address_id: int, post_box: bool = False) -> Record:
    line1 = f"Postboks {rng.randint(100, 9999)}" if post_box and country.code == "NO" else _street(rng, country)
    return {"addressId": address_id, "addressLine1": line1, "addressLine2": None, "addressLine3": None,
            "postalCode": _postal_code(rng, country.code, city), "city": city.name,
            "country": {"id": country.code, "name": country.name}, "county": None}


def _phone(rng: Random, country: Country, city: City) -> str:
    area, prefix = city.area, country.phone_prefix
    if country.code in ("NO", "DK"):
        return f"{prefix} {area} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}"
    if country.code == "SE":
        return f"{prefix} {area} {_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 2)}"
    if country.code == "DE":
        return f"{prefix} {area} {_digits(rng, 7)}"
    return f"{prefix} {area} {_digits(rng, 4)} {_digits(rng, 4)}"


def _person(rng: Random, country: Country) -> tuple[str, str]:
    return rng.choice(country.first_names), rng.choice(country.last_names)


def _email(rng: Random, country: Country, domain: str, person: tuple[str, str]) -> str:
    """Mostly clean; ~4 % with stray case or spaces that a trim/lower transform repairs."""
    local = rng.choice(country.generic_mailboxes) if rng.random() < 0.5 else \
        f"{ascii_slug(person[0])}.{ascii_slug(person[1])}"
    address = f"{local}@{domain}"
    roll = rng.random()
    if roll < 0.02:
        return address.capitalize()
    if roll < 0.04:
        return f" {address} "
    return address


def _main_contact(rng: Random, country: Country, ident: Identity, contact_id: int, phone: str) -> Record:
    person = _person(rng, country)
    return {"contactId": contact_id, "name": ident.name, "attention": f"{person[0]} {person[1]}",
            "email": _email(rng, country, ident.domain, person),
            "web": f"https://www.{ident.domain}" if rng.random() < 0.8 else None,
            "phone1": phone, "phone2": _phone(rng, country, rng.choice(country.cities)) if rng.random() < 0.3 else None,
            "fax": _phone(rng, country, rng.choice(country.cities)) if rng.random() < 0.1 else None}


def _tax_ids(rng: Random, country: str) -> Record:
    """corporateId and vatRegistrationId in the country's format."""
    if country == "NO":
        org = rng.choice("89") + _digits(rng, 8)
        return {"corporateId": org, "vatRegistrationId": f"NO{org}MVA"}
    if country == "SE":
        org = "55" + _digits(rng, 8)
        return {"corporateId": f"{org[:6]}-{org[6:]}", "vatRegistrationId": f"SE{org}01"}
    if country == "DK":
        cvr = str(rng.randint(1, 9)) + _digits(rng, 7)
        return {"corporateId": cvr, "vatRegistrationId": f"DK{cvr}"}
    if country == "FI":
        ytunnus = str(rng.randint(1, 3)) + _digits(rng, 6)
        return {"corporateId": f"{ytunnus}-{rng.randrange(10)}", "vatRegistrationId": f"FI{ytunnus}{rng.randrange(10)}"}
    if country == "DE":
        return {"corporateId": f"HRB {rng.randint(10000, 199999)}", "vatRegistrationId": f"DE{_digits(rng, 9)}"}
    return {"corporateId": f"{rng.randint(1, 15):02d}{_digits(rng, 6)}", "vatRegistrationId": f"GB{_digits(rng, 9)}"}


def _bank_detail(rng: Random, country: str) -> Record:
    if country == "NO":
        kind, value = "BBAN", _digits(rng, 11)
    elif country == "SE":
        kind, value = "BANKGIRO", f"{_digits(rng, 3)}-{_digits(rng, 4)}"
    else:
        kind, value = "IBAN", f"{country}{_digits(rng, 2)}{_digits(rng, 14)}"
    return {"paymentMethodDetailId": "ACCOUNT", "paymentMethodDetailDescription": "Account number",
            "paymentMethodDetailValue": value, "paymentMethodDetailBankingDetailType": kind}


def _consent_flags(rng: Random) -> dict[str, bool]:
    flags = {"doNotCall": False, "doNotEmail": False, "doNotMail": False, "noMassMail": False, "noMarketing": False}
    if rng.random() < 0.15:
        for name in rng.sample(list(flags), rng.choice((1, 1, 2))):
            flags[name] = True
    return flags


def _dunning_level(rng: Random, days_overdue: int) -> int:
    earned = min(3, days_overdue // 15)
    return earned if rng.random() < 0.8 else 0


def _part(record: Record, key: str) -> Record:
    """A nested object of a record, or {} when it is missing or not an object."""
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _country_of(record: Record) -> str:
    return str(_part(_part(record, "mainAddress"), "country").get("id") or DOMESTIC_COUNTRY)


# -- edits: each returns changes that differ from the current record --------------------------
def _different(rng: Random, options: list[Any], current: Any) -> Any:
    return rng.choice([o for o in options if o != current])


def _fresh(make: Callable[[], Any], current: Any) -> Any:
    """A newly made value unlike ``current`` (collisions are rare; a few tries suffice)."""
    candidate = make()
    for _ in range(50):
        if candidate != current:
            break
        candidate = make()
    return candidate


def _edit_name(rng: Random, entity: str, current: Record, country: Country) -> Record:
    return {"name": _fresh(lambda: Generator._identity(rng, country).name, current.get("name"))}


def _edit_status(rng: Random, entity: str, current: Record, country: Country) -> Record:
    weights = CUSTOMER_STATUS_WEIGHTS if entity == "customer" else SUPPLIER_STATUS_WEIGHTS
    return {"status": _different(rng, list(weights), current.get("status"))}


def _edit_class(rng: Random, entity: str, current: Record, country: Country) -> Record:
    field = "customerClass" if entity == "customer" else "supplierClass"
    classes = CUSTOMER_CLASSES if entity == "customer" else SUPPLIER_CLASSES
    now = _part(current, field).get("id")
    return {field: _class_ref(classes, _different(rng, [c["id"] for c in classes], now))}


def _edit_terms(rng: Random, entity: str, current: Record, country: Country) -> Record:
    terms = CUSTOMER_TERMS if entity == "customer" else SUPPLIER_TERMS
    now = _part(current, "creditTerms")
    chosen = _different(rng, list(terms), next((t for t in terms if t.terms_id == now.get("id")), None))
    return {"creditTerms": {"id": chosen.terms_id, "description": chosen.description}}


def _edit_address(rng: Random, entity: str, current: Record, country: Country) -> Record:
    address = _part(current, "mainAddress")
    changes: Record = {"addressLine1": _fresh(lambda: _street(rng, country), address.get("addressLine1"))}
    if rng.random() < 0.5:
        city = _different(rng, list(country.cities), next((c for c in country.cities
                                                             if c.name == address.get("city")), None))
        changes |= {"city": city.name, "postalCode": _postal_code(rng, country.code, city)}
    return {"mainAddress": changes}


def _edit_contact(rng: Random, entity: str, current: Record, country: Country) -> Record:
    contact = _part(current, "mainContact")
    person = _person(rng, country)
    domain = str(contact.get("email") or "@post.example").strip().rsplit("@", 1)[-1] or "post.example"
    email = f"{ascii_slug(person[0])}.{ascii_slug(person[1])}.{rng.randrange(10, 99)}@{domain}"
    city = rng.choice(country.cities)
    return {"mainContact": {"attention": f"{person[0]} {person[1]}", "email": email,
                            "phone1": _fresh(lambda: _phone(rng, country, city), contact.get("phone1"))}}


def _edit_employees(rng: Random, entity: str, current: Record, country: Country) -> Record:
    now = current.get("numberOfEmployees")
    base = now if isinstance(now, int) and not isinstance(now, bool) else 10
    return {"numberOfEmployees": max(1, base + rng.choice((-1, 1)) * rng.randint(1, max(2, base // 5)))
            if base > 1 else base + rng.randint(1, 5)}


_EDITS = {"name": _edit_name, "status": _edit_status, "class": _edit_class, "terms": _edit_terms,
          "address": _edit_address, "contact": _edit_contact, "employees": _edit_employees}
_EDIT_KINDS = list(_EDITS)


# -- contact edits ------------------------------------------------------------------------------
def _edit_contact_name(rng: Random, current: Record, country: Country) -> Record:
    first, last = _fresh(lambda: _person(rng, country), (current.get("firstName"), current.get("lastName")))
    domain = str(current.get("email") or "@post.example").strip().rsplit("@", 1)[-1] or "post.example"
    return {"firstName": first, "lastName": last, "displayName": f"{first} {last}",
            "email": _contact_email(first, last, domain)}


def _edit_contact_role(rng: Random, current: Record, country: Country) -> Record:
    changes: Record = {"position": _different(rng, list(POSITIONS), current.get("position"))}
    if rng.random() < 0.5:
        changes["title"] = _different(rng, list(TITLES), current.get("title"))
    return changes


def _edit_contact_phone(rng: Random, current: Record, country: Country) -> Record:
    return {"phone1": _fresh(lambda: _phone(rng, country, rng.choice(country.cities)), current.get("phone1"))}


def _edit_contact_consent(rng: Random, current: Record, country: Country) -> Record:
    flag = rng.choice(("noMarketing", "noMassMail", "doNotEmail"))
    return {flag: not current.get(flag)}


def _edit_contact_active(rng: Random, current: Record, country: Country) -> Record:
    return {"active": not current.get("active")}


_CONTACT_EDITS = {"name": _edit_contact_name, "role": _edit_contact_role, "phone": _edit_contact_phone,
                  "consent": _edit_contact_consent, "active": _edit_contact_active}
_CONTACT_EDIT_KINDS = list(_CONTACT_EDITS)
