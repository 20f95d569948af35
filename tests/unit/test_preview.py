"""The preview's comparison of what the next cycle would write with what Marketo holds, for records mapped
by the shipped mapping (through the poller's own build_message, as the preview does)."""

from ml_connector.config import ConnectionConfig
from ml_connector.sync.mapping import load_mapping
from ml_connector.sync.poller import EntityContext, build_message
from ml_connector.sync.preview import PreviewSink

CONNECTION = ConnectionConfig.model_validate({"id": "default", "visma": {"secret_id": "v"},
                                              "marketo": {"secret_id": "m", "munchkin_id": "123-ABC-456"}})
CUSTOMER = {
    "internalId": 18342, "number": "10457", "name": "Nordlys Maskin AS", "status": "Active",
    "mainAddress": {"addressLine1": "Storgata 12", "addressLine2": "c/o Café Ørn", "addressLine3": "Bygg Æ",
                    "postalCode": "0155", "city": "Oslo", "country": {"id": "NO", "name": "Norway"}},
    "attributes": [{"id": "SEGMENT", "value": "Småbedrift 🚀", "description": "Customer segment"}],
    "lastModifiedDateTime": "2025-03-14T09:41:27.513", "timeStamp": "AAAAAAB3kXo=",
}
KEY = "visma-1234567-customer-18342"


def _preview(held):
    section = load_mapping().customer
    message = build_message(CUSTOMER, EntityContext(CONNECTION, "customer", "1234567", section))
    sink = PreviewSink(lambda target, dedupe, keys, fields: {k: held for k in keys if held is not None})
    sink.deliver("default", "customer", [message])
    return sink.items[0]


def test_preview_of_a_new_company_shows_the_joined_street_and_the_segment_attribute():
    item = _preview(None)
    assert item.action == "create" and item.key == KEY
    assert item.changes["billingStreet"].after == "Storgata 12, c/o Café Ørn, Bygg Æ"
    assert item.changes["vismaSegment"].after == "Småbedrift 🚀"


def test_preview_of_an_update_shows_the_joined_street_before_and_after():
    current = _preview(None)
    held = {f: c.after for f, c in current.changes.items()} | {"billingStreet": "Storgata 12", "vismaSegment": None}
    item = _preview(held)
    assert item.action == "update"
    assert set(item.changes) == {"billingStreet", "vismaSegment"}
    assert (item.changes["billingStreet"].before, item.changes["billingStreet"].after) == (
        "Storgata 12", "Storgata 12, c/o Café Ørn, Bygg Æ")
    assert (item.changes["vismaSegment"].before, item.changes["vismaSegment"].after) == (None, "Småbedrift 🚀")
    assert _preview({f: c.after for f, c in current.changes.items()}).action == "unchanged"
