"""Serialising emulator calls that real AWS applies atomically (moto's server answers on threads)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def one_at_a_time(function: Callable[..., Any], lock: Any) -> Callable[..., Any]:
    """``function`` run under ``lock``: no two calls (of any function wrapped with the same lock) overlap."""
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return function(*args, **kwargs)

    return call
