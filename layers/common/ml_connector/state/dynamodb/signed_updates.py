"""The writer's hot write, UpdateItem, as one signed POST built from botocore's own parts.

A writer records one item per record it writes (about 300 per Marketo call), each a conditional UpdateItem.
botocore's request pipeline (event hooks, endpoint rules, serialisation, response parsing) costs about 0.9 ms
of CPU per call, a third of a writer's CPU per chunk. This lane sends the same request with the client's
credentials (refreshed as botocore refreshes them), region and resolved endpoint (``AWS_ENDPOINT_URL_DYNAMODB``
included), SigV4 signing and botocore's urllib3 session (TLS verified, the environment's proxies), at about
0.6 ms. A success is returned and any other 400 answer raised as the client raises it (the ``ClientError`` of
its code: a failed condition, a validation error), except those the client retries (throttling), which are
handed to the client with every 5xx and broken connection: it makes the call again with its own retries.
Sending the update again is safe: the same version passes the guard again and ``raced_with`` sees its own
writer.
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
# 400 answers botocore retries for DynamoDB (its throttling errors): the client takes those calls.
RETRIED_BY_THE_CLIENT = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                                   "RequestLimitExceeded", "TransactionInProgressException"})


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
        if answer is None:  # an answer the client retries, or none: the client makes the call
            handed_on: dict[str, Any] = self.client.update_item(**request)
            return handed_on
        if "__type" in answer:
            code = str(answer["__type"]).rsplit("#", 1)[-1]
            message = str(answer.get("message") or answer.get("Message") or "")
            raise ClientError({"Error": {"Code": code, "Message": message},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, "UpdateItem")
        return answer

    def _try(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The answer's JSON when it is a success or an error the client would not retry, else None."""
        signed = AWSRequest("POST", self._endpoint, data=json.dumps(request, separators=(",", ":")), headers=HEADERS)
        SigV4Auth(self._credentials.get_frozen_credentials(), "dynamodb", self._region).add_auth(signed)
        try:
            response = self._http.send(signed.prepare())
            if response.status_code not in (200, 400):
                return None
            answer: dict[str, Any] = json.loads(response.content)
        except Exception:  # noqa: BLE001 - connection trouble or an unreadable answer: the client takes the call
            return None
        if response.status_code == 400 and (
                "__type" not in answer or str(answer["__type"]).rsplit("#", 1)[-1] in RETRIED_BY_THE_CLIENT):
            return None
        return answer
