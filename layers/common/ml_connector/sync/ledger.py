"""One poll's bookkeeping on the Lambda's ephemeral disk, so the poller's memory stays flat in the window size.

A poll needs three things that grow with the number of records: the ids a read of the window saw (its proof of
completeness: unique ids must reach Visma's ``totalCount``), the customer numbers it sent (so a customer whose
payment facts changed is not fetched again), and the payment facts of every customer (stored, overdue invoices,
balances) merged into the current facts. Held in Python sets and dicts these cost hundreds of bytes a record;
here they live in a throw-away SQLite file under the temp directory (``/tmp`` in Lambda, 512 MB by default) with a
small page cache, and the poller streams through them.
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

_SCHEMA = """
CREATE TABLE seen (id INTEGER PRIMARY KEY);
CREATE TABLE bad (ref TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE read_numbers (number TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE stored (number TEXT PRIMARY KEY, balance REAL, overdue_amount REAL, overdue_invoices INTEGER,
                     max_dunning_level INTEGER) WITHOUT ROWID;
CREATE TABLE invoices (number TEXT, balance REAL, level INTEGER);
CREATE TABLE balances (number TEXT PRIMARY KEY, balance REAL) WITHOUT ROWID;
CREATE TABLE current (number TEXT PRIMARY KEY, balance REAL, overdue_amount REAL, overdue_invoices INTEGER,
                      max_dunning_level INTEGER, changed INTEGER) WITHOUT ROWID;
"""

# Every customer with a stored, overdue or balance fact, with what each source says about it.
_MERGE = """
WITH due AS (SELECT number, SUM(balance) AS amount, COUNT(*) AS n, MAX(level) AS level
             FROM invoices GROUP BY number),
     numbers AS (SELECT number FROM stored UNION SELECT number FROM balances UNION SELECT number FROM due)
SELECT numbers.number, b.balance, s.balance, d.amount, d.n, d.level,
       s.overdue_amount, s.overdue_invoices, s.max_dunning_level, s.number IS NOT NULL
FROM numbers LEFT JOIN balances b USING (number) LEFT JOIN stored s USING (number) LEFT JOIN due d USING (number)
"""

_NOTE = {table: f"INSERT OR IGNORE INTO {table} VALUES (?)"  # noqa: S608 - constant table names
         for table in ("seen", "bad", "read_numbers")}
_FACTS = "balance, overdue_amount, overdue_invoices, max_dunning_level"
_STORE = f"INSERT OR REPLACE INTO stored (number, {_FACTS}) VALUES (?, ?, ?, ?, ?)"  # noqa: S608 - constants only
_CURRENT = f"INSERT INTO current (number, {_FACTS}, changed) VALUES (?, ?, ?, ?, ?, ?)"  # noqa: S608
_FACTS_OF = f"SELECT {_FACTS} FROM current WHERE number = ?"  # noqa: S608
# Keyset reads: rows after a number, in number order, a chunk at a time (the poller writes between chunks).
_CHANGED = f"SELECT number, {_FACTS} FROM current WHERE changed AND number > ? ORDER BY number LIMIT ?"  # noqa: S608
_REFRESH = ("SELECT number FROM current WHERE changed AND number > ?"
            " AND number NOT IN (SELECT number FROM read_numbers) ORDER BY number LIMIT ?")


class PollLedger:
    """A poll's ids, sent numbers and payment facts, in a temporary SQLite file removed on close."""

    def __init__(self, directory: str | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="ml-connector-poll-", dir=directory)
        self._db = sqlite3.connect(Path(self._dir.name) / "poll.db", isolation_level=None)
        # A scratch file: no journal, no fsync; a crash loses nothing the next poll does not rebuild.
        for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{_CACHE_KIB}", "temp_store=FILE"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(_SCHEMA)
        self._pending: dict[str, list[tuple[object, ...]]] = {"seen": [], "bad": [], "read_numbers": []}

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
        """A new read of the window: ids and bad refs count again from zero (sent numbers stay: each was sent)."""
        self._flush()
        self._db.execute("DELETE FROM seen")
        self._db.execute("DELETE FROM bad")

    def note_seen(self, internal_id: int) -> None:
        self._note("seen", internal_id)

    def note_bad(self, ref: str) -> None:
        self._note("bad", ref)

    def note_read_number(self, number: str) -> None:
        """A customer read in this poll (sent with the current facts, or quarantined): no refresh for it."""
        self._note("read_numbers", number)

    def seen(self, internal_id: int) -> bool:
        """This poll read the record (in any pass)."""
        self._flush()
        return self._db.execute("SELECT 1 FROM seen WHERE id = ?", (internal_id,)).fetchone() is not None

    def unique_count(self) -> int:
        """Unique ids plus unique malformed rows read in this pass."""
        self._flush()
        row = self._db.execute("SELECT (SELECT COUNT(*) FROM seen) + (SELECT COUNT(*) FROM bad)").fetchone()
        return int(row[0])

    # -- payment facts -------------------------------------------------------------------------
    def load_stored(self, facts: Iterable[tuple[str, PaymentFacts]]) -> None:
        self._insert_many(_STORE, ((n, *_values(f)) for n, f in facts))

    def add_overdue_invoices(self, invoices: Iterable[tuple[str, float, int]]) -> None:
        """Open invoices past due: (customer number, open balance, dunning level)."""
        self._insert_many("INSERT INTO invoices VALUES (?, ?, ?)", invoices)

    def set_balances(self, balances: Iterable[tuple[str, float]]) -> None:
        """Balances read since the watermark; the latest row for a customer wins."""
        self._insert_many("INSERT OR REPLACE INTO balances VALUES (?, ?)", balances)

    def merge_payment_facts(self) -> None:
        """Current facts per customer: overdue from the invoices, balance from the delta or else as stored."""
        rows = self._db.execute(_MERGE)
        while chunk := rows.fetchmany(_CHUNK):
            self._db.executemany(_CURRENT, [_merged(row) for row in chunk])

    def facts_for(self, number: str) -> PaymentFacts:
        row = self._db.execute(_FACTS_OF, (number,)).fetchone()
        return _facts(row) if row else PaymentFacts()

    def changed_facts(self) -> Iterator[list[tuple[str, PaymentFacts]]]:
        """Customers whose facts differ from the stored ones, in chunks."""
        for chunk in self._keyset(_CHANGED):
            yield [(str(row[0]), _facts(row[1:])) for row in chunk]

    def refresh_numbers(self) -> Iterator[str]:
        """Changed customers this poll did not send: their records must be fetched and sent again."""
        self._flush()
        for chunk in self._keyset(_REFRESH):
            yield from (str(row[0]) for row in chunk)

    # -- helpers -------------------------------------------------------------------------------
    def _note(self, table: str, value: object) -> None:
        pending = self._pending[table]
        pending.append((value,))
        if len(pending) >= _FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        for table, values in self._pending.items():
            if values:
                self._db.executemany(_NOTE[table], values)
                values.clear()

    def _insert_many(self, statement: str, rows: Iterable[tuple[object, ...]]) -> None:
        chunk: list[tuple[object, ...]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= _FLUSH_AT:
                self._db.executemany(statement, chunk)
                chunk.clear()
        if chunk:
            self._db.executemany(statement, chunk)

    def _keyset(self, query: str) -> Iterator[list[tuple[object, ...]]]:
        after = ""
        while chunk := self._db.execute(query, (after, _CHUNK)).fetchall():
            yield chunk
            after = str(chunk[-1][0])


def _values(facts: PaymentFacts) -> tuple[float, float, int, int]:
    return facts.balance, facts.overdue_amount, facts.overdue_invoices, facts.max_dunning_level


def _facts(row: Iterable[object]) -> PaymentFacts:
    return PaymentFacts(**dict(zip(PaymentFacts.model_fields, row, strict=True)))


def _merged(row: tuple[object, ...]) -> tuple[object, ...]:
    number, new_balance, stored_balance, amount, count, level, *stored_due, was_stored = row
    current = PaymentFacts(
        balance=new_balance if new_balance is not None else (stored_balance or 0.0),
        overdue_amount=round(float(amount or 0.0), 2),  # type: ignore[arg-type]
        overdue_invoices=count or 0,
        max_dunning_level=level or 0,
    )
    stored = _facts((stored_balance, *stored_due)) if was_stored else PaymentFacts()
    return number, *_values(current), current != stored
