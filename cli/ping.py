"""`ml-connector ping`: add your credentials, ping your real systems, see if we fit.

Where the credentials come from: a deployed stack's secrets (``--stack``, read through Secrets Manager),
a local JSON file (``--credentials``), or the sandboxes. The probes themselves are the use case
``check_connectivity``; this module only finds the credentials.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ml_connector.usecases.check_connectivity import Check, check_credentials

if TYPE_CHECKING:  # the sandboxes are imported only when pinged
    from sandbox.marketo import MarketoSandbox
    from sandbox.visma import VismaSandbox


class PingCredentials(BaseModel):
    """The credentials file: ``{"visma": {...}, "marketo": {...}}`` (see README, 'Check your systems')."""

    visma: dict[str, Any]
    marketo: dict[str, Any]

    @classmethod
    def of_sandboxes(cls, visma: VismaSandbox, marketo: MarketoSandbox) -> PingCredentials:
        """The credentials that reach the local sandboxes."""
        return cls(visma={**visma.credentials, "base_url": visma.url, "token_url": visma.token_url},
                   marketo={**marketo.credentials, "munchkin_id": marketo.munchkin_id,
                            "endpoint_override": marketo.url})


def run_checks(credentials_file: str | None) -> list[Check]:
    if credentials_file is None:
        with _sandbox_credentials() as creds:
            return check_credentials(creds.visma, creds.marketo)
    try:
        creds = PingCredentials.model_validate_json(Path(credentials_file).read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        return [Check(name="credentials file", ok=False, detail=f"{credentials_file}: {exc}")]
    return check_credentials(creds.visma, creds.marketo)


@contextlib.contextmanager
def _sandbox_credentials() -> Iterator[PingCredentials]:
    from sandbox.marketo import MarketoSandbox
    from sandbox.visma import VismaSandbox

    with VismaSandbox(seed=1, customers=20, suppliers=5) as visma, MarketoSandbox() as marketo:
        yield PingCredentials.of_sandboxes(visma, marketo)
