"""Visma.net ERP sandbox: Visma Connect's token endpoint + the ERP read API on a local HTTP server.

Follows /work/shared/reference/visma.md. Choices where the reference leaves things open:

- ``pageSize`` defaults to 100 (capped silently at ``max_page_size``); pageNumber/pageSize < 1 -> 400.
- Lists are ordered by internalId; naive filter values and naive stamps are UTC; a date-only filter
  value means its midnight; 1-3 fraction digits are accepted, a zone suffix is refused (400).
- One record in every block of five is served with a local offset (``+01:00``/``+02:00``, EU summer
  time), the others naive. Seeded stamps lie between 2019-01-02 and 2026-06-01 (fixed, so the data
  does not depend on the day); edits, inserts and updates are stamped with the sandbox clock.
- internalIds: customers 10001.., suppliers 50001..; numbers: customers "10001".., suppliers "70001"..
- Short reference lists (classes, payment methods) are whole bare arrays without metadata, sliced when
  pageNumber/pageSize are sent; ``/v1/creditTerm`` uses the wrapper shape.
- Invoices are dated relative to the sandbox's start day (so "past due" means past due today).
- Every ERP call counts against the rate limit (key: company + the token's client), 401s included;
  injected faults do not count. ERP paths are matched case-insensitively.
"""

from sandbox.visma.server import VismaSandbox, VismaStats

__all__ = ["VismaSandbox", "VismaStats"]
