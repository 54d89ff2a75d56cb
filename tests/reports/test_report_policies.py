"""Vault ACL policies: parsing, glob resolution and priority as Vault documents them
(developer.hashicorp.com/vault/docs/concepts/policies) and implements them (vault/acl.go),
and reading policies from a Vault server's sys/policies/acl API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from pipeline.reports.policies import ACL, PolicyError, acl_for, fetch, load_texts, parse

# The documentation's "Policy syntax" examples, one policy.
DOCUMENTED = """
# Permit reading only "secret/foo". An attached token cannot read "secret/food"
# or "secret/foo/bar".
path "secret/foo" {
  capabilities = ["read"]
}

# Permit reading everything under "secret/bar". An attached token could read
# "secret/bar/zip", "secret/bar/zip/zap", but not "secret/bars/zip".
path "secret/bar/*" {
  capabilities = ["read"]
}

# Permit reading everything prefixed with "zip-". An attached token could read
# "secret/zip-zap" or "secret/zip-zap/zong", but not "secret/zip/zap
path "secret/zip-*" {
  capabilities = ["read"]
}

# Permit reading the "teamb" path under any top-level path under secret/
path "secret/+/teamb" {
  capabilities = ["read"]
}

# Permit reading secret/foo/bar/teamb, secret/bar/foo/teamb, etc.
path "secret/+/+/teamb" {
  capabilities = ["read"]
}
"""


def readable(acl: ACL, path: str) -> bool:
    decision = acl.decide(path)
    return decision is not None and decision.read


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("secret/foo", True),
        ("secret/food", False),
        ("secret/foo/bar", False),
        ("secret/bar/zip", True),
        ("secret/bar/zip/zap", True),
        ("secret/bars/zip", False),
        ("secret/zip-zap", True),
        ("secret/zip-zap/zong", True),
        ("secret/zip/zap", False),
        ("secret/foo/teamb", True),
        ("secret/bar/teamb", True),
        ("secret/foo/bar/teamb", True),
        ("secret/bar/foo/teamb", True),
        ("secret/foo/bar/baz/teamb", False),  # + is exactly one segment
        ("secret/teamb", False),
    ],
)
def test_documented_examples(path: str, allowed: bool) -> None:
    assert readable(ACL(parse("doc", DOCUMENTED)), path) is allowed


def test_glob_matches_prefix_not_just_segments() -> None:
    # "if you define a policy for secret/foo*, the policy would also match secret/foobar"
    acl = ACL(parse("p", 'path "secret/foo*" {\n  capabilities = ["read"]\n}\n'))
    assert readable(acl, "secret/foobar")
    assert readable(acl, "secret/foo")
    assert not readable(acl, "secret/fo")


def _acl(rules: dict[str, list[str]]) -> ACL:
    text = "".join(
        f'path "{path}" {{\n  capabilities = {json.dumps(caps)}\n}}\n'
        for path, caps in rules.items()
    )
    return ACL(parse("p", text))


def test_documented_priority_example() -> None:
    # "given the two paths, secret/* and secret/+/+/foo/*, ... secret/+/+/foo/* [gets]
    # lower priority": the first wildcard is at the same place, both end in *, and the
    # latter has two wildcard segments.
    acl = _acl({"secret/*": ["read"], "secret/+/+/foo/*": ["deny"]})
    decision = acl.decide("secret/a/b/foo/bar")
    assert decision is not None and decision.pattern == "secret/*" and decision.read


@pytest.mark.parametrize(
    ("rules", "path", "winner"),
    [
        # An exact path beats any glob.
        ({"secret/app/db": ["read"], "secret/app/*": ["deny"]}, "secret/app/db", "secret/app/db"),
        # Rule 1: the first wildcard or glob later wins (foo/bar/+/baz over foo/+/bar/baz).
        (
            {"foo/bar/+/baz": ["read"], "foo/+/bar/baz": ["deny"]},
            "foo/bar/bar/baz",
            "foo/bar/+/baz",
        ),
        # ... and foo/a* over foo/+ (glob at 5, wildcard at 4).
        ({"foo/a*": ["read"], "foo/+": ["deny"]}, "foo/abc", "foo/a*"),
        # Rule 2: not ending in * wins (foo/+ over foo/*, foo/+/bar over foo/+/ba*).
        ({"foo/+": ["read"], "foo/*": ["deny"]}, "foo/x", "foo/+"),
        ({"foo/+/bar": ["read"], "foo/+/ba*": ["deny"]}, "foo/x/bar", "foo/+/bar"),
        # Rule 3: fewer + segments win (foo/bar/+/baz over foo/+/+/baz).
        ({"foo/+/+/baz": ["deny"], "foo/bar/+/baz": ["read"]}, "foo/bar/x/baz", "foo/bar/+/baz"),
        # Rule 4: longer wins (foo/+/bar/ba* over foo/+/bar/b*).
        ({"foo/+/bar/b*": ["deny"], "foo/+/bar/ba*": ["read"]}, "foo/x/bar/baz", "foo/+/bar/ba*"),
        # Among plain globs, the longest prefix wins.
        ({"secret/*": ["deny"], "secret/team/*": ["read"]}, "secret/team/db", "secret/team/*"),
    ],
)
def test_priority_rules(rules: dict[str, list[str]], path: str, winner: str) -> None:
    decision = _acl(rules).decide(path)
    assert decision is not None
    assert decision.pattern == winner
    assert decision.read


def test_plus_requires_the_same_number_of_segments() -> None:
    acl = _acl({"secret/+/config": ["read"], "kv/+/x*": ["read"]})
    assert readable(acl, "secret/a/config")
    assert not readable(acl, "secret/a/config/more")
    assert not readable(acl, "secret/config")
    assert readable(acl, "kv/a/xyz/deeper")  # a + path ending in * is a prefix
    assert not readable(acl, "kv/a/y")


def test_plus_only_as_a_whole_segment() -> None:
    # Vault treats + as a wildcard only where it is a whole segment ("/+", "+/", "+").
    acl = _acl({"database/creds/backup-+": ["read"]})
    assert not readable(acl, "database/creds/backup-orders")
    assert readable(acl, "database/creds/backup-+")


def test_policies_merge_and_deny_wins() -> None:
    policies = load_texts({
        "a": 'path "secret/app/*" {\n  capabilities = ["list"]\n}\n',
        "b": 'path "secret/app/*" {\n  capabilities = ["read"]\n}\n',
        "c": 'path "secret/app/root-key" {\n  capabilities = ["deny"]\n}\n'
        'path "secret/app/*" {\n  capabilities = ["update"]\n}\n',
        "d": 'path "secret/other/*" {\n  capabilities = ["deny"]\n}\n',
        "e": 'path "secret/other/*" {\n  capabilities = ["read"]\n}\n',
    })  # fmt: skip
    merged = acl_for(["a", "b", "c"], policies)
    decision = merged.decide("secret/app/db")
    assert decision is not None
    assert decision.capabilities == {"list", "read", "update"}
    assert decision.granted_by == ("b",)  # the policies granting read
    assert not readable(merged, "secret/app/root-key")
    # deny on the same path from any policy replaces the others' capabilities
    assert not readable(acl_for(["e", "d"], policies), "secret/other/x")
    assert readable(acl_for(["e"], policies), "secret/other/x")
    assert readable(acl_for(["root"], policies), "anything/at/all")
    assert not readable(acl_for(["unknown"], policies), "secret/app/db")


def test_readable_filters_many_paths_like_decide() -> None:
    acl = ACL(parse("doc", DOCUMENTED))
    paths = ["secret/foo", "secret/food", "secret/bar/zip", "secret/x/teamb", "other/foo",
             "secret/zip/zap", "secret/a/b/teamb"]  # fmt: skip
    assert sorted(acl.readable(paths)) == sorted(p for p in paths if readable(acl, p))


def test_json_and_old_style_policies() -> None:
    rules = parse("j", '{"path": {"secret/j/*": {"capabilities": ["read"]}, '
                       '"secret/old": {"policy": "write"}}}')  # fmt: skip
    assert {r.path: r.capabilities for r in rules} == {
        "secret/j/*": {"read"},
        "secret/old": {"create", "read", "update", "delete", "list"},
    }
    assert ACL(rules).decide("/secret/j/x".lstrip("/")) is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('path "a" {\n  capabilities = ["read"\n', "not valid HCL"),
        ('path "a" {\n  capabilities = ["reed"]\n}\n', "invalid capability 'reed'"),
        ('path "a/+*" {\n  capabilities = ["read"]\n}\n', "'+*' is forbidden"),
        ("path = 3\n", "must be blocks"),
        ('{"nopath": 1}', "JSON policies hold a `path` object"),
    ],
)
def test_bad_policies_are_named(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match="policy 'bad'") as info:
        parse("bad", text)
    assert message in str(info.value)


# -- sys/policies/acl against a local HTTP server imitating Vault ----------------------------


class _FakeVault(BaseHTTPRequestHandler):
    policies = {
        "default": 'path "auth/token/lookup-self" {\n  capabilities = ["read"]\n}\n',
        "app": 'path "secret/data/app/*" {\n  capabilities = ["read"]\n}\n',
    }
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append((self.path, self.headers.get("X-Vault-Token")))
        if self.headers.get("X-Vault-Token") != "s.good":
            return self._send(403, {"errors": ["permission denied"]})
        if self.path == "/v1/sys/policies/acl?list=true":
            return self._send(200, {"data": {"keys": [*self.policies, "root"]}})
        name = self.path.removeprefix("/v1/sys/policies/acl/")
        if name in self.policies:
            return self._send(200, {"data": {"name": name, "policy": self.policies[name]}})
        return self._send(404, {"errors": []})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def vault_addr() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _FakeVault)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_reads_every_policy(vault_addr: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "s.good")
    _FakeVault.seen.clear()
    texts = fetch(vault_addr)
    assert texts == _FakeVault.policies  # root has no text and is not fetched
    assert {token for _, token in _FakeVault.seen} == {"s.good"}
    assert readable(acl_for(["app"], load_texts(texts)), "secret/data/app/db")


def test_fetch_errors_name_the_fix(vault_addr: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    with pytest.raises(PolicyError, match="set VAULT_TOKEN"):
        fetch(vault_addr)
    monkeypatch.setenv("VAULT_TOKEN", "s.bad")
    with pytest.raises(PolicyError, match="403"):
        fetch(vault_addr)
    monkeypatch.setenv("VAULT_TOKEN", "s.good")
    with pytest.raises(PolicyError, match="cannot read policies from Vault"):
        fetch("http://127.0.0.1:9", timeout=2)  # nothing listens on the discard port
