"""The writer's hot write, UpdateItem, as one SigV4-signed POST on keep-alive connections of its own.

A writer records one item per record it writes (about 300 per Marketo call), each a conditional UpdateItem.
botocore's request pipeline (event hooks, endpoint rules, serialisation, response parsing) costs about 0.9 ms
of CPU per call; its signer and HTTP session alone 0.5 ms (``AWSRequest`` and header dictionaries, the
canonical request rebuilt from them, four HMACs for the signing key, urllib3's pool). This lane sends the same
request at about 0.3 ms: the client's credentials (fetched per request, so refreshed as botocore refreshes
them), region and resolved endpoint (``AWS_ENDPOINT_URL_DYNAMODB`` included); SigV4 over its fixed headers with
the day's signing key kept; ``http.client`` connections, TLS verified against ``AWS_CA_BUNDLE`` or botocore's
bundle, headers and body in one send (urllib3 2 sends them apart, and on a session without TCP_NODELAY each
call waited ~40 ms on the server's delayed ACK). Behind a proxy (the client's config or the environment) the
lane is off and the client sends.

A success is returned and any other 400 answer raised as the client raises it (the ``ClientError`` of its
code: a failed condition, a validation error), except those the client retries (throttling), which are handed
to the client with every 5xx and broken connection: it makes the call again with its own retries. Sending the
update again is safe: the same version passes the guard again and ``raced_with`` sees its own writer.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import queue
import ssl
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError
from botocore.httpsession import get_cert_path
from botocore.utils import get_environ_proxies

CONTENT_TYPE, TARGET = "application/x-amz-json-1.0", "DynamoDB_20120810.UpdateItem"
ALGORITHM = "AWS4-HMAC-SHA256"
# 400 answers botocore retries for DynamoDB (its throttling errors): the client takes those calls.
RETRIED_BY_THE_CLIENT = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                                   "RequestLimitExceeded", "TransactionInProgressException"})


class UpdateItemSigner:
    """SigV4 (AWS's "Create a signed AWS API request") of a DynamoDB UpdateItem POST to ``/`` of ``host``."""

    def __init__(self, host: str, region: str, service: str = "dynamodb") -> None:
        self._host, self._region, self._service = host, region, service
        self._day_key: tuple[str, str, bytes] = ("", "", b"")  # (secret key, day, signing key): 4 HMACs a day

    def headers(self, body: bytes, access_key: str, secret_key: str, token: str | None,
                now: datetime | None = None) -> dict[str, str]:
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        signed = {"content-type": CONTENT_TYPE, "host": self._host, "x-amz-date": stamp,
                  **({"x-amz-security-token": token} if token else {}), "x-amz-target": TARGET}  # sorted by name
        names = ";".join(signed)
        canonical = "\n".join(("POST", "/", "", *(f"{k}:{v}" for k, v in signed.items()), "", names,
                               hashlib.sha256(body).hexdigest()))
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(secret_key, day), to_sign.encode(), hashlib.sha256).hexdigest()
        return {**signed, "authorization": f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={names}, "
                                           f"Signature={signature}"}

    def _signing_key(self, secret_key: str, day: str) -> bytes:
        kept_secret, kept_day, key = self._day_key
        if (kept_secret, kept_day) != (secret_key, day):
            key = f"AWS4{secret_key}".encode()
            for part in (day, self._region, self._service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._day_key = (secret_key, day, key)
        return key


class Connections:
    """Keep-alive connections to one endpoint, one per request in flight: taken, used, given back."""

    def __init__(self, endpoint: str, timeout: float) -> None:
        parts = urlsplit(endpoint)
        self._host, self._port, self._timeout = parts.hostname or "", parts.port, timeout
        self._tls = ssl.create_default_context(cafile=get_cert_path(os.environ.get("AWS_CA_BUNDLE") or True)) \
            if parts.scheme == "https" else None
        self._idle: queue.SimpleQueue[http.client.HTTPConnection] = queue.SimpleQueue()

    def post(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """(status, body) of one POST to ``/``; raises on any connection trouble (the connection is dropped)."""
        connection = self._take()
        try:
            # A bytes body leaves with the headers in one send: no wait on the server's delayed ACK.
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            answer = (response.status, response.read())
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self._idle.put(connection)
        return answer

    def _take(self) -> http.client.HTTPConnection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            if self._tls is not None:
                return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=self._tls)
            return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)


class SignedUpdates:
    """``update_item(**request)`` of a plain DynamoDB ``client`` (typed attribute values), through the lane."""

    def __init__(self, session: Any, client: Any) -> None:
        self.client = client
        self._credentials = session.get_credentials()
        endpoint = client.meta.endpoint_url
        config = client.meta.config
        self._signer = UpdateItemSigner(_host(endpoint), client.meta.region_name)
        self._connections: Connections | None = None
        if self._credentials is not None and not (config.proxies or get_environ_proxies(endpoint)):
            self._connections = Connections(endpoint, timeout=max(config.connect_timeout, config.read_timeout))

    def update_item(self, **request: Any) -> dict[str, Any]:
        answer = self._try(request) if self._connections is not None else None
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
        assert self._connections is not None
        body = json.dumps(request, separators=(",", ":")).encode()
        credentials = self._credentials.get_frozen_credentials()
        headers = self._signer.headers(body, credentials.access_key, credentials.secret_key, credentials.token)
        try:
            status, data = self._connections.post(headers, body)
            if status not in (200, 400):
                return None
            answer: dict[str, Any] = json.loads(data)
        except Exception:  # noqa: BLE001 - connection trouble or an unreadable answer: the client takes the call
            return None
        if status == 400 and (
                "__type" not in answer or str(answer["__type"]).rsplit("#", 1)[-1] in RETRIED_BY_THE_CLIENT):
            return None
        return answer


def _host(endpoint: str) -> str:
    """The Host header as botocore signs it: the port only when it is not the scheme's default."""
    parts = urlsplit(endpoint)
    return parts.netloc.removesuffix(":443" if parts.scheme == "https" else ":80")
