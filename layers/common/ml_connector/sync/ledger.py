"""One poll's bookkeeping on the Lambda's ephemeral disk, so the poller's memory stays flat in the window size.

A poll needs what grows with the number of records: the ids each read of the window saw with their stamps (its
proof of completeness: unique ids must reach Visma's ``totalCount``, and a multi-page read that saw rows enter the
window is confirmed by a read that finds no row it missed), the customers it read (so a customer whose payment
facts changed is not fetched again), and the payment facts of every customer (stored by internalId, overdue
invoices and balances) merged into the current facts. Held in Python sets and dicts these cost hundreds of bytes a
record; here they live in a throw-away SQLite file under the temp directory (``/tmp`` in Lambda, 512 MB by default)
with a small page cache, and the poller streams through them.

A window that spans invocations carries the window's part (ids seen per pass, bad refs, what was sent) to the next
invocation in a checkpoint (``snapshot`` / ``restore``); the payment facts are loaded again by every invocation.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from ml_connector.sync.payment import PaymentFacts

_CACHE_KIB = 4096  # SQLite's page cache: the only part of the ledger held in memory
_FLUSH_AT = 1000  # notes buffered before they go to disk (about a Visma page)
_CHUNK = 500  # rows a streaming read takes at a time
# Content hashes are compared by their first 8 hex digits (4 bytes, what a checkpoint keeps): a collision can only
# hold back a changed version within its window, and a changed version is stamped anew, so the next window sends it.
_HASH_DIGITS = 8

_SCHEMA = """
CREATE TABLE seen (id INTEGER PRIMARY KEY, modified TEXT);
CREATE TABLE sent (id INTEGER PRIMARY KEY, hash TEXT);
CREATE TABLE earlier (id INTEGER PRIMARY KEY);
CREATE TABLE bad (ref TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE earlier_bad (ref TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE read (number TEXT PRIMARY KEY, id INTEGER) WITHOUT ROWID;
CREATE INDEX read_id ON read (id);
CREATE TABLE stored (id INTEGER PRIMARY KEY, number TEXT, balance REAL, overdue_amount REAL, overdue_invoices INTEGER,
                     max_dunning_level INTEGER);
CREATE TABLE invoices (number TEXT, balance REAL, level INTEGER);
CREATE INDEX invoices_number ON invoices (number);
CREATE TABLE balances (id INTEGER PRIMARY KEY, number TEXT, balance REAL);
CREATE TABLE number_balances (number TEXT PRIMARY KEY, balance REAL) WITHOUT ROWID;
CREATE TABLE current (id INTEGER PRIMARY KEY, number TEXT, balance REAL, overdue_amount REAL,
                      overdue_invoices INTEGER, max_dunning_level INTEGER, changed INTEGER);
CREATE INDEX current_number ON current (number);
"""

_FACTS = "balance, overdue_amount, overdue_invoices, max_dunning_level"
# A customer's balance is this poll's delta (by id, else by number for a row without one), else as stored;
# its overdue facts go by the number it has now (invoices name their customer by number).
_FACTS_OF = """
SELECT COALESCE((SELECT balance FROM balances WHERE id = :id),
                (SELECT balance FROM number_balances WHERE number = :number),
                (SELECT balance FROM stored WHERE id = :id), 0.0),
       COALESCE(SUM(balance), 0.0), COUNT(*), COALESCE(MAX(level), 0)
FROM invoices WHERE number = :number
"""
# Every customer with a stored or balance fact, or read in this poll, with the number it has now.
_CUSTOMERS = """
WITH ids AS (SELECT id FROM stored UNION SELECT id FROM balances UNION SELECT id FROM read WHERE id IS NOT NULL)
SELECT ids.id, COALESCE((SELECT number FROM read WHERE read.id = ids.id), b.number, s.number) AS number
FROM ids LEFT JOIN balances b USING (id) LEFT JOIN stored s USING (id)
"""
_CURRENT = f"INSERT INTO current (id, number, {_FACTS}, changed) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
# Keyset reads: rows after a key, in key order, a chunk at a time (the poller writes between chunks).
_CHANGED = (f"SELECT id, number, {_FACTS} FROM current WHERE changed AND id > ? ORDER BY id LIMIT ?")  # noqa: S608
_PAYMENT_IDS = """
SELECT id FROM (SELECT id FROM read WHERE id IS NOT NULL UNION SELECT id FROM balances) WHERE id > ? ORDER BY id LIMIT ?
"""
# To fetch again: changed customers this poll did not read, and numbers with overdue invoices or a balance that
# belong to no customer known here (an invoice fell due for a customer without stored facts).
_REFRESH = """
SELECT number FROM (
  SELECT number FROM current WHERE changed AND id NOT IN (SELECT id FROM read WHERE id IS NOT NULL)
  UNION SELECT number FROM invoices UNION SELECT number FROM number_balances
  EXCEPT SELECT number FROM current WHERE NOT changed OR id IN (SELECT id FROM read WHERE id IS NOT NULL)
  EXCEPT SELECT number FROM read)
WHERE number > ? ORDER BY number LIMIT ?
"""


class PollLedger:
    """A poll's ids, sent numbers and payment facts, in a temporary SQLite file removed on close."""

    def __init__(self, directory: str | None = None) -> None:
        self._payments_loaded = False  # the overdue invoices and balances were read into this ledger
        self._dir = tempfile.TemporaryDirectory(prefix="ml-connector-poll-", dir=directory)
        self._db = sqlite3.connect(Path(self._dir.name) / "poll.db", isolation_level=None)
        # A scratch file: no journal, no fsync; a crash loses nothing the next poll does not rebuild.
        for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{_CACHE_KIB}", "temp_store=FILE"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(_SCHEMA)
        self._pending: dict[str, list[tuple[object, ...]]] = {"seen": [], "bad": [], "read": []}

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> PollLedger:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # -- one read of the window ----------------------------------------------------------------
    def start_pass(self) -> None:
        """A new read of the window: ids and bad refs count again from zero; the ids of earlier reads are kept
        (a later read is checked against them). Customers read stay read."""
        self._flush()
        self._db.execute("INSERT OR IGNORE INTO earlier SELECT id FROM seen")
        self._db.execute("INSERT OR IGNORE INTO earlier_bad SELECT ref FROM bad")
        self._db.execute("DELETE FROM seen")
        self._db.execute("DELETE FROM bad")

    def note_seen(self, internal_id: int, modified: str) -> None:
        """A record read, with its ``lastModifiedDateTime`` as a UTC ISO string (so stamps compare as text)."""
        self._note("seen", (internal_id, modified))

    def note_bad(self, ref: str) -> None:
        self._note("bad", (ref,))

    def note_read(self, internal_id: int | None, number: str) -> None:
        """A customer read in this poll (sent with the current facts, or quarantined): no refresh for it."""
        self._note("read", (number, internal_id))

    def sent_before(self, versions: list[tuple[int, str]]) -> set[int]:
        """Of these (internalId, content hash), the ones this poll already sent with the same content."""
        found: set[int] = set()
        for start in range(0, len(versions), 500):
            chunk = {i: h[:_HASH_DIGITS] for i, h in versions[start : start + 500]}
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT id, hash FROM sent WHERE id IN ({marks})", list(chunk))  # noqa: S608
            found.update(i for i, h in rows if chunk.get(i) == h)
        return found

    def note_sent(self, versions: list[tuple[int, str]]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO sent (id, hash) VALUES (?, ?)",
                             [(i, h[:_HASH_DIGITS]) for i, h in versions])

    def seen(self, internal_id: int) -> bool:
        """This poll read the record (in any pass)."""
        self._flush()
        return self._db.execute("SELECT 1 FROM seen WHERE id = ?", (internal_id,)).fetchone() is not None

    def unique_count(self) -> int:
        """Unique ids plus unique malformed rows read in this pass."""
        self._flush()
        row = self._db.execute("SELECT (SELECT COUNT(*) FROM seen) + (SELECT COUNT(*) FROM bad)").fetchone()
        return int(row[0])

    def union_count(self) -> int:
        """Unique ids plus unique malformed rows read in any pass of the window."""
        self._flush()
        row = self._db.execute("SELECT (SELECT COUNT(*) FROM (SELECT id FROM seen UNION SELECT id FROM earlier))"
                               " + (SELECT COUNT(*) FROM (SELECT ref FROM bad UNION SELECT ref FROM earlier_bad))"
                               ).fetchone()
        return int(row[0])

    def all_seen_ids(self) -> Iterator[int]:
        """Every internalId the window read in any pass (malformed rows with a numeric id included)."""
        self._flush()
        rows = self._db.execute("SELECT id FROM seen UNION SELECT id FROM earlier UNION SELECT CAST(ref AS INTEGER)"
                                " FROM (SELECT ref FROM bad UNION SELECT ref FROM earlier_bad)"
                                " WHERE ref GLOB '[0-9]*' AND ref NOT GLOB '*[^0-9]*'")
        while chunk := rows.fetchmany(_CHUNK):
            yield from (int(i) for (i,) in chunk)

    def snapshot(self, before: str | None) -> dict[str, object]:
        """The window's part of the ledger, for a checkpoint: this pass's ids split by whether they were stamped
        before ``before`` (the previous pass's confirmation threshold), earlier passes' ids, bad refs, sent."""
        self._flush()

        def ids(query: str, *args: object) -> list[int]:
            return [int(i) for (i,) in self._db.execute(query, args)]

        split = before if before is not None else ""
        return {"seen_before": ids("SELECT id FROM seen WHERE modified < ? ORDER BY id", split),
                "seen_after": ids("SELECT id FROM seen WHERE modified >= ? ORDER BY id", split),
                "earlier": ids("SELECT id FROM earlier ORDER BY id"),
                "bad": [str(r) for (r,) in self._db.execute("SELECT ref FROM bad")],
                "earlier_bad": [str(r) for (r,) in self._db.execute("SELECT ref FROM earlier_bad")],
                "sent": [(int(i), str(h)) for i, h in self._db.execute("SELECT id, hash FROM sent ORDER BY id")],
                "read": [(str(n), i) for n, i in self._db.execute("SELECT number, id FROM read ORDER BY number")]}

    def restore(self, seen_before: Iterable[int], seen_after: Iterable[int], newest: str | None,
                earlier: Iterable[int], bad: Iterable[str], earlier_bad: Iterable[str],
                sent: Iterable[tuple[int, str]], read: Iterable[tuple[str, int | None]]) -> None:
        """The window's part of a checkpoint, back in the ledger. Exact stamps are not kept: an id stamped before
        the confirmation threshold counts as stamped at the start of time, the others at the pass's newest
        stamp, which is all that ``newest_stamp`` and ``missed_earlier`` ask of them."""
        self._flush()
        self._insert_many("INSERT OR IGNORE INTO seen VALUES (?, ?)", ((i, "") for i in seen_before))
        self._insert_many("INSERT OR IGNORE INTO seen VALUES (?, ?)", ((i, newest or "") for i in seen_after))
        self._insert_many("INSERT OR IGNORE INTO earlier VALUES (?)", ((i,) for i in earlier))
        self._insert_many("INSERT OR IGNORE INTO bad VALUES (?)", ((r,) for r in bad))
        self._insert_many("INSERT OR IGNORE INTO earlier_bad VALUES (?)", ((r,) for r in earlier_bad))
        self._insert_many("INSERT OR REPLACE INTO sent VALUES (?, ?)", ((i, h[:_HASH_DIGITS]) for i, h in sent))
        self._insert_many("INSERT OR IGNORE INTO read VALUES (?, ?)", read)

    def newest_stamp(self) -> str | None:
        """The newest stamp read in this pass."""
        self._flush()
        return self._db.execute("SELECT MAX(modified) FROM seen").fetchone()[0]

    def missed_earlier(self, stamped_before: str) -> int:
        """Rows this pass read that no earlier pass did although they were stamped before ``stamped_before``
        (so they were in the window then): an earlier pass skipped them."""
        self._flush()
        row = self._db.execute("SELECT COUNT(*) FROM seen WHERE modified < ? AND id NOT IN (SELECT id FROM earlier)",
                               (stamped_before,)).fetchone()
        return int(row[0])

    # -- payment facts -------------------------------------------------------------------------
    def load_stored(self, facts: Iterable[tuple[int, str | None, PaymentFacts]], *, replace: bool = True) -> None:
        """Stored facts: (internalId, the number stored with them, facts); ``replace`` False keeps facts loaded
        before for the same customer."""
        verb = "REPLACE" if replace else "IGNORE"
        self._insert_many(f"INSERT OR {verb} INTO stored (id, number, {_FACTS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
                          ((i, n, *_values(f)) for i, n, f in facts))

    def payment_customer_ids(self) -> Iterator[list[int]]:
        """Customers of the balance delta or read in this poll, in chunks: their stored facts must be loaded
        before the merge."""
        self._flush()
        for chunk in self._keyset(_PAYMENT_IDS, -(2**63)):
            yield [int(str(row[0])) for row in chunk]

    def stored_overdue(self, internal_ids: list[int]) -> set[int]:
        """Of these customers, those whose stored facts have overdue invoices."""
        found: set[int] = set()
        for start in range(0, len(internal_ids), _CHUNK):
            chunk = internal_ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT id FROM stored WHERE id IN ({marks}) AND (overdue_amount != 0 OR "  # noqa: S608
                                    "overdue_invoices != 0 OR max_dunning_level != 0)", chunk)
            found.update(int(row[0]) for row in rows)
        return found

    def add_overdue_invoices(self, invoices: Iterable[tuple[str, float, int]]) -> None:
        """Open invoices past due: (customer number, open balance, dunning level)."""
        self._insert_many("INSERT INTO invoices VALUES (?, ?, ?)", invoices)

    def payments_loaded(self) -> None:
        """The overdue invoices and balances are all in (a checkpoint may then carry them)."""
        self._payments_loaded = True

    def payment_preload(self) -> dict[str, object]:
        """What add_overdue_invoices and set_balances took from Visma, for a window's checkpoint."""
        if not self._payments_loaded:
            return {}
        self._flush()
        invoices = [tuple(r) for r in self._db.execute("SELECT number, balance, level FROM invoices")]
        balances = [tuple(r) for r in self._db.execute("SELECT id, number, balance FROM balances")]
        balances += [(None, *r) for r in self._db.execute("SELECT number, balance FROM number_balances")]
        return {"payments_loaded": True, "invoices": invoices, "balances": balances}

    def set_balances(self, balances: Iterable[tuple[int | None, str, float]]) -> None:
        """Balances read since the watermark, (internalId or None, number, balance); the latest row wins."""
        for chunk in _chunks(balances):
            self._db.executemany("INSERT OR REPLACE INTO balances VALUES (?, ?, ?)",
                                 [row for row in chunk if row[0] is not None])
            self._db.executemany("INSERT OR REPLACE INTO number_balances VALUES (?, ?)",
                                 [(n, b) for i, n, b in chunk if i is None])

    def facts_for(self, internal_id: int, number: str) -> PaymentFacts:
        """Current facts of a customer: balance by internalId (so a renumbered customer keeps it), overdue
        invoices by the number it has now."""
        row = self._db.execute(_FACTS_OF, {"id": internal_id, "number": number}).fetchone()
        return _facts((row[0], round(float(row[1]), 2), row[2], row[3]))

    def merge_payment_facts(self) -> None:
        """Current facts per customer known here, and whether they differ from the stored ones. Run after the
        window is read (the customers it read give their current numbers) and again after refreshes."""
        self._flush()
        self._db.execute("DELETE FROM current")
        rows = self._db.execute(_CUSTOMERS)
        while chunk := rows.fetchmany(_CHUNK):
            self._db.executemany(_CURRENT, [self._current(int(i), n) for i, n in chunk if n is not None])

    def changed_facts(self) -> Iterator[list[tuple[int, str, PaymentFacts]]]:
        """Customers whose facts (or, with facts, whose number) differ from the stored ones, in chunks."""
        for chunk in self._keyset(_CHANGED, 0):
            yield [(int(str(row[0])), str(row[1]), _facts(row[2:])) for row in chunk]

    def refresh_numbers(self) -> Iterator[str]:
        """Customers to fetch and send again, by number: their facts changed but this poll did not read them."""
        self._flush()
        for chunk in self._keyset(_REFRESH, ""):
            yield from (str(row[0]) for row in chunk)

    # -- helpers -------------------------------------------------------------------------------
    def _current(self, internal_id: int, number: str) -> tuple[object, ...]:
        current = self.facts_for(internal_id, number)
        row = self._db.execute(f"SELECT number, {_FACTS} FROM stored WHERE id = ?", (internal_id,)).fetchone()  # noqa: S608
        stored = _facts(row[1:]) if row else PaymentFacts()
        moved = row is not None and row[0] != number and current != PaymentFacts()
        return internal_id, number, *_values(current), current != stored or moved

    def _note(self, table: str, values: tuple[object, ...]) -> None:
        pending = self._pending[table]
        pending.append(values)
        if len(pending) >= _FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        for table, values in self._pending.items():
            if values:
                marks = ", ".join("?" * len(values[0]))
                self._db.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", values)  # noqa: S608
                values.clear()

    def _insert_many(self, statement: str, rows: Iterable[tuple[object, ...]]) -> None:
        for chunk in _chunks(rows):
            self._db.executemany(statement, chunk)

    def _keyset(self, query: str, after: object) -> Iterator[list[tuple[object, ...]]]:
        while chunk := self._db.execute(query, (after, _CHUNK)).fetchall():
            yield chunk
            after = chunk[-1][0]


def _chunks(rows: Iterable[tuple[object, ...]]) -> Iterator[list[tuple[object, ...]]]:
    chunk: list[tuple[object, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= _FLUSH_AT:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _values(facts: PaymentFacts) -> tuple[float, float, int, int]:
    return facts.balance, facts.overdue_amount, facts.overdue_invoices, facts.max_dunning_level


def _facts(row: Iterable[object]) -> PaymentFacts:
    return PaymentFacts(**dict(zip(PaymentFacts.model_fields, row, strict=True)))
