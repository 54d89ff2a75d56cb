"""Vault parser fidelity items seen on a real Vault 1.21.4 log (issue 17 item 5): tokens
without a display name, bare auth blocks, failed AppRole logins, KV v1 mounts with a `data/`
folder, the audit device's probe, and requests Vault never answers. Entries are shaped as
tests/fixtures/vault/vault-1.21.4-dev/audit.log writes them (field names and nesting)."""

from __future__ import annotations

import pytest
from helpers import vault_records as records
from helpers import vault_run as run

from pipeline.record import PROVISIONAL_NOTE, EventRow
from pipeline.sources import vault
from pipeline.sources.base import FeedResult
from pipeline.sources.vault import VaultParser

ROOT_ACC = "hmac-sha256:98034f90c3c01417484b351fee1ffd9a3ad9d749758b594a9c518b62171befad"
ANON_A = "hmac-sha256:7975f339b80440a43d564722723c567620acd0439ee857f4d0f7e319162a71f2"
ANON_B = "hmac-sha256:1111f339b80440a43d564722723c567620acd0439ee857f4d0f7e319162a71f2"
ROLE_ID = "hmac-sha256:34598852d06fd79708c567a6093c4188b1eaa3f61b9c6de9b76070f3d3482795"
DENIED = "1 error occurred:\n\t* permission denied\n\n"


def token(accessor: str, policies: list[str] | None = None, **more: object) -> dict:
    """An auth block as Vault writes it for a token created without a display name."""
    return {
        "accessor": accessor,
        "client_token": "hmac-sha256:2aa030d0bef295c2906807754b2a",
        "display_name": "token",
        "policies": policies or ["default", "billing-read"],
        "token_type": "service",
        **more,
    }


ROOT = token(ROOT_ACC, ["root"])


def entry(
    kind: str,
    rid: str,
    second: int,
    path: str,
    op: str = "read",
    auth: dict | None = None,
    error: str | None = None,
    mount: tuple[str, str] | None = ("kv", "secret/"),
    data: dict | None = None,
    response: dict | None = None,
) -> dict:
    request: dict[str, object] = {"id": rid, "operation": op, "path": path}
    if mount:
        request["mount_type"], request["mount_point"] = mount
    if data is not None:
        request["data"] = data
    out: dict[str, object] = {"request": request}
    if auth is not None:
        out["auth"] = auth
    if error is not None:
        out["error"] = error
    if response is not None:
        out["response"] = response
    out["time"] = f"2026-12-02T17:{second // 60:02d}:{second % 60:02d}.5Z"
    out["type"] = kind  # Vault writes `type` last
    return out


def call(rid: str, second: int, path: str, **kw: object) -> list[dict]:
    """A request and its response."""
    return [entry("request", rid, second, path, **kw), entry("response", rid, second, path, **kw)]


def by_id(result: FeedResult) -> dict[str, EventRow]:
    return {r.event_id: r for r in result.rows}


# -- identities --------------------------------------------------------------------------


def test_tokens_without_a_display_name_are_told_apart_by_accessor() -> None:
    """Ground truth ops 59, 60: every such token was the one identity `token`."""
    got = by_id(
        run(
            *call("a1", 1, "secret/data/apps/billing/api", auth=token(ANON_A)),
            *call("a2", 2, "auth/token/renew-self", op="update", auth=token(ANON_A)),
            *call("b1", 3, "secret/data/apps/billing/api", auth=token(ANON_B)),
            *call("r1", 4, "secret/data/apps/billing/api", auth=ROOT),
        )
    )
    assert got["a1"].identity == got["a2"].identity == "token:7975f339b804"
    assert got["b1"].identity == "token:1111f339b804"
    assert got["r1"].identity == "root"  # root tokens are root, display name or not
    assert {got[k].identity_kind for k in ("a1", "b1")} == {"unknown"}


