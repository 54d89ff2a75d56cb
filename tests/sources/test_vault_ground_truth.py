"""A real Vault 1.21.4 audit log against its ground truth.

`tests/fixtures/vault/vault-1.21.4-dev/` holds the file audit device's log of a real Vault
server (dev mode) and `ground-truth.tsv`, one row per call the harness made: who made it,
the secret, the action and the expected outcome. Every call carried the audited request
header `x-gt-op`; the parser keeps no headers, so the test reads the log itself to map
`request.id` -> op and joins the stored events (through the real ingest path, into DuckDB)
to the table on that.

The table speaks its own vocabulary (`read-metadata`, `destroy`, `token-anon`, ...):
`ACTIONS`, `SECRETS`, `IDENTITIES`, `OUTCOMES` and `CREDENTIALS` translate it into
secretwatch's, following README "The record" and the parser's documented rules.
Where what secretwatch stores for a call differs from the row for another reason (the log
entry cannot say what the table says, or the table contradicts the log), `DIFFERENCES`
names the op, what secretwatch stores and why. Nothing else may differ.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.ingest import Ingestor, IngestSummary
from pipeline.record import CONTROL_NOTE, PROVISIONAL_NOTE, TAMPER_NOTE
from pipeline.sources import vault
from pipeline.sources.documents import sniff
from pipeline.sources.formats import recognize_format
from pipeline.store.duckdb import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "vault" / "vault-1.21.4-dev"
LOG = FIXTURE / "audit.log"  # 228 lines, 116 requests
PREFIXED = FIXTURE / "audit-prefix.log"  # a second server, audit device `prefix="vault-audit: "`
TABLE = FIXTURE / "ground-truth.tsv"
PREFIX = b"vault-audit: "
NONE = "-"  # the table's "no secret"

# `vault kv ...` asks where the path is mounted before each call; that lookup carries the
# op's header too. It is `sys/*`, so `other` with no secret (README), whoever asks.
PREFLIGHT = "sys/internal/ui/mounts/"

# The table's action words -> secretwatch's actions (README "The record": read, list,
# write, delete, rotate, auth, other), with the ops that use them.
ACTIONS = {
    "read-metadata": "list",  # op 6; README: "metadata reads are `list`"
    "read-version": "read",  # op 70: `secret/data/x` read with `version=1`
    "read-subkeys": "read",  # op 69; subkeys reads are reads (test_vault.py's table)
    "undelete": "write",  # op 10: a version written back
    "destroy": "delete",  # op 12
    "encrypt": "write",  # ops 40, 47, 52: transit encrypt uses the key without revealing it
    "decrypt": "read",  # op 53: answers plaintext, a read (as KMS Decrypt is for CloudTrail)
}
# The table's secret names -> secretwatch's: one secret per transit key, whatever the call
# (`vault._transit`), so encrypt and decrypt of key `orders` are the key's uses and reads.
SECRETS = {
    "transit/encrypt/orders": "transit/keys/orders",  # ops 40, 47, 52
    "transit/decrypt/orders": "transit/keys/orders",  # op 53
}
# The table's identity labels -> secretwatch's identities.
IDENTITIES = {
    # ops 59, 60: a token created with no display name (Vault logs `token`, no entity, no
    # metadata) is told apart from every other such token by its accessor's HMAC, stable
    # per token: `token:` and its first 12 hex digits (the log's `auth.accessor`).
    "token-anon": "token:7975f339b804",
}
# The table's outcome words -> the outcome secretwatch stores. Failed logins (ops 32, 49:
# "invalid credentials") are refused credentials: denied, as password guessing must count;
# op 63 (alice reads a path her policy does not grant) is Vault's "permission denied".
OUTCOMES = {"error-or-denied": "denied", "denied-or-error": "denied"}
# Issuing credentials is reading a secret (as dynamic `creds/` are): an AppRole's role-id
# read and secret-id generation read the role, `auth/approle/role/<name>`; the table files
# them under `auth` with no secret. op -> (secret, action).
CREDENTIALS = {
    27: ("auth/approle/role/orders-api", "read"),  # read role-id
    28: ("auth/approle/role/orders-api", "read"),  # generate secret-id
}
# Control-plane calls (`pipeline.sources.control_plane`): what changes who can read secrets,
# or what the audit log records, is action `control` naming what changed; the table files
# them under `other` with no secret. op -> (secret, action).
CONTROL = {
    1: ("sys/config/auditing/request-headers/x-gt-op", "control"),  # audited header set
    20: ("sys/policies/acl/orders-read", "control"),  # policy write
    21: ("sys/policies/acl/billing-read", "control"),
    14: ("sys/mounts/kv1", "control"),  # a secrets engine enabled
    22: ("sys/auth/userpass", "control"),  # auth enable
    25: ("sys/auth/approle", "control"),
    29: ("sys/mounts/transit", "control"),
}

# op -> {field: what secretwatch stores}, where that differs from the row (after the
# translations above) because the log cannot say what the table says. Each says why.
DIFFERENCES: dict[int, dict[str, str | None]] = {
    # op 64: the bogus token is refused at the CLI's mount lookup
    # (sys/internal/ui/mounts/secret/apps/orders/db), so the KV read is never sent. The one
    # entry is that `sys/*` lookup: README's `other`, no secret (still denied, still unknown).
    64: {"secret": None, "action": "other"},
    # op 66: the table's "success" contradicts its own cmd_rc 2 and the log: Vault answered
    # "wrapping token is not valid or does not exist" in the request entry (there is no
    # response entry). The caller (its auth block is the token accessor alone) is root, by
    # that accessor, seen on root's earlier calls.
    66: {"outcome": "error"},
}


@dataclass(frozen=True)
class Row:
    op: int
    identity: str
    secret: str | None
    action: str
    outcome: str
    description: str


def _table() -> list[Row]:
    with TABLE.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    out = []
    for r in rows:
        op = int(r["op"])
        secret = None if r["secret"] == NONE else SECRETS.get(r["secret"], r["secret"])
        action = ACTIONS.get(r["action"], r["action"])
        secret, action = CREDENTIALS.get(op, (secret, action))
        secret, action = CONTROL.get(op, (secret, action))
        row = Row(
            op,
            IDENTITIES.get(r["identity"], r["identity"]),
            secret,
            action,
            OUTCOMES.get(r["expected"], r["expected"]),
            r["description"],
        )
        diff = DIFFERENCES.get(op, {})
        out.append(
            Row(
                op,
                str(diff.get("identity", row.identity)),
                diff.get("secret", row.secret),
                str(diff.get("action", row.action)),
                str(diff.get("outcome", row.outcome)),
                row.description,
            )
        )
    return out


ROWS = _table()


def _calls(path: Path) -> dict[str, tuple[int | None, str]]:
    """request.id -> (x-gt-op, request.path), read from the log itself."""
    calls: dict[str, tuple[int | None, str]] = {}
    for line in path.read_bytes().splitlines():
        entry = json.loads(line[line.index(b"{") :])
        request = entry["request"]
        header = (request.get("headers") or {}).get("x-gt-op")
        if header is not None:
            assert isinstance(header, list) and len(header) == 1, header  # ["12"]
        calls[request["id"]] = (int(header[0]) if header else None, request["path"])
    return calls


CALLS = _calls(LOG)


@dataclass
class Ingested:
    summary: IngestSummary
    events: dict[str, dict]  # event_id -> stored event
    dead: int


def ingest(path: Path, folder: Path) -> Ingested:
    store = DuckDBStore(folder / "store.duckdb")
    store.open()
    try:
        summary = Ingestor(store).ingest([str(path)])
        frame = store.events()
        events = {}
        for record in frame.astype(object).where(frame.notna(), None).to_dict("records"):
            events[record["event_id"]] = record
        return Ingested(summary, events, len(store.dead_letters()))
    finally:
        store.close()


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    return ingest(LOG, tmp_path_factory.mktemp("gt"))


def _of_op(stored: Ingested, op: int) -> tuple[list[dict], list[dict]]:
    """The op's events: (the call itself, the CLI's mount lookups before it)."""
    events = [e for e in stored.events.values() if CALLS[e["event_id"]][0] == op]
    lookups = [e for e in events if CALLS[e["event_id"]][1].startswith(PREFLIGHT)]
    calls = [e for e in events if e not in lookups] or lookups  # op 64: the lookup only
    return calls, [e for e in lookups if e not in calls]


def test_accounting_is_exact(stored: Ingested) -> None:
    s = stored.summary
    assert s.formats == {"vault": 1}
    assert s.records == 228  # every line is one record
    assert s.records == s.consumed + s.skipped_records + s.dead_records
    # The one skipped record: the file device's `sys/audit/test` probe (no client call).
    assert (s.skipped_records, s.dead_records, s.dead_lettered, stored.dead) == (1, 0, 0, 0)
    assert dict(s.skipped) == {vault.PROBE_REASON: 1}
    assert s.events == s.stored == len(stored.events) == len(CALLS) - 1 == 115
    assert s.quarantined == 0


def test_every_event_is_a_call_of_the_log(stored: Ingested) -> None:
    """Event ids are the request ids: every call but the audit device's probe."""
    (probe,) = set(CALLS) - set(stored.events)
    assert CALLS[probe] == (None, "sys/audit/test")
    assert set(stored.events) < set(CALLS)


