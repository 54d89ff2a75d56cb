"""Vault / OpenBao audit device parser: identities, canonical secrets, actions, outcomes and
request/response pairing, on hand-written fixtures and on the real read-only samples."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.record import PROVISIONAL_NOTE, EventRow, to_event, to_micros
from pipeline.sources import SOURCES, new_parser, recognize
from pipeline.sources import vault as vault_mod
from pipeline.sources.base import FeedResult, Record
from pipeline.sources.framing import file_records
from pipeline.sources.vault import VaultParser, secret_and_action

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "vault"
JSONL = FIXTURES / "audit.jsonl"
PRETTY = FIXTURES / "audit_pretty.json"


def _samples_dir() -> Path | None:
    for root in (REPO.parent / "shared" / "samples", Path("/work/shared/samples")):
        if (root / "vault").is_dir():
            return root / "vault"
    return None


SAMPLES = _samples_dir()
ELASTIC = "elastic__integrations__test-audit.lines-1-2-5-6-9.log"
TALLEN = "tallen-hashicorp__vault-tfc-jwt-dynamic-example__docs_audit.json"
needs_samples = pytest.mark.skipif(SAMPLES is None, reason="shared/samples/vault not present")

DENIED = "1 error occurred:\n\t* permission denied\n\n"


def _id(n: int) -> str:
    return f"11111111-1111-4111-8111-{n:012d}"


def records_of(path: Path) -> list[Record]:
    return [r for chunk in file_records(path) for r in chunk]


def run(records: list[Record], backend: str | None = None, file: str = "audit.log") -> FeedResult:
    parser = VaultParser(backend)
    result = parser.feed(records, file)
    result.extend(parser.flush(file))
    return result


def by_id(rows: list[EventRow]) -> dict[str, EventRow]:
    out = {r.event_id: r for r in rows}
    assert len(out) == len(rows), "event ids must be unique within a file"
    return out


@pytest.fixture(scope="module")
def fixture_rows() -> dict[str, EventRow]:
    records = records_of(JSONL)
    result = run(records)
    assert result.dead == []
    return by_id(result.rows)


def _line(entry: dict) -> bytes:
    return json.dumps(entry, separators=(",", ":")).encode()


def _entry(
    kind: str,
    rid: str | None,
    time: str,
    path: str = "secret/data/app/db",
    op: str = "read",
    auth: dict | None = None,
    error: str | None = None,
    **request: object,
) -> dict:
    req: dict[str, object] = {"operation": op, "path": path, "mount_type": "kv"}
    if rid is not None:
        req = {"id": rid, **req}
    req.update(request)
    entry: dict[str, object] = {"time": time, "type": kind, "request": req}
    if auth is not None:
        entry["auth"] = auth
    if error is not None:
        entry["error"] = error
    return entry


APPROLE = {"display_name": "approle", "metadata": {"role_name": "billing-worker"}}


def _records(*entries: dict) -> list[Record]:
    out: list[Record] = []
    offset = 0
    for i, entry in enumerate(entries, start=1):
        raw = _line(entry)
        out.append((raw, i, offset))
        offset += len(raw) + 1
    return out


# -- registry and recognition --------------------------------------------------------------


def test_registered_and_recognised() -> None:
    assert SOURCES["vault"].name == "vault"
    assert isinstance(new_parser("vault"), VaultParser)
    assert recognize({"type": "request", "request": {"id": "x"}}) == "vault"
    assert recognize({"type": "response", "request": {}}) == "vault"
    assert not vault_mod.looks_like({"type": "request"})
    assert not vault_mod.looks_like({"type": "event", "request": {}})


# -- the hand-written fixture, end to end --------------------------------------------------


def test_fixture_accounting_and_contract() -> None:
    records = records_of(JSONL)
    assert len(records) == 35
    result = run(records)
    assert result.dead == []
    assert (result.consumed, result.skipped_records, result.dead_records) == (35, 0, 0)
    assert result.accounted == len(records)
    assert len(result.rows) == 18
    for row in result.rows:
        event = to_event(row)  # every row satisfies the AccessEvent contract
        assert event.source == "vault"
        assert event.backend == "vault"


@pytest.mark.parametrize(
    ("n", "identity", "kind"),
    [
        (1, "shop/orders-api", "service"),  # kubernetes: namespace/service account
        (2, "billing-worker", "service"),  # approle: role_name, not display name "approle"
        (3, "alice", "human"),  # userpass
        (4, "bob", "human"),  # ldap
        (5, "carol@example.com", "human"),  # oidc: email over the opaque display name
        (6, "root", "root"),  # root token
        (16, "billing-worker", "service"),  # a login: the response's auth names the role
        (14, "entity:9d9d9d9d-0000-4000-8000-00000000beef", "unknown"),  # only an entity
    ],
)
def test_identity_per_auth_method(
    fixture_rows: dict[str, EventRow], n: int, identity: str, kind: str
) -> None:
    row = fixture_rows[_id(n)]
    assert (row.identity, row.identity_kind) == (identity, kind)


@pytest.mark.parametrize(
    ("auth", "identity", "kind"),
    [
        (None, "unknown", "unknown"),
        ({"display_name": "root", "policies": ["root"]}, "root", "root"),
        # root wins even over service-account metadata
        (
            {"policies": ["default", "root"], "metadata": {"service_account_name": "x"}},
            "root",
            "root",
        ),
        ({"display_name": "x", "token_policies": ["root"]}, "root", "root"),
        (
            {"display_name": "kubernetes-a-b", "metadata": {"service_account_name": "b"}},
            "default/b",
            "service",
        ),
        (
            {"display_name": "github-octocat", "metadata": {"username": "octocat"}},
            "octocat",
            "human",
        ),
        ({"display_name": "okta-dave@example.com", "metadata": {}}, "dave@example.com", "human"),
        ({"display_name": "jwt-x", "metadata": {"role": "tfc-role"}}, "tfc-role", "service"),
        (
            {"display_name": "token-375f9cb3-4355-42c7-eab5-029f8a310ca7-runner"},
            "runner",
            "unknown",
        ),
        ({"display_name": "token"}, "token", "unknown"),
        ({}, "unknown", "unknown"),
    ],
)
def test_identity_rules_inline(auth: dict | None, identity: str, kind: str) -> None:
    entry = _entry("response", "id-1", "2026-05-01T00:00:00Z", auth=auth)
    (row,) = run(_records(entry)).rows
    assert (row.identity, row.identity_kind) == (identity, kind)


@pytest.mark.parametrize(
    ("n", "secret", "action", "operation"),
    [
        (1, "secret/apps/orders/db", "read", "read"),  # secret/data/x -> secret/x
        (2, "secret/apps/", "list", "list"),  # list on metadata keeps the folder
        (3, "secret/apps/orders/db", "list", "read"),  # metadata read reveals versions only
        (4, "secret/apps/legacy", "delete", "delete"),
        (5, "secret/apps/orders/api-key", "write", "update"),
        (14, "secret/apps/old", "delete", "update"),  # destroy
        (15, "team-a/secret/cfg", "read", "read"),  # namespace prefixes the secret
        (10, "database/creds/readonly", "read", "read"),  # dynamic credentials are reads
        (17, "database/rotate-root/orders-db", "rotate", "update"),
        (6, "sys/mounts/kv2", "control", "mount-enable"),  # a secrets engine enabled
        (7, None, "auth", "read"),  # auth/token/lookup-self
        (8, None, "auth", "update"),  # auth/token/renew-self
        (9, None, "auth", "update"),  # sys/leases/renew
        (16, None, "auth", "update"),  # auth/approle/login
    ],
)
def test_secret_and_action_in_fixture(
    fixture_rows: dict[str, EventRow], n: int, secret: str | None, action: str, operation: str
) -> None:
    row = fixture_rows[_id(n)]
    assert (row.secret, row.action, row.operation) == (secret, action, operation)


@pytest.mark.parametrize(
    ("path", "op", "mount_type", "mount_point", "expected"),
    [
        ("secret/data/x", "read", "kv", "secret/", ("secret/x", "read")),
        ("secret/metadata/x", "read", "kv", "secret/", ("secret/x", "list")),
        ("secret/metadata/x", "delete", "kv", "secret/", ("secret/x", "delete")),
        ("secret/metadata/apps/", "list", "kv", "secret/", ("secret/apps/", "list")),
        ("secret/data/x", "read", None, None, ("secret/x", "read")),  # older logs: no mount info
        ("secret/metadata/x", "read", None, None, ("secret/x", "list")),
        ("kv2/data/team/app", "update", "kv", "kv2/", ("kv2/team/app", "write")),
        ("secret/data/x", "patch", "kv", "secret/", ("secret/x", "write")),
        ("secret/delete/x", "update", "kv", "secret/", ("secret/x", "delete")),
        ("secret/destroy/x", "update", "kv", "secret/", ("secret/x", "delete")),
        ("secret/undelete/x", "update", "kv", "secret/", ("secret/x", "write")),
        ("secret/subkeys/x", "read", "kv", "secret/", ("secret/x", "read")),
        ("kv/app/db", "read", "kv", "kv/", ("kv/app/db", "read")),  # KV v1: path as is
        (
            "database/creds/readonly",
            "read",
            "database",
            "database/",
            ("database/creds/readonly", "read"),
        ),
        ("aws/sts/deploy", "update", "aws", "aws/", ("aws/sts/deploy", "read")),
        ("pki/issue/web", "update", "pki", "pki/", ("pki/issue/web", "read")),
        (
            "database/rotate-root/db1",
            "update",
            "database",
            "database/",
            ("database/rotate-root/db1", "rotate"),
        ),
        # transit: one secret per key, `<mount>keys/<name>` (ground truth ops 30, 40, 53);
        # using it is a write, answering what it protects (or the key) a read
        ("transit/encrypt/k", "update", "transit", "transit/", ("transit/keys/k", "write")),
        # decrypting answers the plaintext: a read (as KMS Decrypt is); ground truth op 53
        ("transit/decrypt/k", "update", "transit", "transit/", ("transit/keys/k", "read")),
        (
            "transit/datakey/plaintext/k",
            "update",
            "transit",
            "transit/",
            ("transit/keys/k", "read"),
        ),
        ("transit/datakey/wrapped/k", "update", "transit", "transit/", ("transit/keys/k", "write")),
        ("enc/export/encryption-key/k/2", "read", "transit", "enc/", ("enc/keys/k", "read")),
        ("transit/sign/k/sha2-256", "update", "transit", "transit/", ("transit/keys/k", "write")),
        ("transit/keys/k", "create", "transit", "transit/", ("transit/keys/k", "write")),
        ("transit/keys/k/rotate", "update", "transit", "transit/", ("transit/keys/k", "rotate")),
        ("transit/keys/k/config", "update", "transit", "transit/", ("transit/keys/k", "write")),
        ("transit/keys", "list", "transit", "transit/", ("transit/keys", "list")),
        ("transit/random/32", "update", "transit", "transit/", ("transit/random/32", "write")),
        ("transit/decrypt/k", "update", None, None, ("transit/keys/k", "read")),  # older logs
        # AppRole: handing out a role's login credentials reads the role (ops 27, 28)
        (
            "auth/approle/role/orders-api/role-id",
            "read",
            "approle",
            "auth/approle/",
            ("auth/approle/role/orders-api", "read"),
        ),
        (
            "auth/ci/role/deploy/secret-id",
            "update",
            "approle",
            "auth/ci/",
            ("auth/ci/role/deploy", "read"),
        ),
        (
            "auth/ci/role/deploy/secret-id",
            "list",
            "approle",
            "auth/ci/",
            ("auth/ci/role/deploy", "list"),
        ),
        ("auth/ci/role/deploy", "update", "approle", "auth/ci/", (None, "auth")),
        ("auth/ci/role/deploy/secret-id/lookup", "update", "approle", "auth/ci/", (None, "auth")),
        ("auth/ci/login", "update", "approle", "auth/ci/", (None, "auth")),
        ("auth/token/lookup-self", "read", "token", "auth/token/", (None, "auth")),
        ("auth/token/renew-self", "update", "token", "auth/token/", (None, "auth")),
        ("sys/leases/renew", "update", "system", "sys/", (None, "auth")),
        ("sys/capabilities-self", "update", "system", "sys/", (None, "other")),
        ("sys/mounts", "read", "system", "sys/", (None, "other")),
        ("identity/entity/id/x", "read", "identity", "identity/", (None, "other")),
        ("ca/roles/example", "help", "pki", None, (None, "other")),
        ("", "read", None, None, (None, "other")),
    ],
)
def test_secret_and_action_table(
    path: str,
    op: str,
    mount_type: str | None,
    mount_point: str | None,
    expected: tuple[str | None, str],
) -> None:
    assert secret_and_action(path, op, mount_type, mount_point) == expected


def test_kv1_mount_keeps_its_data_folder() -> None:
    """On a mount known to be KV v1, `data/` is a folder like any other (ground truth ops 18
    and 19); unknown mounts keep the KV v2 reading."""
    assert secret_and_action("kv1/data/report", "read", "kv", "kv1/", True) == (
        "kv1/data/report",
        "read",
    )
    assert secret_and_action("kv1/data/report", "read", "kv", "kv1/") == ("kv1/report", "read")


def test_denied_outcome_and_response_wins(fixture_rows: dict[str, EventRow]) -> None:
    row = fixture_rows[_id(11)]
    assert row.outcome == "denied"
    assert row.error is not None and "permission denied" in row.error
    # The event carries the response's time (the request was at 03:18:00.0).
    assert row.ts_us == to_micros("2026-05-01T03:18:07.250000Z")
    assert row.note is None
    assert row.secret == "secret/apps/payments/stripe"  # noqa: S105 - a path, not a password


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (DENIED, "denied"),
        ("1 error occurred:\n\t* Unauthorized\n\n", "denied"),
        ("Forbidden", "denied"),
        ('1 error occurred:\n\t* no handler for route "nope/x"\n\n', "error"),
        ("internal error", "error"),
        ("", "success"),
    ],
)
def test_outcomes(error: str, outcome: str) -> None:
    entry = _entry("response", "id-1", "2026-05-01T00:00:00Z", error=error, auth=APPROLE)
    (row,) = run(_records(entry)).rows
    assert row.outcome == outcome
    if error:  # a quoted value is not stored (issue 14 item 6)
        assert row.error == error.replace('"nope/x"', '"…"')


def test_response_wins_over_request() -> None:
    request = _entry("request", "r-1", "2026-05-01T00:00:00Z", auth=APPROLE)
    response = _entry(
        "response",
        "r-1",
        "2026-05-01T00:00:02Z",
        auth={"display_name": "userpass-alice", "metadata": {"username": "alice"}},
        error=DENIED,
    )
    result = run(_records(request, response))
    (row,) = result.rows
    assert row.event_id == "r-1"
    assert row.request_id == "r-1"
    assert row.ts_us == to_micros("2026-05-01T00:00:02Z")
    assert (row.identity, row.outcome, row.note) == ("alice", "denied", None)
    assert (result.consumed, result.dead_records) == (2, 0)


def test_failed_login_is_the_user_its_path_names() -> None:
    """A wrong password: the response has no `auth`, the path names the user (ground truth
    op 32); a login naming no one (AppRole) stays unknown."""
    login = {"path": "auth/userpass/login/alice", "op": "update", "mount_type": "userpass"}
    request = _entry("request", "r-1", "2026-05-01T00:00:00Z", auth=APPROLE, **login)
    response = _entry(
        "response", "r-1", "2026-05-01T00:00:01Z", error="invalid credentials", **login
    )
    (row,) = run(_records(request, response)).rows
    assert (row.identity, row.identity_kind, row.action, row.outcome) == (
        "alice",
        "human",
        "auth",
        "denied",  # refused credentials: password guessing counts as denied
    )
    assert row.note == vault_mod.LOGIN_NOTE
    lone = _entry("request", "r-2", "2026-05-01T00:00:00Z", **login)
    (row,) = run(_records(lone)).rows
    assert (row.identity, row.note) == ("alice", PROVISIONAL_NOTE)  # exact: stores match it
    approle = {"path": "auth/approle/login", "op": "update", "mount_type": "approle"}
    entry = _entry(
        "response", "r-3", "2026-05-01T00:00:00Z", error="invalid credentials", **approle
    )
    (row,) = run(_records(entry)).rows
    assert (row.identity, row.outcome) == ("unknown", "denied")
    broken = _entry("response", "r-4", "2026-05-01T00:00:00Z", error="internal error", **login)
    assert run(_records(broken)).rows[0].outcome == "error"  # not a refusal


def test_prefixed_lines_parse_as_plain_ones() -> None:
    """The audit device's `prefix` option: the same events; a broken line's dead letter is
    the whole line where it lies."""
    records = records_of(JSONL)
    prefixed = [(b"vault-audit: " + bytes(raw), line, offset) for raw, line, offset in records]
    plain, got = run(records), run(prefixed)
    assert got.rows == plain.rows
    assert (got.consumed, got.dead_records) == (plain.consumed, 0)
    broken = [(b'[vault] {"type":"response","request":', 7, 123), (b"vault-audit: no", 8, 170)]
    dead = run(broken).dead
    assert [(d.line, d.offset, d.raw) for d in dead] == [(r[1], r[2], r[0]) for r in broken]


def test_user_agent_and_address(fixture_rows: dict[str, EventRow]) -> None:
    row = fixture_rows[_id(1)]
    assert row.user_agent == "vault-agent/1.15.2"
    assert row.source_ip == "10.1.2.3"
    assert row.request_id == _id(1)
    assert row.ts_us == to_micros("2026-05-01T03:10:00.104Z")
    assert fixture_rows[_id(2)].user_agent is None


def test_backend_name() -> None:
    entry = _entry("response", "id-1", "2026-05-01T00:00:00Z", auth=APPROLE)
    assert run(_records(entry)).rows[0].backend == "vault"
    assert run(_records(entry), backend="prod-eu").rows[0].backend == "prod-eu"
    assert new_parser("vault", "prod-us").feed(_records(entry), "f").rows[0].backend == "prod-us"


# -- pairing -------------------------------------------------------------------------------


def test_lone_request_counts_after_flush_with_note() -> None:
    records = records_of(JSONL)
    parser = VaultParser()
    fed = parser.feed(records, "audit.jsonl")
    assert _id(18) not in {r.event_id for r in fed.rows}
    assert fed.consumed == 34  # the last request is still waiting for its response
    raw, line, offset = records[-1]
    assert line == 35
    assert parser.pending_position() == (offset, line)
    flushed = parser.flush("audit.jsonl")
    assert (flushed.consumed, flushed.dead_records, len(flushed.rows)) == (1, 0, 1)
    (row,) = flushed.rows
    assert row.event_id == _id(18)
    assert row.note is not None and "no response entry" in row.note
    assert (row.outcome, row.action, row.secret) == ("success", "read", "secret/apps/billing/db")
    assert row.ts_us == to_micros("2026-05-01T03:25:00.0Z")
    assert parser.pending_position() is None
    assert parser.flush("audit.jsonl").accounted == 0  # a second flush finds nothing


def test_request_after_response_not_double_counted(fixture_rows: dict[str, EventRow]) -> None:
    row = fixture_rows[_id(12)]
    assert row.ts_us == to_micros("2026-05-01T03:19:00.5Z")  # the response's time
    assert row.note is None
    response = _entry("response", "late", "2026-05-01T00:00:01Z", auth=APPROLE)
    request = _entry("request", "late", "2026-05-01T00:00:00Z", auth=APPROLE)
    parser = VaultParser()
    first = parser.feed(_records(response), "f")
    second = parser.feed(_records(request), "f")  # arrives in a later chunk
    flushed = parser.flush("f")
    assert len(first.rows) == 1
    assert (second.rows, flushed.rows) == ([], [])
    assert first.consumed + second.consumed + flushed.consumed == 2


def test_pairing_across_chunks_equals_one_chunk() -> None:
    records = records_of(JSONL)
    whole = run(records)
    parser = VaultParser()
    pieces = FeedResult()
    for record in records:
        pieces.extend(parser.feed([record], "audit.jsonl"))
    pieces.extend(parser.flush("audit.jsonl"))
    assert sorted(pieces.rows) == sorted(whole.rows)
    assert pieces.accounted == whole.accounted == len(records)


def test_same_request_id_twice_counts_the_first_alone() -> None:
    first = _entry("request", "dup", "2026-05-01T00:00:00Z", auth=APPROLE)
    second = _entry("request", "dup", "2026-05-01T00:00:05Z", auth=APPROLE)
    result = run(_records(first, second))
    assert result.accounted == 2
    assert len(result.rows) == 2
    assert all(r.note for r in result.rows)


def test_pair_window_expires_lone_requests_without_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault_mod, "PAIR_WINDOW", 3)
    lone = _entry("request", "lone", "2026-05-01T00:00:00Z", auth=APPROLE)
    others = [
        _entry(kind, f"o{i}", f"2026-05-01T00:00:0{i}Z", auth=APPROLE)
        for i in range(1, 4)
        for kind in ("request", "response")
    ]
    parser = VaultParser()
    result = parser.feed(_records(lone, *others), "f")
    assert "lone" in {r.event_id for r in result.rows}
    assert result.accounted == 7
    assert parser.pending_position() is None


def test_masked_ids_pair_correctly(fixture_rows: dict[str, EventRow]) -> None:
    masked = [r for r in fixture_rows.values() if r.event_id.startswith("vault:sha256:")]
    assert len(masked) == 1
    (row,) = masked
    assert row.request_id is None
    assert (row.identity, row.secret, row.action) == (
        "billing-worker",
        "secret/apps/shipping/token",
        "read",
    )
    assert row.note is None  # paired: the response made it
    assert row.ts_us == to_micros("2026-05-01T03:20:00.5Z")


def test_masked_ids_distinct_calls_stay_distinct() -> None:
    def call(port: int, second: int) -> list[dict]:
        common = {"remote_address": "10.0.0.1", "remote_port": port}
        return [
            _entry("request", "****", f"2026-05-01T00:00:{second:02d}Z", auth=APPROLE, **common),
            _entry("response", "****", f"2026-05-01T00:00:{second:02d}.5Z", auth=APPROLE, **common),
        ]

    result = run(_records(*call(50001, 1), *call(50002, 2)))
    assert result.accounted == 4
    assert len(result.rows) == 2
    assert len({r.event_id for r in result.rows}) == 2
    assert all(r.note is None for r in result.rows)
    # Stable: the same input gives the same ids (idempotent re-ingest).
    again = run(_records(*call(50001, 1), *call(50002, 2)))
    assert {r.event_id for r in again.rows} == {r.event_id for r in result.rows}


def test_masked_lone_request_after_an_answered_call_still_counts() -> None:
    """BUG (pipeline/sources/vault.py, VaultParser.feed, request branch `if key in
    answered`): with masked ids the pairing key is path/operation/address/port, which
    repeats for every call of the same kind on one keep-alive connection (the tallen sample
    reuses port 58090). Once one such call was answered, every later masked request with the
    same key is taken for "its response already made the event": counted as consumed and
    dropped. A later request whose response never comes therefore yields no event at all,
    although the module promises that such a request "still counts". Here: three calls,
    the last without a response -> expected 3 events, actual 2."""

    def entry(kind: str, time: str) -> dict:
        return _entry(
            kind,
            "****",
            time,
            path="auth/token/lookup-self",
            auth=APPROLE,
            remote_address="3.93.200.217",
            remote_port=58090,
        )

    result = run(
        _records(
            entry("request", "2026-05-01T00:00:00Z"),
            entry("response", "2026-05-01T00:00:00.1Z"),
            entry("request", "2026-05-01T00:05:00Z"),
            entry("response", "2026-05-01T00:05:00.1Z"),
            entry("request", "2026-05-01T00:09:00Z"),  # never answered
        )
    )
    assert result.accounted == 5
    stamps = sorted(r.ts_us for r in result.rows)
    assert len(stamps) == 3, f"expected 3 events, got {len(stamps)}"
    assert stamps[-1] == to_micros("2026-05-01T00:09:00Z")


def test_pretty_printed_concatenated_variant() -> None:
    records = records_of(PRETTY)
    assert len(records) == 6
    assert records[0][1] == 1
    assert all(a[1] < b[1] for a, b in zip(records, records[1:], strict=False))
    result = run(records, file=str(PRETTY))
    assert result.dead == []
    assert result.accounted == 6
    rows = sorted(result.rows, key=lambda r: r.ts_us)
    assert [(r.identity, r.secret, r.action) for r in rows] == [
        ("shop/orders-api", None, "auth"),  # masked-id kubernetes login
        ("shop/orders-api", "secret/apps/orders/db", "read"),
        ("shop/orders-api", "secret/apps/orders/", "list"),
    ]
    assert rows[0].event_id.startswith("vault:sha256:")
    assert rows[0].ts_us == to_micros("2026-05-02T08:00:00.900000000Z")
    for row in rows:
        to_event(row)


# -- malformed input -----------------------------------------------------------------------


def test_malformed_lines_are_dead_lettered_with_position() -> None:
    good = _entry("response", "ok", "2026-05-01T00:00:00Z", auth=APPROLE)
    raws = [
        b"this is not json",
        b"[1, 2, 3]",
        _line({"type": "event", "time": "2026-05-01T00:00:00Z", "request": {"id": "z"}}),
        _line({"type": "response", "time": "2026-05-01T00:00:00Z"}),  # no request object
        _line({"type": "request", "time": 5, "request": {"id": "t"}}),
        _line({"type": "response", "time": "not a time", "request": {"id": "u"}}),
        _line(good),
        b'{"type":"request","request":{"id":"trunc","path":"secret/da',
    ]
    records = [(raw, i * 10 + 1, i * 100) for i, raw in enumerate(raws)]
    result = run(records, file="broken.log")
    assert result.accounted == len(raws)
    assert len(result.rows) == 1
    assert result.rows[0].event_id == "ok"
    assert result.dead_records == len(raws) - 1
    by_line = {d.line: d for d in result.dead}
    assert set(by_line) == {1, 11, 21, 31, 41, 51, 71}
    for letter in result.dead:
        assert letter.file == "broken.log"
        assert letter.format == "vault"
        assert letter.reason
    assert "'event'" in by_line[21].reason
    assert "not ISO-8601" in by_line[51].reason
    assert by_line[11].offset == 100


def test_response_with_bad_time_does_not_lose_its_request() -> None:
    """BUG (pipeline/sources/vault.py, VaultParser.feed, response branch): the waiting
    request is popped from `pending` *before* `normalize` validates the response. When the
    response's `time` is null or not ISO-8601, normalize raises ParseError, the response is
    dead-lettered (dead_records += 1) and the already-popped request is neither consumed,
    skipped nor dead-lettered: 2 records fed, 1 accounted. The request is also never
    emitted, so the call vanishes. Expected: consumed + skipped + dead == 2 (e.g. the
    request counted alone, or both dead-lettered)."""
    for bad_time in (None, "not-a-time"):
        request = _entry("request", "r-9", "2026-05-01T00:00:00Z", auth=APPROLE)
        response = _entry("response", "r-9", "2026-05-01T00:00:01Z", auth=APPROLE)
        response["time"] = bad_time
        result = run(_records(request, response))
        assert result.dead_records >= 1
        assert result.accounted == 2, (
            f"time={bad_time!r}: consumed={result.consumed} skipped={result.skipped_records} "
            f"dead={result.dead_records}"
        )


# -- the real read-only samples ------------------------------------------------------------


@needs_samples
def test_elastic_sample() -> None:
    assert SAMPLES is not None
    path = SAMPLES / ELASTIC
    records = records_of(path)
    assert len(records) == 5
    result = run(records, file=str(path))
    assert result.dead == []
    assert result.accounted == 5
    assert len(result.rows) == 3
    rows = by_id(result.rows)

    caps = rows["cd09708b-11cc-2985-648b-cfe262cf7e50"]
    assert (caps.identity, caps.identity_kind, caps.action) == (
        "example@gmail.com",
        "human",
        "other",
    )
    assert caps.secret is None
    assert caps.ts_us == to_micros("2020-12-01T20:29:04.36089379Z")

    kv = rows["0042ad1b-1400-7eb7-5e25-1dfc898c1998"]
    assert (kv.identity, kv.identity_kind) == ("nomad/default/runner", "service")
    assert kv.secret == "secret/apps/continuous-delivery/aws-bucket-sse-c"  # noqa: S105
    assert (kv.action, kv.outcome, kv.source_ip) == ("read", "success", "10.6.8.36")

    (lone,) = [r for r in result.rows if r.event_id not in {caps.event_id, kv.event_id}]
    assert lone.event_id.startswith("vault:sha256:")  # synthesized: the request has no id
    assert lone.request_id is None
    assert (lone.operation, lone.action) == ("help", "other")
    assert lone.note is not None and "no response entry" in lone.note
    assert lone.identity == "example@gmail.com"
    for row in result.rows:
        assert to_event(row).timestamp.tzinfo is UTC


@needs_samples
def test_tallen_sample() -> None:
    assert SAMPLES is not None
    path = SAMPLES / TALLEN
    records = records_of(path)
    assert len(records) == 12
    result = run(records, file=str(path))
    assert result.dead == []
    assert result.accounted == 12
    assert len(result.rows) == 6
    assert {r.identity for r in result.rows} == {"tfc-role"}
    assert {r.identity_kind for r in result.rows} == {"service"}
    reads = [r for r in result.rows if r.action == "read"]
    assert [(r.event_id, r.secret) for r in reads] == [
        ("7298b02c-cc59-046c-2dd9-fbc29ac4adc4", "secret/s3")
    ]
    others = [r for r in result.rows if r.action != "read"]
    assert len(others) == 5
    assert {r.action for r in others} == {"auth"}
    assert all(r.secret is None for r in others)
    assert all(r.note is None for r in result.rows)  # every request has its response
    for row in result.rows:
        assert to_event(row).timestamp >= datetime(2024, 8, 15, tzinfo=UTC)


@needs_samples
def test_samples_ids_stable_across_runs() -> None:
    assert SAMPLES is not None
    for name in (ELASTIC, TALLEN):
        records = records_of(SAMPLES / name)
        assert sorted(run(records).rows) == sorted(run(records).rows)


def test_error_values_are_not_stored() -> None:
    """Issue 14 item 6: Vault's `error` can quote what was sent."""
    error = '1 error occurred:\n\t* invalid value "CANARY-vault" for field\n\n'
    entry = _entry("response", "id-1", "2026-05-01T00:00:00Z", error=error, auth=APPROLE)
    (row,) = run(_records(entry)).rows
    assert row.error == '1 error occurred:\n\t* invalid value "…" for field\n\n'