def test_bare_auth_block_is_named_by_the_accessor_seen_before() -> None:
    """Ground truth ops 66, 74: a failed unwrap logs the token accessor and nothing else."""
    bare = {"accessor": ROOT_ACC, "client_token": "hmac-sha256:2aa0", "token_type": "service"}
    other = {"accessor": ANON_B, "client_token": "hmac-sha256:2aa0"}
    wrap = {"mount": None, "op": "update", "error": "wrapping token is not valid"}
    got = by_id(
        run(
            *call("r1", 1, "secret/data/apps/orders/db", auth=ROOT),
            entry("request", "u1", 2, "sys/wrapping/unwrap", auth=bare, **wrap),  # type: ignore[arg-type]
            entry("request", "u2", 3, "sys/wrapping/unwrap", auth=other, **wrap),  # type: ignore[arg-type]
        )
    )
    assert (got["u1"].identity, got["u1"].identity_kind) == ("root", "root")
    assert got["u1"].note == vault.ANSWERED_IN_REQUEST_NOTE  # the verdict, not a guess
    assert (got["u2"].identity, got["u2"].identity_kind) == ("token:1111f339b804", "unknown")
    assert {got[k].outcome for k in ("u1", "u2")} == {"error"}


APPROLE = ("approle", "auth/approle/")
LOGIN = {"op": "update", "mount": APPROLE}


def test_failed_approle_login_is_named_by_the_role_id_it_sent() -> None:
    """Ground truth op 49: `invalid credentials`, no auth; the role_id's HMAC was seen in
    the `role-id` read's answer (op 27) and in a successful login (op 48)."""
    bad = {"role_id": ROLE_ID, "secret_id": "hmac-sha256:4014"}
    read = call(
        "rid",
        1,
        "auth/approle/role/orders-api/role-id",
        auth=ROOT,
        mount=APPROLE,
        response={"data": {"role_id": ROLE_ID}},
    )
    failed = entry(
        "response",
        "f1",
        2,
        "auth/approle/login",
        error="invalid credentials",
        data=bad,
        **LOGIN,  # type: ignore[arg-type]
    )
    got = by_id(run(*read, failed))
    assert (got["f1"].identity, got["f1"].identity_kind) == ("orders-api", "service")
    assert (got["f1"].action, got["f1"].outcome, got["f1"].note) == (
        "auth",
        "denied",
        vault.ROLE_NOTE,
    )
    assert (got["rid"].secret, got["rid"].action) == ("auth/approle/role/orders-api", "read")
    # Learned from a successful login instead.
    ok_auth = {"accessor": "hmac-sha256:9945", "display_name": "approle"}
    ok_auth["metadata"] = {"role_name": "orders-api"}  # type: ignore[assignment]
    login = entry("response", "ok", 1, "auth/approle/login", auth=ok_auth, data=bad, **LOGIN)  # type: ignore[arg-type]
    assert by_id(run(login, failed))["f1"].identity == "orders-api"
    # Nothing learned: the caller stays unknown, the refusal still denied.
    alone = by_id(run(failed))["f1"]
    assert (alone.identity, alone.outcome, alone.note) == ("unknown", "denied", None)


# -- KV versions -------------------------------------------------------------------------

KV1 = ("kv", "kv1/")


def test_kv1_mount_with_a_data_folder_is_told_by_the_answer() -> None:
    """Ground truth ops 18, 19: `kv1/data/report` on a KV v1 mount was read as KV v2's
    `kv1/report`. KV v1 answers a read with the fields, KV v2 with `data` and `metadata`,
    and KV v2 takes a write only as `{"data": ...}`."""
    got = by_id(
        run(
            *call("w", 1, "kv1/data/report", op="create", mount=KV1, data={"x": "hmac-sha256:1"}),
            *call("r", 2, "kv1/data/report", mount=KV1, response={"data": {"x": "hmac-sha256:1"}}),
            *call("v2", 3, "secret/data/a", response={"data": {"data": {}, "metadata": {}}}),
            *call("v2w", 4, "secret/data/b", op="create", data={"data": {}, "options": {}}),
        )
    )
    assert (got["w"].secret, got["w"].action) == ("kv1/data/report", "write")
    assert (got["r"].secret, got["r"].action) == ("kv1/data/report", "read")
    assert (got["v2"].secret, got["v2w"].secret) == ("secret/a", "secret/b")


