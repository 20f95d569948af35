"""Static reference data of the sandbox company: classes, credit terms, payment methods, and the
Nordic word lists the generator draws names, addresses and people from.

The company itself is Norwegian: NO customers are domestic, SE/DK/FI/DE are EU, GB is export.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CUSTOMER_STATUSES = ("Active", "OnHold", "CreditHold", "Inactive", "OneTime")
SUPPLIER_STATUSES = ("Active", "OnHold", "HoldPayments", "Inactive", "OneTime")
# Weights for generated records (OneTime is a valid filter value but never generated).
CUSTOMER_STATUS_WEIGHTS = {"Active": 85, "OnHold": 5, "CreditHold": 5, "Inactive": 5}
SUPPLIER_STATUS_WEIGHTS = {"Active": 85, "OnHold": 5, "HoldPayments": 5, "Inactive": 5}

# Attributes ([{id, value, description}], reference §3 and §5): classes carry the defaults Visma gives a new
# record of the class; records carry their own values.
SEGMENT_TEXT = "Customer segment"
SUPPLIER_SEGMENT_TEXT = "Supplier segment"
REGION_TEXT = "Region"
PURCHASE_TEXT = "Innkjøpskategori"  # purchase category; the attribute was set up in Norwegian


def attribute(attribute_id: str, value: str, description: str) -> dict[str, Any]:
    return {"id": attribute_id, "value": value, "description": description}


# Customer class -> the REGION attribute value of its customers ("EØS" is Norwegian for the EEA).
CLASS_REGION = {"DOM": "Innland", "EXP": "Utland", "EU": "EØS", "KEY": "Innland", "PUB": "Offentlig"}
CUSTOMER_CLASSES: list[dict[str, Any]] = [
    {"id": "DOM", "description": "Domestic customers", "taxZoneId": "01", "requiredTaxzoneId": False,
     "paymentMethodId": "INVOICE", "attributes": [attribute("REGION", "Innland", REGION_TEXT)]},
    {"id": "EXP", "description": "Export customers", "taxZoneId": "03", "requiredTaxzoneId": True,
     "paymentMethodId": "BANK", "attributes": [attribute("REGION", "Utland", REGION_TEXT)]},
    {"id": "EU", "description": "EU customers", "taxZoneId": "02", "requiredTaxzoneId": True,
     "paymentMethodId": "BANK", "attributes": [attribute("REGION", "EØS", REGION_TEXT)]},
    {"id": "KEY", "description": "Key accounts", "taxZoneId": "01", "requiredTaxzoneId": False,
     "paymentMethodId": "INVOICE",
     "attributes": [attribute("SEGMENT", "ENT", SEGMENT_TEXT), attribute("REGION", "Innland", REGION_TEXT)]},
    {"id": "PUB", "description": "Public sector", "taxZoneId": "01", "requiredTaxzoneId": False,
     "paymentMethodId": "EHF", "attributes": [attribute("REGION", "Offentlig", REGION_TEXT)]},
]

# Supplier class -> its suppliers' purchase category (the INNKJOP attribute).
CLASS_PURCHASE = {"TRANSP": "RUTINE", "RAW": "STRATEGISK", "SERV": "RUTINE", "IT": "KRITISK", "ADM": "RUTINE"}
SUPPLIER_CLASSES: list[dict[str, Any]] = [
    {"id": cid, "description": text, "paymentMethodId": "BANK", "paymentMethodDescription": "Bank transfer",
     "attributes": [attribute("INNKJOP", CLASS_PURCHASE[cid], PURCHASE_TEXT)], "timeStamp": stamp}
    for cid, text, stamp in (
        ("TRANSP", "Transport suppliers", "AAAAAAAAB9E="), ("RAW", "Raw material suppliers", "AAAAAAAAB9I="),
        ("SERV", "Service suppliers", "AAAAAAAAB9M="), ("IT", "IT suppliers", "AAAAAAAAB9Q="),
        ("ADM", "Administration", "AAAAAAAAB9U="),
    )
]

# Second and third address lines a record may have, per country ({n} a number, {b} a letter).
ADDRESS_LINE2: dict[str, tuple[str, ...]] = {
    "NO": ("{n}. etasje", "Bygg {b}", "c/o Regnskapsbyrået Ås", "Inngang {b}", "Næringsparken"),
    "SE": ("{n} tr", "Hus {b}", "c/o Bokföringsbyrån", "Företagsparken"),
    "DK": ("{n}. sal", "Bygning {b}", "c/o Revisionsfirmaet Ærø"),
    "FI": ("{n}. krs", "Talo {b}", "c/o Tilitoimisto Hämäläinen"),
    "DE": ("{n}. OG", "Hinterhaus", "c/o Steuerbüro Müller"),
    "GB": ("Unit {n}", "Suite {n}", "Building {b}"),
}
ADDRESS_LINE3: dict[str, tuple[str, ...]] = {
    "NO": ("Industriområdet Sørli", "Havnelageret"), "SE": ("Industriområdet Norr",),
    "DK": ("Erhvervsområdet Syd",), "FI": ("Teollisuusalue",), "DE": ("Gewerbegebiet Süd",),
    "GB": ("Riverside Business Park",),
}


@dataclass(frozen=True)
class CreditTerm:
    terms_id: str
    description: str
    due_days: int
    discount_days: int = 0
    discount_percent: float = 0.0
    due_date_type: str = "N"  # N = fixed number of days, E = end of month
    visible_to: str = "AL"  # AL all, CU customers, VE suppliers

    def dto(self) -> dict[str, Any]:
        return {
            "termsId": self.terms_id, "description": self.description, "visibleTo": self.visible_to,
            "dueDateType": self.due_date_type, "dueDay1": self.due_days, "dayFrom1": 0, "dayTo1": 31,
            "discountType": "N", "discountDay": self.discount_days, "discountPercent": self.discount_percent,
            "instalmentType": "S", "numberOfInstalments": 1,
            "createdDateTime": "2019-01-14T08:12:40.18", "lastModifiedDateTime": "2023-05-02T11:03:12.7",
        }


CREDIT_TERMS = (
    CreditTerm("10D", "10 days net", 10),
    CreditTerm("14D", "14 days net", 14),
    CreditTerm("30D", "30 days net", 30),
    CreditTerm("45D", "45 days net", 45, visible_to="VE"),
    CreditTerm("60D", "60 days net", 60, visible_to="VE"),
    CreditTerm("14D2", "2% 14 days, 30 days net", 30, discount_days=14, discount_percent=2.0),
    CreditTerm("EOM", "End of month", 0, due_date_type="E", visible_to="CU"),
)
CUSTOMER_TERMS = tuple(t for t in CREDIT_TERMS if t.visible_to in ("AL", "CU"))
SUPPLIER_TERMS = tuple(t for t in CREDIT_TERMS if t.visible_to in ("AL", "VE"))

PAYMENT_METHODS: list[dict[str, Any]] = [
    {"paymentMethodId": pid, "active": active, "meansOfPayment": means, "description": text, "useInAp": in_ap,
     "details": []}
    for pid, active, means, text, in_ap in (
        ("INVOICE", True, "CashOrCheck", "Invoice", False),
        ("BANK", True, "DirectDeposit", "Bank transfer", True),
        ("EHF", True, "DirectDeposit", "EHF e-invoice", False),
        ("GIRO", True, "DirectDeposit", "Bankgiro", True),
        ("CARD", True, "CreditCard", "Credit card", False),
        ("DD", False, "DirectDeposit", "Direct debit (discontinued)", False),
    )
]
PAYMENT_METHOD_TEXT = {m["paymentMethodId"]: m["description"] for m in PAYMENT_METHODS}


@dataclass(frozen=True)
class City:
    name: str
    postal_low: int  # postal codes drawn from [low, high]; GB uses outward codes instead
    postal_high: int
    area: str  # phone area code
    outward: str = ""  # GB only

    @property
    def short_name(self) -> str:
        """The name without a Danish district letter ("Odense C" -> "Odense"), for company names."""
        head, _, tail = self.name.rpartition(" ")
        return head if head and len(tail) == 1 else self.name


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    weight: int
    currency: str
    language: str
    phone_prefix: str
    legal_forms: tuple[tuple[str, int], ...]  # (suffix, weight)
    name_words: tuple[str, ...]
    sector_words: tuple[str, ...]
    streets: tuple[str, ...]
    cities: tuple[City, ...]
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    generic_mailboxes: tuple[str, ...]
    street_number_first: bool = False  # GB writes "12 High Street"


COUNTRIES: dict[str, Country] = {c.code: c for c in (
    Country(
        "NO", "Norway", 55, "NOK", "nb-NO", "+47", (("AS", 95), ("ASA", 5)),
        ("Nordlys", "Fjordtrans", "Fjellheim", "Havbris", "Polar", "Vikhammer", "Skogly", "Bergkrystall", "Elvebakk",
         "Midnattsol", "Trollheim", "Nordkapp", "Lofoten", "Bjørkli", "Granli", "Solvang", "Stormfjell", "Sjøbris",
         "Kystlinje", "Tindefjell", "Hardanger", "Varanger", "Sognefjord", "Nidaros"),
        ("Maskin", "Logistikk", "Bygg", "Elektro", "Data", "Transport", "Rør", "Trevare", "Fisk", "Eiendom",
         "Regnskap", "Verksted", "Marine", "Energi", "Handel", "Konsult", "Anlegg", "Sikkerhet", "Kjøleteknikk"),
        ("Storgata", "Kirkegata", "Havnegata", "Industriveien", "Strandveien", "Fjordveien", "Sjøgata",
         "Kongens gate", "Dronningens gate", "Lagerveien", "Verkstedveien", "Nygata", "Markveien", "Bryggeveien"),
        (City("Oslo", 150, 1295, "22"), City("Bergen", 5003, 5098, "55"), City("Trondheim", 7010, 7099, "73"),
         City("Stavanger", 4001, 4099, "51"), City("Tromsø", 9006, 9020, "77"), City("Kristiansand", 4608, 4639, "38"),
         City("Drammen", 3001, 3048, "32"), City("Lillestrøm", 2000, 2010, "63"), City("Bodø", 8001, 8020, "75"),
         City("Ålesund", 6002, 6020, "70")),
        ("Kari", "Ola", "Ingrid", "Lars", "Nina", "Per", "Silje", "Anders", "Marte", "Jonas", "Hanne", "Eirik"),
        ("Nordmann", "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Berg", "Haugen", "Lie", "Dahl", "Bakke",
         "Solberg"),
        ("post", "firmapost", "faktura", "kontakt", "info"),
    ),
    Country(
        "SE", "Sweden", 15, "SEK", "sv-SE", "+46", (("AB", 100),),
        ("Norrsken", "Älvdalen", "Skärgård", "Fjällvind", "Granit", "Björkhagen", "Sjöstjärna", "Vinterljus",
         "Kustlinje", "Mälardalen", "Lappland", "Ekbacken", "Solberga", "Vättern"),
        ("Bygg", "Maskin", "Logistik", "Data", "Elektro", "Transport", "Konsult", "Verkstad", "Trä", "Energi",
         "Handel", "Fastigheter"),
        ("Storgatan", "Drottninggatan", "Kungsgatan", "Hamngatan", "Industrivägen", "Sjövägen", "Järnvägsgatan",
         "Verkstadsgatan", "Kyrkogatan"),
        (City("Stockholm", 11120, 11860, "8"), City("Göteborg", 41101, 41878, "31"), City("Malmö", 21111, 21774, "40"),
         City("Uppsala", 75220, 75655, "18"), City("Linköping", 58100, 58758, "13"), City("Umeå", 90130, 90750, "90")),
        ("Anna", "Erik", "Maria", "Lars", "Karin", "Johan", "Sara", "Mikael", "Elin", "Oskar"),
        ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Lindberg", "Holm", "Berglund"),
        ("info", "kontakt", "ekonomi", "order"),
    ),
    Country(
        "DK", "Denmark", 10, "DKK", "da-DK", "+45", (("ApS", 60), ("A/S", 40)),
        ("Kystlys", "Havblik", "Bølgebryder", "Lyngby", "Skovly", "Fyrtårn", "Klitgaard", "Vesterhav", "Østerlund",
         "Marsk", "Bøgely", "Limfjord"),
        ("Maskinfabrik", "Logistik", "Byg", "Data", "El-service", "Transport", "Rådgivning", "Handel", "Smedie",
         "Energi"),
        ("Vestergade", "Østergade", "Nørregade", "Havnegade", "Industrivej", "Strandvejen", "Søndergade",
         "Kongensgade"),
        (City("København K", 1050, 1473, "33"), City("Aarhus C", 8000, 8000, "86"), City("Odense C", 5000, 5000, "66"),
         City("Aalborg", 9000, 9220, "98"), City("Esbjerg", 6700, 6715, "75"), City("Kolding", 6000, 6000, "75")),
        ("Mette", "Søren", "Anne", "Jens", "Camilla", "Mads", "Louise", "Rasmus", "Freja", "Niels"),
        ("Nielsen", "Jensen", "Pedersen", "Christensen", "Sørensen", "Møller", "Rasmussen", "Madsen"),
        ("info", "kontakt", "bogholderi", "mail"),
    ),
    Country(
        "FI", "Finland", 10, "EUR", "fi-FI", "+358", (("Oy", 92), ("Oyj", 8)),
        ("Revontuli", "Järvinen", "Metsätähti", "Kallio", "Tunturi", "Saimaa", "Aalto", "Koivu", "Lumikki", "Kuusi",
         "Pohjola", "Karhu"),
        ("Kone", "Logistiikka", "Rakennus", "Data", "Sähkö", "Kuljetus", "Konsultointi", "Energia", "Puu", "Kauppa"),
        ("Mannerheimintie", "Satamakatu", "Teollisuustie", "Rantatie", "Kauppakatu", "Asemakatu",
         "Aleksanterinkatu"),
        (City("Helsinki", 100, 990, "9"), City("Espoo", 2100, 2980, "9"), City("Tampere", 33100, 33900, "3"),
         City("Turku", 20100, 20960, "2"), City("Oulu", 90100, 90940, "8")),
        ("Aino", "Mikko", "Laura", "Juha", "Sanna", "Antti", "Elina", "Timo", "Heidi", "Ville"),
        ("Korhonen", "Virtanen", "Mäkinen", "Nieminen", "Lehtonen", "Heikkinen", "Laine", "Koskinen"),
        ("info", "myynti", "laskutus", "toimisto"),
    ),
    Country(
        "DE", "Germany", 5, "EUR", "de-DE", "+49", (("GmbH", 80), ("AG", 10), ("GmbH & Co. KG", 10)),
        ("Nordwind", "Elbtal", "Hanse", "Bergland", "Rheinblick", "Weserland", "Alster", "Ostsee", "Kieler"),
        ("Maschinenbau", "Logistik", "Bau", "Datentechnik", "Elektrotechnik", "Spedition", "Beratung", "Handel"),
        ("Hauptstraße", "Hafenstraße", "Industriestraße", "Bahnhofstraße", "Kirchweg", "Am Markt"),
        (City("Hamburg", 20095, 22769, "40"), City("Berlin", 10115, 14199, "30"), City("München", 80331, 81929, "89"),
         City("Bremen", 28195, 28779, "421"), City("Kiel", 24103, 24159, "431")),
        ("Anna", "Lukas", "Julia", "Jonas", "Lena", "Felix", "Katrin", "Stefan"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker", "Hoffmann", "Wagner"),
        ("info", "kontakt", "buchhaltung", "vertrieb"),
    ),
    Country(
        "GB", "United Kingdom", 5, "EUR", "en-GB", "+44", (("Ltd", 90), ("PLC", 10)),
        ("Northbridge", "Highland", "Thameside", "Pennine", "Kingsway", "Harbourside", "Westfield", "Oakridge"),
        ("Engineering", "Logistics", "Construction", "Data", "Electrical", "Freight", "Consulting", "Trading"),
        ("High Street", "Station Road", "Church Lane", "Harbour Road", "Mill Lane", "Victoria Street"),
        (City("London", 1, 9, "20", "EC1A"), City("Manchester", 1, 9, "161", "M1"),
         City("Edinburgh", 1, 9, "131", "EH1"), City("Aberdeen", 1, 9, "1224", "AB10"),
         City("Newcastle upon Tyne", 1, 9, "191", "NE1")),
        ("Emma", "James", "Olivia", "Oliver", "Sophie", "Harry", "Charlotte", "George"),
        ("Smith", "Jones", "Taylor", "Brown", "Wilson", "Evans", "Walker", "Wright"),
        ("info", "accounts", "sales", "office"),
        street_number_first=True,
    ),
)}

DOMESTIC_COUNTRY = "NO"
EU_COUNTRIES = frozenset({"SE", "DK", "FI", "DE"})
VAT_ZONES = {"DOM": {"id": "01", "description": "Domestic"}, "EU": {"id": "02", "description": "EU"},
             "EXP": {"id": "03", "description": "Export"}}
POSITIONS = ("CEO", "CFO", "Purchasing manager", "Accounts payable", "Sales manager", "IT manager",
             "Office manager", "Project manager")
TITLES = ("Mr.", "Ms.", "Dr.", None)
