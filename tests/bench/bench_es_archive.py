"""Archive benchmark on the Elasticsearch store: the same events archived from Elasticsearch
and from DuckDB, and whether both archives are the same files.

    python tests/bench/bench_es_archive.py [--events 1000000] [--days 30] [--url URL]

Events of three sources spread evenly over `--days` days are written through each store's
own `write_batch` (not timed), then `pipeline.archive.archiver.archive` moves every day out
(timed): reading each day sorted over a point in time, Parquet, signed digests, and the
per-day drop, which on Elasticsearch is a bulk delete of the ids it counted. Prints events/s
for both stores and whether the Parquet files are byte-identical. Needs the test server
(`scripts/services start elasticsearch`); uses its own index prefix and removes it after.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from elasticsearch import Elasticsearch

from pipeline.archive import archiver, keys, layout
from pipeline.archive.settings import ArchiveSettings
from pipeline.record import EventRow
from pipeline.store.duckdb import DuckDBStore
from pipeline.store.duckdb.archive import DuckDBArchiveSource
from pipeline.store.elasticsearch import ElasticsearchStore

START = datetime(2025, 1, 1, tzinfo=UTC)
SOURCES = ("vault", "aws", "k8s")
BATCH = 50_000


def rows(n: int, days: int) -> list[EventRow]:
    step = timedelta(days=days) / n
    out = []
    for i in range(n):
        ts = START + step * i
        source = SOURCES[i % 3]
        out.append(
            EventRow(
                hashlib.md5(str(i).encode()).hexdigest(),  # noqa: S324 - ids, not security
                int(ts.timestamp()) * 1_000_000 + ts.microsecond,
                source,
                source,
                f"team-{i % 50}/svc-{i % 500}",
                "service",
                f"secret/team-{i % 50}/key-{i % 5000}",
                "read",
                "read",
                "denied" if i % 200 == 0 else "success",
                f"10.0.{i % 16}.{i % 250}",
                None,
                hashlib.md5(str(i + 1).encode()).hexdigest(),  # noqa: S324
                None,
                None,
            )
        )
    return out


def timed_archive(source: object, alerts: object, folder: Path, key_file: Path) -> float:
    private = keys.load_private(ArchiveSettings(path=folder, key_file=key_file))
    began = time.perf_counter()
    archiver.archive(source, alerts, folder, private, START + timedelta(days=10_000))  # type: ignore[arg-type]
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--url", default=os.environ.get("SECRETWATCH_ES_URL", "http://127.0.0.1:19200")
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-es-archive-"))
    prefix = f"swbench-{os.getpid()}"
    admin = Elasticsearch(args.url, request_timeout=120)
    try:
        events = rows(args.events, args.days)
        key = work / "archive.key"
        keys.keygen(key)
        with ElasticsearchStore(args.url, prefix) as es:
            for start in range(0, len(events), BATCH):
                es.write_batch(events[start : start + BATCH])
            es_seconds = timed_archive(es, es, work / "from-es", key)
            left = es.count()
        with DuckDBStore(work / "store.duckdb") as duck:
            duck.write_batch(events)
            duck_seconds = timed_archive(DuckDBArchiveSource(duck), duck, work / "from-duckdb", key)
        es_files = layout.event_files(work / "from-es", None, None)
        duck_files = layout.event_files(work / "from-duckdb", None, None)
        same = [a.read_bytes() for a in es_files] == [b.read_bytes() for b in duck_files]
        n = len(events)
        print(f"{n:,} events over {args.days} days, {len(es_files)} day files each")
        print(f"archive from Elasticsearch: {es_seconds:.2f} s, {n / es_seconds:,.0f} events/s")
        print(f"archive from DuckDB:        {duck_seconds:.2f} s, {n / duck_seconds:,.0f} events/s")
        print(f"hot events left in Elasticsearch: {left}; archives byte-identical: {same}")
    finally:
        names = list(admin.indices.get(index=f"{prefix}-*", expand_wildcards="all"))
        if names:
            admin.indices.delete(index=",".join(names))
        if admin.indices.exists_index_template(name=f"{prefix}-events"):
            admin.indices.delete_index_template(name=f"{prefix}-events")
        admin.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