def test_kv_version_is_learned_once_per_mount_and_kept() -> None:
    read_v1 = call("r", 1, "kv1/data/x", mount=KV1, response={"data": {"k": "hmac-sha256:1"}})
    denied = entry("response", "d", 2, "kv1/data/y", mount=KV1, error=DENIED)
    got = by_id(run(*read_v1, denied))
    assert (got["d"].secret, got["d"].outcome) == ("kv1/data/y", "denied")  # mount known
    # Before anything is learned, or from an answer that shows nothing, KV v2 is assumed.
    wrapped = call("w", 1, "kv1/data/x", mount=KV1, response={"wrap_info": {"ttl": 60}})
    unknown = by_id(run(*wrapped, denied))
    assert (unknown["w"].secret, unknown["d"].secret) == ("kv1/x", "kv1/y")


# -- the audit device's probe and unanswered requests -------------------------------------

PROBE = {
    "request": {
        "id": "e67320b6-d67c-35c5-7501-5155e4d97221",
        "namespace": {"id": "root"},
        "operation": "update",
        "path": "sys/audit/test",
    },
    "time": "2026-12-02T17:56:43.543916012Z",
    "type": "request",
}


def test_audit_device_probe_is_skipped_with_its_reason() -> None:
    """Each audit device writes a `sys/audit/test` request (no auth, never answered) when it
    is enabled: not a call, and not a provisional event forever."""
    result = run(PROBE, *call("r1", 1, "secret/data/a", auth=ROOT))
    assert [r.event_id for r in result.rows] == ["r1"]
    assert (result.consumed, result.skipped_records, result.dead_records) == (2, 1, 0)
    assert dict(result.skipped) == {vault.PROBE_REASON: 1}
    # A client calling the path with a token is a call like any other.
    called = run(*call("c", 1, "sys/audit/test", op="update", auth=ROOT, mount=None))
    assert [(r.identity, r.action) for r in called.rows] == [("root", "other")]


def test_unanswered_request_is_final_after_the_pairing_timeout() -> None:
    """A request with no response and no error, older than the newest event by more than
    `PAIR_TIMEOUT_US`, is final (outcome error, the note says unknown); a recent one stays
    provisional, as its response may be in the next file."""
    old = entry("request", "old", 0, "secret/data/a", auth=ROOT)
    recent = entry("request", "new", 9 * 60, "secret/data/b", auth=ROOT)
    later = call("r", 9 * 60 + 30, "secret/data/c", auth=ROOT)  # 9.5 minutes after `old`
    got = by_id(run(old, *later, recent))
    assert (got["old"].outcome, got["old"].note) == ("error", vault.UNANSWERED_NOTE)
    assert (got["new"].outcome, got["new"].note) == ("success", PROVISIONAL_NOTE)
    assert got["r"].note is None


def test_unanswered_request_is_final_when_its_pair_window_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(vault, "PAIR_WINDOW", 3)
    lone = entry("request", "lone", 0, "secret/data/a", auth=ROOT)
    others = [e for i in range(1, 4) for e in call(f"o{i}", i, "secret/data/b", auth=ROOT)]
    parser = VaultParser()
    result = parser.feed(records(lone, *others), "f")  # no flush: the window expired it
    row = by_id(result)["lone"]
    assert (row.outcome, row.note) == ("error", vault.UNANSWERED_NOTE)
    assert parser.pending_position() is None


def test_answered_request_is_unchanged_by_the_timeout() -> None:
    """Pairing is as before: a response, however late in time, makes the event."""
    request = entry("request", "p", 0, "secret/data/a", auth=ROOT)
    response = entry("response", "p", 20 * 60, "secret/data/a", auth=ROOT)
    (row,) = run(request, response).rows
    assert (row.outcome, row.note) == ("success", None)