def test_no_event_stays_provisional(stored: Ingested) -> None:
    """The two requests Vault never answered (ops 66 and 74, failed unwraps) hold Vault's
    verdict in the request entry: final events, never provisional ones."""
    notes = {e["note"] for e in stored.events.values()}
    assert PROVISIONAL_NOTE not in notes
    marks = (CONTROL_NOTE, TAMPER_NOTE)  # control-plane calls, not lone requests
    noted = {
        i: e for i, e in stored.events.items() if e["note"] and not e["note"].startswith(marks)
    }
    lone = sorted(CALLS[i][0] or 0 for i in noted)
    notes_of = {CALLS[i][0]: e["note"] for i, e in noted.items()}
    assert notes_of[66] == notes_of[74] == vault.ANSWERED_IN_REQUEST_NOTE
    assert {notes_of[op] for op in (32,)} == {vault.LOGIN_NOTE}  # the wrong password
    assert notes_of[49] == vault.ROLE_NOTE  # the bad secret_id: the role by its role_id
    assert lone == [32, 49, 66, 74]


def test_every_op_has_its_call(stored: Ingested) -> None:
    ops = {CALLS[i][0] for i in stored.events}
    assert {row.op for row in ROWS} <= ops
    assert ops - {row.op for row in ROWS} <= {None}


