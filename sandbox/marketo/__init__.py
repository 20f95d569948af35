"""Marketo Engage sandbox: identity + REST (companies, custom objects, leads) with Marketo's limits and error model."""

from sandbox.marketo.server import MarketoSandbox

__all__ = ["MarketoSandbox"]
