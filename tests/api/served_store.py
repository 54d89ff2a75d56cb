"""The API tests' store and server: a store with events of every source, dead letters,
baselines and alerts, and the query routes served over real HTTP while this process holds
the store read-write, as `secretwatch serve` does. (A module of its own, not conftest.py:
test modules import from it, and several conftest modules share one name.)"""

from __future__ import annotations

import hashlib
import random
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from starlette.applications import Starlette
from typer.testing import CliRunner

from pipeline.api.queries import query_routes
from pipeline.cli import app
from pipeline.collectors.http import HttpServer
from pipeline.store.base import Store
from pipeline.store.duckdb import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
START = datetime(2026, 3, 2, tzinfo=UTC)
CUT_OFF = START + timedelta(days=14)
SERVICE = {
    "display_name": "kubernetes-shop-orders-api",
    "policies": ["default", "orders"],
    "metadata": {"role": "orders", "service_account_name": "orders-api",
                 "service_account_namespace": "shop"},
    "entity_id": "1f3b0c2a-0000-4000-8000-000000000001",
    "token_type": "service",
}  # fmt: skip
ROOT = {"display_name": "root", "policies": ["root"], "token_type": "service"}


def _vault_call(rng: random.Random, when: datetime, auth: dict, path: str, ip: str) -> bytes:
    """A read as Vault's file audit device logs it: request and response lines."""
    token = "hmac-sha256:" + hashlib.sha256(rng.randbytes(16)).hexdigest()
    request = {"id": str(uuid.UUID(int=rng.getrandbits(128))), "operation": "read",
               "mount_type": "kv", "mount_point": "secret/", "client_token": token,
               "path": path, "remote_address": ip}  # fmt: skip
    full_auth = {"client_token": token, "accessor": token[::-1], **auth}
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    head = {"time": stamp, "type": "request", "auth": full_auth, "request": request}
    tail = {**head, "type": "response", "response": {"data": {"password": "hmac-sha256:ab"}}}
    return orjson.dumps(head) + b"\n" + orjson.dumps(tail) + b"\n"


def _history(path: Path) -> None:
    """Two weeks of shop/orders-api reading its secrets every hour, then root reading the
    payments database three hours after the cut-off."""
    rng = random.Random(7)
    lines = []
    for hour in range(15 * 24):
        at = START + timedelta(hours=hour, seconds=rng.randrange(3600))
        secret = rng.choice(["db", "stripe"])
        lines.append(_vault_call(rng, at, SERVICE, f"secret/data/shop/orders/{secret}", "10.0.0.7"))
    lines.append(_vault_call(rng, CUT_OFF + timedelta(hours=3), ROOT, "secret/data/payments/db",
                             "203.0.113.9"))  # fmt: skip
    path.write_bytes(b"".join(lines))


def secretwatch(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def build_store(folder: Path) -> Path:
    """Ingested (every fixture source but the large CloudTrail export; the Azure fixture's
    notes file makes dead letters), trained up to the cut-off, detected: alerts in the
    outbox."""
    logs = folder / "logs"
    for name in ("vault", "k8s_audit", "gcp_audit", "azure_keyvault"):
        shutil.copytree(FIXTURES / name, logs / name)
    aws = FIXTURES / "aws_cloudtrail"
    for name in ("datadog__stratus-red-team", "panther-labs__panther-analysis"):
        shutil.copytree(aws / name, logs / "aws" / name)
    (logs / "history").mkdir()
    _history(logs / "history" / "vault.log")
    store = folder / "template.duckdb"
    secretwatch("ingest", str(logs), "--store", str(store))
    secretwatch("train", "--until", CUT_OFF.isoformat(), "--store", str(store))
    secretwatch("detect", "--store", str(store))
    return store


def duckdb_reader(path: Path) -> Callable[[], Store]:
    """A second store on the writer's file, opened in this process (as the service does)."""

    def open_reader() -> Store:
        store = DuckDBStore(path)
        store.open()
        return store

    return open_reader


@contextmanager
def served(
    path: Path, token: str | None, open_reader: Callable[[], Store] | None = None
) -> Iterator[tuple[str, DuckDBStore]]:
    """The store at `path` held read-write here (the writer, yielded) and the query routes
    on a free loopback port (their URL, yielded)."""
    writer = DuckDBStore(path)
    writer.open()
    try:
        routes = query_routes(open_reader or duckdb_reader(path), token)
        server = HttpServer("api", "127.0.0.1", 0, Starlette(routes=routes))
        server.start()
        try:
            yield f"http://127.0.0.1:{server.port}", writer
        finally:
            server.stop()
    finally:
        writer.close()