def test_events_without_an_op_are_the_unaudited_setup(stored: Ingested) -> None:
    """Only what happened before the `x-gt-op` header was audited has no op (the table's
    op 1 is "audit header x-gt-op (again, now audited)"): the audit devices being enabled,
    the header being configured, and the `sys/audit/test` probe Vault writes to the new
    file device."""
    first = min(e["ts"] for i, e in stored.events.items() if CALLS[i][0] is not None)
    loose = [e for i, e in stored.events.items() if CALLS[i][0] is None]
    assert sorted(CALLS[e["event_id"]][1] for e in loose) == [
        "sys/audit/file",
        "sys/audit/file2",
        "sys/audit/file4",
        "sys/audit/socket",
        "sys/config/auditing/request-headers/x-gt-op",
    ]  # not the probe (`sys/audit/test`, a request entry only, no auth): skipped
    # Enabling audit devices and setting an audited header are control-plane calls.
    assert all(e["ts"] < first and e["action"] == "control" for e in loose)
    assert all(e["secret"] == CALLS[e["event_id"]][1] for e in loose)
    assert {e["identity"] for e in loose} == {"root"}


@pytest.mark.parametrize("row", ROWS, ids=[f"op{r.op}: {r.description}" for r in ROWS])
def test_ground_truth_row(stored: Ingested, row: Row) -> None:
    calls, lookups = _of_op(stored, row.op)
    where = f"op {row.op} ({row.description})"
    assert len(calls) == 1, f"{where}: {len(calls)} events for the call"
    (event,) = calls
    got = (event["identity"], event["secret"], event["action"], event["outcome"])
    want = (row.identity, row.secret, row.action, row.outcome)
    assert got == want, f"{where}: stored {got}, table {want}"
    assert event["note"] != PROVISIONAL_NOTE, f"{where}: still provisional"
    for lookup in lookups:  # `vault kv`'s mount lookup: housekeeping by the same caller
        got = (lookup["identity"], lookup["secret"], lookup["action"], lookup["outcome"])
        assert got == (row.identity, None, "other", "success"), f"{where}: lookup {got}"


