"""ping says which company-header mode works: with ipp-company-id, or without it behind a Visma Connect
gateway that fixes the company by the token's tenant (and refuses the header, IPP 12002)."""

from __future__ import annotations

import pytest

from cli.ping import PingCredentials
from ml_connector.usecases.check_connectivity import check_credentials
from sandbox.marketo import MarketoSandbox
from sandbox.visma import VismaSandbox


@pytest.mark.parametrize(("refused", "mode"), [(False, "works with the ipp-company-id header"),
                                               (True, "works without ipp-company-id")])
def test_ping_reports_the_company_header_mode_that_works(refused, mode):
    with VismaSandbox(seed=3, customers=5, suppliers=1, refuse_company_header=refused) as visma, \
            MarketoSandbox() as marketo:
        creds = PingCredentials.of_sandboxes(visma, marketo)
        checks = {c.name: c for c in check_credentials(creds.visma, creds.marketo)}
    listing = checks["Visma customer list (ipp-company-id)"]
    assert listing.ok and mode in listing.detail
