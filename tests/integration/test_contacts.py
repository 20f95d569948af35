"""Contact persons -> Marketo leads (mapping ``with-contacts-as-leads.json``), end to end through real HTTP.

Contacts are polled as their own delta stream (``/v1/contact`` since the watermark), keyed by e-mail,
linked to their customer's company (``externalCompanyId``), and consent only ever flows one way: a
Visma no-marketing flag sets ``unsubscribed: true``; nothing we send can re-subscribe a person.
"""

from __future__ import annotations

import pytest

from ml_connector.sync.transforms import email as normalised_email

pytestmark = pytest.mark.integration
CONSENT_FLAGS = ("noMarketing", "noMassMail", "doNotEmail")


@pytest.fixture(scope="module")
def env(local_stack):
    return local_stack(seed=23, customers=60, suppliers=10, extra_env={"MAPPING_FILE": "with-contacts-as-leads.json"})


@pytest.fixture(scope="module")
def full_load(env):
    return env.cycle("full load")


def contact_report(cycle):
    return next(e for e in cycle.poll if e["entity"] == "contact")


def lead(env, contact_id):
    address = normalised_email(env.visma.store.contact(contact_id)["email"])
    found = env.marketo.store.lead_by_email(address)
    assert found is not None, address
    return found


def test_every_contact_with_an_email_becomes_a_lead_linked_to_its_company(env, full_load):
    assert env.verify().ok, env.verify().summary()
    contacts = env.visma.store.all_contacts()
    addresses = {normalised_email(c["email"]) for c in contacts} - {None}
    assert {ld["email"] for ld in env.marketo.store.leads()} == addresses
    companies = {c["externalCompanyId"] for c in env.marketo.store.companies()}
    assert all(ld.get("externalCompanyId") in companies for ld in env.marketo.store.leads())
    assert contact_report(full_load)["records_read"] == len(contacts)


def test_opted_out_contacts_are_unsubscribed_and_the_others_untouched(env, full_load):
    contacts = env.visma.store.all_contacts()
    opted_out = [c for c in contacts if any(c.get(f) for f in CONSENT_FLAGS)]
    assert opted_out, "the sandbox seeds some contacts with consent flags"
    for contact in opted_out:
        assert lead(env, contact["contactId"])["unsubscribed"] is True
    for contact in contacts:
        if contact not in opted_out:
            assert lead(env, contact["contactId"])["unsubscribed"] is False  # Marketo's default, never sent


def test_a_contact_change_alone_reaches_marketo_in_one_cycle(env, full_load):
    contact = next(c for c in env.visma.store.all_contacts() if not any(c.get(f) for f in CONSENT_FLAGS))
    env.visma.store.update_contact(contact["contactId"], position="Head of Procurement")
    cycle = env.cycle("one contact edited")
    assert contact_report(cycle)["messages_sent"] == 1
    assert cycle.updated == 1 and cycle.created == 0
    assert lead(env, contact["contactId"])["title"] == "Head of Procurement"


def test_opting_out_in_visma_unsubscribes_and_nothing_resubscribes(env, full_load):
    person, other = [c for c in env.visma.store.all_contacts() if not any(c.get(f) for f in CONSENT_FLAGS)][1:3]
    env.visma.store.update_contact(person["contactId"], noMassMail=True)
    # The other person unsubscribes in Marketo (a form, an e-mail link): Visma knows nothing of it.
    env.marketo.store.sync_leads([{"email": normalised_email(other["email"]), "unsubscribed": True}],
                                 action="updateOnly", lookup_field="email")
    env.cycle("opt-out")
    assert lead(env, person["contactId"])["unsubscribed"] is True
    env.visma.store.update_contact(other["contactId"], position="CEO")
    env.visma.store.update_contact(person["contactId"], noMassMail=False)  # consent is not granted from Visma
    env.cycle("later edits")
    assert lead(env, other["contactId"])["title"] == "CEO"
    assert lead(env, other["contactId"])["unsubscribed"] is True
    assert lead(env, person["contactId"])["unsubscribed"] is True


def test_a_contact_without_email_is_counted_not_quarantined(env, full_load):
    customer = env.visma.store.records("customer")[0]
    env.visma.store.insert_contact(str(customer["number"]), email=None)
    new_id = env.visma.store.insert_contact(str(customer["number"]), email="New.Person@Example.com")
    cycle = env.cycle("new contacts")
    report = contact_report(cycle)
    assert report["without_key"] == 1 and report["quarantined"] == 0
    assert cycle.created == 1
    assert lead(env, new_id)["externalCompanyId"] == next(
        c["externalCompanyId"] for c in env.marketo.store.companies() if c["vismaNumber"] == customer["number"])
    assert env.verify().ok, env.verify().summary()


def test_no_op_cycle_makes_no_marketo_call(env, full_load):
    env.cycle("settle")
    cycle = env.cycle("no-op")
    assert cycle.messages_sent == 0 and cycle.marketo_calls == 0


def test_a_changed_email_is_written_under_the_new_address_and_the_old_lead_kept(env, full_load):
    """Leads are identified by e-mail. Moving the old lead to the new address could take it from another
    contact that still has the old one, so the new address gets its lead and the old lead is left."""
    contact = env.visma.store.all_contacts()[5]
    old = lead(env, contact["contactId"])
    env.visma.store.update_contact(contact["contactId"], email="Renamed.Person@Example.org")
    cycle = env.cycle("e-mail changed")
    assert cycle.created == 1
    new = env.marketo.store.lead_by_email("renamed.person@example.org")
    assert new is not None and new["lastName"] == old["lastName"]
    assert env.marketo.store.lead_by_email(old["email"]) is not None
    check = env.verify()
    assert check.ok and old["email"] in check.retired, check.summary()


def test_an_email_change_with_no_other_change_is_still_written(env, full_load):
    contact = env.visma.store.all_contacts()[6]
    first = normalised_email(contact["email"])
    env.visma.store.update_contact(contact["contactId"], email="Second." + contact["email"])
    env.cycle("address only")
    env.visma.store.update_contact(contact["contactId"], email=first)  # and back: same fields, old key
    env.marketo.store.sync_leads([{"email": first, "title": "changed in Marketo"}], action="updateOnly",
                                 lookup_field="email")
    cycle = env.cycle("address back")
    assert cycle.updated == 1  # not skipped as unchanged: the key differs from the one last written
    assert env.verify().ok, env.verify().summary()


def test_two_contacts_on_one_address_are_one_lead(env, full_load):
    first, second = env.visma.store.all_contacts()[8:10]
    taken = normalised_email(second["email"])
    env.visma.store.update_contact(first["contactId"], email=taken, position="Shared inbox")
    env.cycle("address already taken")
    holders = [ld for ld in env.marketo.store.leads() if ld["email"] == taken]
    assert len(holders) == 1 and holders[0]["title"] == "Shared inbox"  # one lead per address, newest wins
    assert env.verify().ok, env.verify().summary()