# -- the audit device's `prefix` option -----------------------------------------------------
# audit-prefix.log is a second server's log, every line `vault-audit: {...}`: the probe, the
# file device being enabled, then `vault kv put` and `vault kv get` of secret/apps/orders/db
# (each after its mount lookup) and a read of nonexistent/x, as root, with no `x-gt-op`.


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    return ingest(PREFIXED, tmp_path_factory.mktemp("prefixed"))


def _shape(event: dict) -> tuple:
    keys = ("identity", "identity_kind", "secret", "action", "operation", "outcome", "note")
    return tuple(event[k] for k in keys)


def test_prefixed_log_reads_as_the_same_log_without_prefix(
    prefixed: Ingested, tmp_path: Path
) -> None:
    lines = PREFIXED.read_bytes().splitlines(keepends=True)
    assert len(lines) == 12 and all(line.startswith(PREFIX + b"{") for line in lines)
    plain = tmp_path / "audit-plain.log"
    plain.write_bytes(b"".join(line[len(PREFIX) :] for line in lines))
    s = prefixed.summary
    assert s.formats == {"vault": 1}
    assert (s.records, s.consumed, s.skipped_records, s.dead_records) == (12, 11, 1, 0)
    assert (s.dead_lettered, prefixed.dead) == (0, 0)
    assert len(prefixed.events) == 6  # the probe is skipped
    assert prefixed.events == ingest(plain, tmp_path).events  # every field, ids and times


def test_prefixed_log_holds_the_calls_as_the_plain_log_stores_them(
    prefixed: Ingested, stored: Ingested
) -> None:
    """The same calls on the other server are stored as audit.log's ops 2, 5 and 62 are."""
    got = [_shape(e) for e in sorted(prefixed.events.values(), key=lambda e: e["ts"])]
    ours = sorted(stored.events.values(), key=lambda e: e["ts"])
    put, get, missing = (
        [_shape(e) for e in ours if CALLS[e["event_id"]][0] == op] for op in (2, 5, 62)
    )
    assert got[:1] == [
        (
            "root",
            "root",
            "sys/audit/file",
            "control",
            "audit-enable",
            "success",
            TAMPER_NOTE + "enabled the Vault audit device file/",
        ),  # enabling the device: a control-plane call (audit itself)
    ]  # (the probe before it is skipped)
    assert got[1:] == [*put, *get, ("root", "root", "nonexistent/x", *missing[0][3:])]


def test_prefixed_lines_sniffed_and_recognised_as_vault() -> None:
    head = PREFIXED.read_bytes()
    assert sniff(head, PREFIXED.name, True) == "lines"  # streamed, not read whole
    records = [(line, n, 0) for n, line in enumerate(head.splitlines(), 1)]
    assert recognize_format(records) == "vault"
    # Only formats whose parser skips a prefix are recognised behind one.
    k8s = b'log: {"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"get"}'
    assert recognize_format([(k8s, 1, 0)]) is None
    assert recognize_format([(k8s[5:], 1, 0)]) == "k8s"


def test_broken_prefixed_lines_are_dead_letters_naming_the_line(tmp_path: Path) -> None:
    lines = PREFIXED.read_bytes().splitlines(keepends=True)
    cut = PREFIX + lines[4][len(PREFIX) : 60] + b"\n"  # a prefixed entry cut short
    stray = b"vault-audit: not json at all\n"
    data = [*lines[:4], cut, *lines[4:8], stray, *lines[8:]]
    path = tmp_path / "audit-broken.log"
    path.write_bytes(b"".join(data))
    store = DuckDBStore(tmp_path / "store.duckdb")
    store.open()
    try:
        summary = Ingestor(store).ingest([str(path)])
        dead = store.dead_letters().sort_values("line").to_dict("records")
        events = store.count()
    finally:
        store.close()
    assert (summary.records, summary.consumed, summary.dead_records) == (14, 11, 2)
    assert events == 6
    offsets = [sum(len(x) for x in data[:i]) for i in (4, 9)]
    assert [(d["line"], d["offset"]) for d in dead] == [(5, offsets[0]), (10, offsets[1])]
    assert all(bytes(d["raw"]).startswith(PREFIX) for d in dead)  # the whole line, as read
    assert dead[0]["reason"].startswith("not valid JSON")
