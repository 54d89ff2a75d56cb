"""Access-review benchmark: `secretwatch report` on a quarter of 10,000,000 events.

    python tests/bench/bench_report.py [--events 10000000] [--identities 500]
        [--secrets 5000] [--seed 3] [--repeat 2]

A quarter (2026Q3) of events over 500 identities (400 Vault services in 50 teams, 100 AWS
roles) and 5,000 secrets (4,000 Vault KV, 1,000 Secrets Manager) is written straight into
a DuckDB store as Arrow batches (no log parsing: this measures the report, not ingest)
and cached under ~/.cache/secretwatch-bench/. Each identity reads its own few dozen
secrets with skewed volumes, in a daily rhythm; a tenth of the traffic is logins, 2% lists,
0.5% denials, and rotations write new values now and then. Vault ACL policies (one per
service, a tenth of them over-broad) and an inventory (identities, AWS grants) come with
it, so the report resolves 500 identities' grants against 5,000 secrets too.

The report runs as a child process, `secretwatch report --quarter 2026Q3`, with its wall
time and peak resident memory (the child's ru_maxrss, which counts DuckDB's memory) taken
from the kernel. Goals: under 60 s and under 2 GB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.store.duckdb import DuckDBStore

CACHE = Path(
    os.environ.get("SECRETWATCH_BENCH_CACHE", Path.home() / ".cache" / "secretwatch-bench")
)
REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 7, 1, tzinfo=UTC)
END = datetime(2026, 10, 1, tzinfo=UTC)
ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:"
ROLE = "arn:aws:iam::111122223333:role/"
TEAMS = 50
GOAL_SECONDS, GOAL_BYTES = 60.0, 2 << 30


def world(identities: int, secrets: int) -> tuple[list[str], list[str], list[list[int]]]:
    """Identity names, secret names, and the secrets each identity reads (indices)."""
    vault_ids, aws_ids = identities * 4 // 5, identities - identities * 4 // 5
    vault_secrets, aws_secrets = secrets * 4 // 5, secrets - secrets * 4 // 5
    per_vault = max(1, vault_secrets // vault_ids)
    names = [f"team-{i % TEAMS:02d}/svc-{i // TEAMS:02d}" for i in range(vault_ids)]
    names += [f"{ROLE}team-{i % TEAMS:02d}-task-{i // TEAMS:02d}" for i in range(aws_ids)]
    paths = [f"secret/{names[i // per_vault]}/key-{i % per_vault:02d}"
             for i in range(vault_secrets)]  # fmt: skip
    paths += [f"{ARN}prod/team-{i % TEAMS:02d}/s{i // TEAMS:03d}" for i in range(aws_secrets)]
    rng = np.random.default_rng(11)
    reads: list[list[int]] = []
    for i in range(vault_ids):
        own = list(range(i * per_vault, min((i + 1) * per_vault, vault_secrets)))
        shared = rng.choice(vault_secrets, size=3, replace=False).tolist()
        reads.append(own + shared)
    for j in range(aws_ids):
        team = [vault_secrets + k for k in range(j % TEAMS, aws_secrets, TEAMS)]
        reads.append(team[: 2 + j % 8])
    return names, paths, reads


def generate(path: Path, events: int, identities: int, secrets: int, seed: int) -> None:
    """The quarter's events, straight into a new store, 1,000,000 rows per batch."""
    names, paths, reads = world(identities, secrets)
    rng = np.random.default_rng(seed)
    weights = rng.pareto(1.2, len(names)) + 0.05
    weights /= weights.sum()
    starts = np.cumsum([0] + [len(r) for r in reads[:-1]])
    lengths = np.array([len(r) for r in reads])
    flat = np.array([s for r in reads for s in r])
    vault_ids = identities * 4 // 5
    span_us = int((END - START).total_seconds()) * 1_000_000
    start_us = int(START.timestamp()) * 1_000_000
    id_dict = pa.array(names)
    secret_dict = pa.array(paths)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with DuckDBStore(tmp) as store:
        done = 0
        while done < events:
            n = min(1_000_000, events - done)
            who = rng.choice(len(names), size=n, p=weights)
            pick = (rng.random(n) * lengths[who]).astype(np.int64)
            what = flat[starts[who] + pick]
            day = rng.integers(0, span_us // 86_400_000_000, n)
            hour = np.clip(rng.normal(13, 4, n), 0, 23.999)
            ts = start_us + day * 86_400_000_000 + (hour * 3_600_000_000).astype(np.int64)
            roll = rng.random(n)
            auth, lists, writes, denied = roll < 0.10, roll < 0.12, roll < 0.1205, roll > 0.995
            is_vault = who < vault_ids
            action = np.where(auth, "auth", np.where(lists, "list", np.where(writes, "write",
                              "read")))  # fmt: skip
            operation = np.where(
                is_vault,
                np.where(action == "write", "update", np.where(action == "auth", "update", action)),
                np.where(
                    action == "write",
                    "PutSecretValue",
                    np.where(action == "list", "DescribeSecret", "GetSecretValue"),
                ),
            )
            secret = pa.DictionaryArray.from_arrays(
                pa.array(what.astype(np.int32), mask=auth), secret_dict
            ).cast(pa.string())
            batch = pa.table({  # noqa: F841 - DuckDB reads it by name below
                "event_id": pc.cast(pa.array(np.arange(done, done + n)), pa.string()),
                "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "source": pa.array(np.where(is_vault, "vault", "aws")),
                "backend": pa.array(np.where(is_vault, "vault", "111122223333/eu-west-1")),
                "identity": pa.DictionaryArray.from_arrays(
                    pa.array(who.astype(np.int32)), id_dict).cast(pa.string()),
                "identity_kind": pa.array(np.full(n, "service")),
                "secret": secret,
                "action": pa.array(action),
                "operation": pa.array(operation),
                "outcome": pa.array(np.where(denied, "denied", "success")),
                "source_ip": pa.nulls(n, pa.string()), "user_agent": pa.nulls(n, pa.string()),
                "request_id": pa.nulls(n, pa.string()), "error": pa.nulls(n, pa.string()),
                "note": pa.nulls(n, pa.string()),
            })  # fmt: skip
            store.con.execute("INSERT INTO events BY NAME SELECT * FROM batch")
            done += n
            print(f"  generated {done:,} events", end="\r", flush=True)
        print()
    tmp.rename(path)


def evidence(folder: Path, identities: int, secrets: int) -> tuple[Path, Path]:
    """One Vault policy per service (every tenth grants its whole team), an inventory
    mapping services to policies and AWS roles to their team's secrets."""
    names, _, _ = world(identities, secrets)
    policies = folder / "policies"
    policies.mkdir(parents=True, exist_ok=True)
    lines = ["identities:"]
    for i, name in enumerate(names[: identities * 4 // 5]):
        scope = name.split("/")[0] + "/*" if i % 10 == 0 else name + "/*"
        policy = name.replace("/", "-")
        (policies / f"{policy}.hcl").write_text(
            f'path "secret/data/{scope}" {{\n  capabilities = ["read"]\n}}\n'
        )
        lines.append(f"  - {{identity: {name}, policies: [{policy}]}}")
    lines.append("grants:")
    for name in names[identities * 4 // 5 :]:
        team = name.removeprefix(ROLE).split("-task")[0]
        pattern = f"*:secret:prod/{team}/*"
        lines.append(f'  - {{identity: "{name}", source: aws, secrets: ["{pattern}"]}}')
    (folder / "inventory.yaml").write_text("\n".join(lines) + "\n")
    return folder / "inventory.yaml", policies


def run_report(store: Path, inventory: Path, policies: Path, out: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS bytes of one `secretwatch report` child process."""
    shutil.rmtree(out, ignore_errors=True)
    command = [str(REPO / ".venv" / "bin" / "secretwatch"), "report", "--quarter", "2026Q3",
               "--store", str(store), "--out", str(out), "--inventory", str(inventory),
               "--policies", str(policies),
               "--owners", str(REPO / "config" / "owners.yaml")]  # fmt: skip
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - began
    output = child.stdout.read().decode() if child.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"report failed:\n{output}")
    return elapsed, usage.ru_maxrss * 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--identities", type=int, default=500)
    parser.add_argument("--secrets", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    store = CACHE / f"report-{args.events}-{args.identities}-{args.secrets}-{args.seed}.duckdb"
    if not store.exists():
        began = time.perf_counter()
        print(f"generating {args.events:,} events into {store}")
        generate(store, args.events, args.identities, args.secrets, args.seed)
        print(f"  {time.perf_counter() - began:.0f} s, {store.stat().st_size / 1e9:.2f} GB")
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        inventory, policies = evidence(Path(tmp), args.identities, args.secrets)
        runs = []
        for i in range(args.repeat):
            elapsed, peak = run_report(store, inventory, policies, Path(tmp) / "out")
            runs.append((elapsed, peak))
            print(f"run {i + 1}: {elapsed:.1f} s, peak RSS {peak / 2**20:,.0f} MiB")
        files = sorted((Path(tmp) / "out").rglob("*"))
        size = sum(p.stat().st_size for p in files if p.is_file())
        print(f"outputs: {sum(p.is_file() for p in files)} files, {size / 1e6:.1f} MB")
    best = min(r[0] for r in runs)
    peak = max(r[1] for r in runs)
    ok_time, ok_mem = best < GOAL_SECONDS, peak < GOAL_BYTES
    print(f"{args.events:,} events, {args.identities} identities, {args.secrets} secrets: "
          f"best {best:.1f} s (goal < {GOAL_SECONDS:.0f} s: {'met' if ok_time else 'NOT met'}), "
          f"peak RSS {peak / 2**20:,.0f} MiB (goal < 2,048 MiB: "
          f"{'met' if ok_mem else 'NOT met'})")  # fmt: skip
    return 0 if ok_time and ok_mem else 1


if __name__ == "__main__":
    sys.exit(main())
