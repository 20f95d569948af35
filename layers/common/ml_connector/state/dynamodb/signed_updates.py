"""The writer's hot write, UpdateItem, as one signed POST built from botocore's own parts.

A writer records one item per record it writes (about 300 per Marketo call), each a conditional UpdateItem.
botocore's request pipeline (event hooks, endpoint rules, serialisation, response parsing) costs about 0.9 ms
of CPU per call, a third of a writer's CPU per chunk. This lane sends the same request with the client's
credentials (refreshed as botocore refreshes them), region and resolved endpoint (``AWS_ENDPOINT_URL_DYNAMODB``
included), SigV4 signing and botocore's urllib3 session (TLS verified, the environment's proxies), at about
0.6 ms. It understands two answers, success and a failed condition; anything else (throttling, a 5xx, a broken
connection) is handed to the client itself, which retries as it always does. Sending the update again is safe:
the same version passes the guard again and ``raced_with`` sees its own writer.
"""

from __future__ import annotations

import json
import os
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError
from botocore.httpsession import URLLib3Session
from botocore.utils import get_environ_proxies

HEADERS = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.UpdateItem"}
CONDITION_FAILED = "ConditionalCheckFailedException"


class SignedUpdates:
    """``update_item(**request)`` of a plain DynamoDB ``client`` (typed attribute values), through the lane."""

    def __init__(self, session: Any, client: Any) -> None:
        self.client = client
        self._credentials = session.get_credentials()
        self._endpoint = client.meta.endpoint_url.rstrip("/") + "/"
        self._region = client.meta.region_name
        config = client.meta.config
        self._http = URLLib3Session(
            verify=os.environ.get("AWS_CA_BUNDLE") or True,
            proxies=config.proxies or get_environ_proxies(self._endpoint), proxies_config=config.proxies_config,
            timeout=(config.connect_timeout, config.read_timeout), max_pool_connections=config.max_pool_connections)

    def update_item(self, **request: Any) -> dict[str, Any]:
        answer = self._try(request) if self._credentials is not None else None
        if answer is None:  # an answer this lane does not interpret: the client makes the call
            handed_on: dict[str, Any] = self.client.update_item(**request)
            return handed_on
        if answer.get("__type", "").endswith(f"#{CONDITION_FAILED}"):
            raise ClientError({"Error": {"Code": CONDITION_FAILED, "Message": str(answer.get("message", ""))}},
                              "UpdateItem")
        return answer

    def _try(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The answer's JSON when it is a success or a failed condition, else None."""
        signed = AWSRequest("POST", self._endpoint, data=json.dumps(request, separators=(",", ":")), headers=HEADERS)
        SigV4Auth(self._credentials.get_frozen_credentials(), "dynamodb", self._region).add_auth(signed)
        try:
            response = self._http.send(signed.prepare())
            if response.status_code not in (200, 400):
                return None
            answer: dict[str, Any] = json.loads(response.content)
        except Exception:  # noqa: BLE001 - connection trouble or an unreadable answer: the client takes the call
            return None
        if response.status_code == 400 and not str(answer.get("__type", "")).endswith(f"#{CONDITION_FAILED}"):
            return None
        return answer
