"""One way to turn a pydantic ValidationError into the text an operator reads (config, mapping, records)."""

from __future__ import annotations

from pydantic import ValidationError


def describe(error: ValidationError) -> str:
    """``field.path: what is wrong; ...`` for every problem, in the order pydantic found them."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
