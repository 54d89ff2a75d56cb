"""Archive benchmark: `secretwatch archive` and `archive verify` on a year of events.

    python tests/bench/bench_archive.py [--events 10000000] [--days 365] [--keep DIR]

A year (2025) of events from three sources (Vault, AWS, Kubernetes) over 500 identities
and 5,000 secrets is written straight into a new DuckDB store with one SQL statement (no
parsing: this measures the archive), in time order, as a store fills. Event and request
ids are random hex, as Vault's are, so they compress as badly as real ones.

Measured, in-process (the command's own library calls, without the CLI's start-up):
- archive: every day moved to Parquet + signed digests + hot rows dropped; events/s
  (goal >= 500,000/s);
- verify: the whole chain, every file hashed; GB/s of Parquet (goal >= 1 GB/s; the files
  were just written, so this is the page cache's speed, not a cold disk's);
- size: the Parquet files against the hot store file holding the same events (after a
  CHECKPOINT; goal <= 1/5);
- the access review's store reads (`access_summary`, `hourly_activity`, `source_coverage`,
  `secret_history`: what `secretwatch report` asks the store) for the quarter 2025Q2, from
  the hot store before archiving and from the archive after it (the DuckDB store reads
  archived days from their Parquet files); goal: archived within twice the hot time. The
  rest of a report (policies, tables, charts, files) does not depend on where events are.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from pipeline.archive import keys, layout
from pipeline.archive.run import run_archive
from pipeline.archive.settings import ArchiveSettings, Retention
from pipeline.archive.verify import verify
from pipeline.store.duckdb import DuckDBStore

GOAL_EPS, GOAL_GBPS, GOAL_RATIO, GOAL_REVIEW = 500_000, 1.0, 1 / 5, 2.0
YEAR = datetime(2025, 1, 1, tzinfo=UTC)

FILL = """
INSERT INTO events (event_id, ts, source, backend, identity, identity_kind, secret, action,
                    operation, outcome, source_ip, user_agent, request_id, error, note)
SELECT md5(i::VARCHAR) AS event_id,
       make_timestamp(?::BIGINT + (i::HUGEINT * ?::HUGEINT // ?::BIGINT)::BIGINT)::TIMESTAMPTZ
           AS ts,
       ['vault', 'aws', 'k8s'][(1 + hash(i) % 3)::BIGINT] AS source,
       CASE hash(i) % 3 WHEN 0 THEN 'vault-prod' WHEN 1 THEN '111122223333' ELSE 'prod-eks' END,
       'team-' || (hash(i * 7) % 50) || '/svc-' || (hash(i * 7) % 500) AS identity,
       CASE WHEN hash(i * 5) % 20 = 0 THEN 'human' ELSE 'service' END AS identity_kind,
       CASE WHEN hash(i * 3) % 10 = 0 THEN NULL
            ELSE 'secret/team-' || (hash(i * 7) % 50) || '/key-' || (hash(i * 11) % 5000) END,
       ['read', 'read', 'read', 'read', 'list', 'write', 'auth'][(1 + hash(i * 13) % 7)::BIGINT],
       ['read', 'read', 'read', 'read', 'list', 'update', 'login'][(1 + hash(i * 13) % 7)::BIGINT],
       CASE WHEN hash(i * 17) % 200 = 0 THEN 'denied' ELSE 'success' END AS outcome,
       '10.0.' || (hash(i * 19) % 16) || '.' || (hash(i * 7) % 250) AS source_ip,
       CASE WHEN hash(i) % 3 = 1 THEN 'aws-sdk-go/1.44' ELSE 'vault-agent/1.15' END,
       md5((i + 1)::VARCHAR) AS request_id,
       CASE WHEN hash(i * 17) % 200 = 0 THEN 'permission denied' END AS error,
       NULL AS note
FROM range(?::BIGINT) t(i)
"""


def generate(store: Path, events: int, days: int) -> None:
    with DuckDBStore(store) as s:
        span = days * 86_400_000_000
        s.con.execute(FILL, [int(YEAR.timestamp() * 1e6), span, events, events])
        s.con.execute("CHECKPOINT")


def review_seconds(store: DuckDBStore, repeat: int = 3) -> tuple[float, int]:
    """Best of `repeat` runs of the report's four store reads over 2025Q2; and the
    quarter's event count (so hot and archived can be compared)."""
    since, until = datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)
    best = float("inf")
    events = 0
    for _ in range(repeat):
        started = time.perf_counter()
        summary = store.access_summary(since, until)
        store.hourly_activity(since, until)
        store.source_coverage(since, until)
        store.secret_history(until)
        best = min(best, time.perf_counter() - started)
        events = int(summary["events"].sum())
    return best, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-archive-"))
    work.mkdir(parents=True, exist_ok=True)
    store, folder, key = work / "hot.duckdb", work / "archive", work / "archive.key"
    try:
        started = time.perf_counter()
        generate(store, args.events, args.days)
        hot_bytes = store.stat().st_size
        took = time.perf_counter() - started
        print(f"generated {args.events:,} events over {args.days} days in {took:.1f} s; "
              f"hot store {hot_bytes / 1e6:,.1f} MB")  # fmt: skip
        keys.keygen(key)
        retention = Retention(archive=ArchiveSettings(path=folder, key_file=key))
        with DuckDBStore(store) as s:
            hot_review, hot_events = review_seconds(s)
            started = time.perf_counter()
            run = run_archive(retention, "duckdb", s, before=date(2026, 1, 1))
            archive_s = time.perf_counter() - started
        assert run.events == args.events, (run.events, args.events)  # noqa: S101
        files = layout.event_files(folder, None, None)
        parquet_bytes = sum(f.stat().st_size for f in files)
        started = time.perf_counter()
        checked = verify(folder, keys.load_public(key.with_name(key.name + ".pub")))
        verify_s = time.perf_counter() - started
        assert not checked.problems, checked.problems[:5]  # noqa: S101
        with DuckDBStore(store, read_only=True, archive=folder) as s:
            cold_review, cold_events = review_seconds(s)
        assert cold_events == hot_events, (cold_events, hot_events)  # noqa: S101
        eps = args.events / archive_s
        gbps = checked.bytes / verify_s / 1e9
        ratio = parquet_bytes / hot_bytes
        slower = cold_review / hot_review
        rows = [
            ("archive", f"{archive_s:.2f} s, {eps:,.0f} events/s ({run.days} days, "
             f"{run.files} files)", eps >= GOAL_EPS, f">= {GOAL_EPS:,}/s"),
            ("verify", f"{verify_s:.2f} s, {gbps:.2f} GB/s ({checked.files} files, "
             f"{checked.bytes / 1e6:,.1f} MB)", gbps >= GOAL_GBPS, f">= {GOAL_GBPS} GB/s"),
            ("size", f"{parquet_bytes / 1e6:,.1f} MB Parquet vs {hot_bytes / 1e6:,.1f} MB hot "
             f"= 1/{1 / ratio:.1f}", ratio <= GOAL_RATIO, "<= 1/5"),
            ("review reads", f"quarter hot {hot_review * 1000:.0f} ms, archived "
             f"{cold_review * 1000:.0f} ms = {slower:.2f}x", slower <= GOAL_REVIEW, "<= 2x"),
        ]  # fmt: skip
        for name, figure, met, goal in rows:
            print(f"{name:13} {figure}  goal {goal}: {'met' if met else 'NOT met'}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
