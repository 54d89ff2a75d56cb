"""The DuckDB store as an `ArchiveSource` (pipeline/archive/source.py): whole UTC days of
events read out sorted, and dropped per day and source in one transaction once archived.
Each query is one range on `ts`, which DuckDB narrows by zone maps (events arrive roughly
in time order), so a day costs about its own rows, not the table's."""

from __future__ import annotations

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


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, UTC)


class DuckDBArchiveSource:
    """`ArchiveSource` over an open `DuckDBStore` (it uses the store's own connection, so
    whoever shares the store object shares its lock, if any)."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store

    def archivable_days(self, before: datetime) -> list[tuple[date, str, int]]:
        end = midnight(before.astimezone(UTC).date())  # only whole days before `before`
        rows = self.store.con.execute(
            """SELECT CAST(ts AS DATE) AS day, source, count(*) FROM events
               WHERE ts < ? GROUP BY ALL ORDER BY day, source""",
            [end],
        ).fetchall()
        return [(day, source, int(n)) for day, source, n in rows]

    def day_events(self, day: date, source: str) -> pa.Table:
        relation = self.store.con.sql(
            f"""SELECT {_COLUMNS} FROM events WHERE ts >= ? AND ts < ? AND source = ?
                ORDER BY ts, event_id""",  # noqa: S608 - constant column list
            params=[midnight(day), midnight(day) + _DAY, source],
        )
        return relation.to_arrow_table().cast(SCHEMA)

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
