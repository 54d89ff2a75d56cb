"""The DuckDB store as an `ArchiveSource` (pipeline/archive/source.py): whole UTC days of
events read out sorted, and dropped per day and source in one transaction once archived.

A query per day and source costs milliseconds of fixed overhead, as much as moving the
rows of a quiet day; so `day_events` reads ahead: one query (in one read snapshot with the
counts that slice it) fetches the asked day and the following archivable days, up to
`READ_AHEAD_ROWS` rows, sorted by (day, source, ts, event_id), and serves each (day,
source) as a zero-copy slice. Each is served once; a row that arrives for such a day
after the read makes `drop_day`'s count check fail, so nothing is dropped unarchived (the
next run archives it as a new part). Each range on `ts` is narrowed by zone maps (events
arrive roughly in time order), so a read costs about its own rows, not the table's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta

import pyarrow as pa

from pipeline.errors import StoreError
from pipeline.store.duckdb.store import DuckDBStore
from pipeline.store.rows import EVENT_COLUMNS

# The archived schema: the AccessEvent columns as the store holds them.
SCHEMA = pa.schema(
    [
        pa.field(name, pa.timestamp("us", tz="UTC") if name == "ts" else pa.string())
        for name in EVENT_COLUMNS
    ]
)
_COLUMNS = ", ".join(EVENT_COLUMNS)
_DAY = timedelta(days=1)
READ_AHEAD_ROWS = 500_000  # = the archiver's batch


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, UTC)


class DuckDBArchiveSource:
    """`ArchiveSource` over an open `DuckDBStore` (it uses the store's own connection, so
    whoever shares the store object shares its lock, if any)."""

    def __init__(self, store: DuckDBStore, read_ahead_rows: int = READ_AHEAD_ROWS) -> None:
        self.store = store
        self.read_ahead_rows = read_ahead_rows
        self._days: dict[date, int] = {}  # archivable day -> hot events (all sources)
        self._ahead: dict[tuple[date, str], pa.Table] = {}

    def archivable_days(self, before: datetime) -> list[tuple[date, str, int]]:
        end = midnight(before.astimezone(UTC).date())  # only whole days before `before`
        rows = self.store.con.execute(
            """SELECT CAST(ts AS DATE) AS day, source, count(*) FROM events
               WHERE ts < ? GROUP BY ALL ORDER BY day, source""",
            [end],
        ).fetchall()
        self._days = {}
        for day, _, n in rows:
            self._days[day] = self._days.get(day, 0) + int(n)
        self._ahead.clear()
        return [(day, source, int(n)) for day, source, n in rows]

    def day_events(self, day: date, source: str) -> pa.Table:
        if (day, source) not in self._ahead:
            self._read_ahead(day)
        table = self._ahead.pop((day, source), None)
        return table if table is not None else SCHEMA.empty_table()

    def _read_ahead(self, first: date) -> None:
        """Fetch `first` and the archivable days after it, up to `read_ahead_rows`."""
        self._ahead.clear()
        last, rows = first, self._days.get(first, 0)
        for day in sorted(d for d in self._days if d > first):
            if day - last > _DAY * 7 or rows + self._days[day] > self.read_ahead_rows:
                break
            last, rows = day, rows + self._days[day]
        since, until = midnight(first), midnight(last) + _DAY
        con = self.store.con
        with self.store._transaction(f"reading events to archive from {self.store.path}"):
            counts = con.execute(
                """SELECT CAST(ts AS DATE) AS day, source, count(*) FROM events
                   WHERE ts >= ? AND ts < ? GROUP BY ALL ORDER BY day, source""",
                [since, until],
            ).fetchall()
            table = con.sql(
                f"""SELECT {_COLUMNS} FROM events WHERE ts >= ? AND ts < ?
                    ORDER BY CAST(ts AS DATE), source, ts, event_id""",  # noqa: S608
                params=[since, until],
            ).to_arrow_table()
        table = table.cast(SCHEMA)
        offset = 0
        for day, source, n in counts:
            self._ahead[(day, source)] = table.slice(offset, int(n))
            offset += int(n)

    def drop_day(self, day: date, source: str, expected: int) -> int:
        doing = f"dropping the archived events of {day} ({source}) from store {self.store.path}"
        with self.store._transaction(doing) as con:
            row = con.execute(
                "DELETE FROM events WHERE ts >= ? AND ts < ? AND source = ?",
                [midnight(day), midnight(day) + _DAY, source],
            ).fetchone()
            deleted = int(row[0]) if row else 0
            if deleted != expected:
                raise StoreError(
                    f"{doing}: {deleted} events there, {expected} archived (events arrived "
                    "meanwhile?); nothing dropped, the next `secretwatch archive` settles it"
                )
        return deleted

    def drop_days(
        self,
        units: Sequence[tuple[date, str, int]],
        before_commit: Callable[[], None] | None = None,
    ) -> int:
        """`drop_day` for many units in one transaction: counted, checked, then deleted by
        one range per run of consecutive days (`BatchDrop`)."""
        if not units:
            return 0
        wanted = {(day, source): n for day, source, n in units}
        first, last = min(wanted)[0], max(wanted)[0]
        since, until = midnight(first), midnight(last) + _DAY
        doing = f"dropping archived events of {first}..{last} from store {self.store.path}"
        with self.store._transaction(doing) as con:
            counts = con.execute(
                """SELECT CAST(ts AS DATE) AS day, source, count(*) FROM events
                   WHERE ts >= ? AND ts < ? GROUP BY ALL""",
                [since, until],
            ).fetchall()
            there = {(day, source): int(n) for day, source, n in counts}
            wrong = [(k, n, there.get(k, 0)) for k, n in wanted.items() if there.get(k, 0) != n]
            if wrong:
                (day, source), n, found = wrong[0]
                raise StoreError(
                    f"{doing}: {found} events of {day} ({source}) there, {n} archived (events "
                    "arrived meanwhile?); nothing dropped, the next `secretwatch archive` "
                    "settles it"
                )
            if set(there) == set(wanted):  # the whole range goes: one range delete
                row = con.execute(
                    "DELETE FROM events WHERE ts >= ? AND ts < ?", [since, until]
                ).fetchone()
            else:
                keys = pa.table(  # noqa: F841 - DuckDB reads it by name below
                    {"day": [d for d, _ in wanted], "source": [s for _, s in wanted]}
                )
                row = con.execute(
                    """DELETE FROM events WHERE ts >= ? AND ts < ?
                       AND (CAST(ts AS DATE), source) IN (SELECT day, source FROM keys)""",
                    [since, until],
                ).fetchone()
            deleted = int(row[0]) if row else 0
            if deleted != sum(wanted.values()):
                raise StoreError(f"{doing}: deleted {deleted}, expected {sum(wanted.values())}")
            if before_commit is not None:
                before_commit()
        return deleted
