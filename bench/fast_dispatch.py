"""An emulator speed-up for moto's server, applied only by the benchmark: request routing without rework.

For every request moto's server works out which service it is for while holding one process-wide lock:
it lists moto's package directory (an ``isdir`` per service, ~150 system calls) and then tries the URL
patterns of every service in turn. The answer depends only on the host name, and the installed package
does not change while the server runs, so ``install()`` remembers it per host. Which backend answers a
request, and how, is unchanged.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from typing import Any

from moto import backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_ORIGINALS: dict[str, Any] = {}
_lock = threading.Lock()


@functools.cache
def _moto_modules() -> tuple[str, ...]:
    return tuple(_ORIGINALS["list_of_moto_modules"]())


def _list_of_moto_modules() -> Iterable[str]:
    return _moto_modules()


def _backend_for_host(app: DomainDispatcherApplication, host: str | None) -> Any:
    cache: dict[str | None, Any] = app.__dict__.setdefault("_bench_backend_by_host", {})
    if host not in cache:
        cache[host] = _ORIGINALS["get_backend_for_host"](app, host)
    return cache[host]


def install() -> None:
    with _lock:
        if _ORIGINALS:
            return
        _ORIGINALS["list_of_moto_modules"] = backends.list_of_moto_modules
        _ORIGINALS["get_backend_for_host"] = DomainDispatcherApplication.get_backend_for_host
        backends.list_of_moto_modules = _list_of_moto_modules  # type: ignore[assignment]
        DomainDispatcherApplication.get_backend_for_host = _backend_for_host  # type: ignore[method-assign,assignment]
