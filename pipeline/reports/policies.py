"""Vault ACL policies: parse them (HCL or JSON), merge them per token as Vault does, and
answer "may this identity read that secret, and which rule says so?".

Matching follows Vault's own ACL code (vault/acl.go, vault/policy.go) and its documented
rules: an exact path wins; otherwise, among the longest matching `*` prefix and every
matching `+` path, the highest priority wins, where P1 is lower than P2 if its first `+`
or `*` comes earlier, if it ends in `*` and P2 does not, if it has more `+` segments, if
it is shorter, or if it sorts first. Rules for the same path from several policies are
merged: capabilities add up, and `deny` replaces everything.

Policies come from files (`*.hcl`, `*.json`, named by their stem) or from a Vault
server's `sys/policies/acl` API with the token in $VAULT_TOKEN.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.errors import SecretwatchError

if TYPE_CHECKING:
    import httpx

CAPABILITIES = frozenset(
    "create read update patch delete list sudo deny subscribe recover scan stream".split()
)
# Pre-0.9 `policy = "..."` values, mapped as Vault maps them.
_OLD_POLICY = {
    "deny": ("deny",),
    "read": ("read", "list"),
    "write": ("create", "read", "update", "delete", "list"),
    "sudo": ("create", "read", "update", "delete", "list", "sudo"),
}


class PolicyError(SecretwatchError):
    """A policy cannot be read or parsed; the message names the policy and the fix."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One `path` block of one policy."""

    policy: str
    path: str
    capabilities: frozenset[str]


@dataclass(slots=True)
class _Perms:
    capabilities: set[str]
    granted_by: dict[str, set[str]] = field(default_factory=dict)  # capability -> policies

    def add(self, rule: Rule) -> None:
        if "deny" in self.capabilities:
            return
        if "deny" in rule.capabilities:
            self.capabilities = {"deny"}
            self.granted_by = {"deny": {rule.policy}}
            return
        self.capabilities |= rule.capabilities
        for cap in rule.capabilities:
            self.granted_by.setdefault(cap, set()).add(rule.policy)


@dataclass(frozen=True, slots=True)
class Decision:
    """The rule that decides a path: its pattern (as written), capabilities, and the
    policies that grant each of them."""

    pattern: str
    capabilities: frozenset[str]
    granted_by: tuple[str, ...]

    @property
    def read(self) -> bool:
        if "deny" in self.capabilities:
            return False
        return "read" in self.capabilities or "root" in self.capabilities


ROOT = Decision("*", frozenset({"root"}), ("root",))


# -- parsing --------------------------------------------------------------------------------


def parse(name: str, text: str) -> list[Rule]:
    """The rules of one policy, from HCL or JSON (Vault accepts both).

    >>> [(r.path, sorted(r.capabilities)) for r in parse("p", 'path "secret/+/x" {'
    ...     '\\n  capabilities = ["read", "list"]\\n}\\n')]
    [('secret/+/x', ['list', 'read'])]
    """
    if text.lstrip().startswith("{"):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise PolicyError(f"policy {name!r} is not valid JSON: {exc}") from None
        blocks = _json_blocks(name, doc)
    else:
        blocks = _hcl_blocks(name, text)
    return [_rule(name, path, body) for path, body in blocks]


def _hcl_blocks(name: str, text: str) -> list[tuple[str, dict[str, Any]]]:
    import hcl2  # python-hcl2; imported here so the CLI starts fast
    from lark.exceptions import LarkError

    options = hcl2.SerializationOptions(
        with_comments=False, explicit_blocks=False, strip_string_quotes=True
    )
    try:
        doc = hcl2.loads(text, serialization_options=options)
    except LarkError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PolicyError(f"policy {name!r} is not valid HCL: {first}") from None
    items = doc.get("path", [])
    if not isinstance(items, list):
        raise PolicyError(f'policy {name!r}: `path` must be blocks: path "<glob>" {{ ... }}')
    blocks: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        for path, body in item.items():
            blocks.append((path, body if isinstance(body, dict) else {}))
    return blocks


def _json_blocks(name: str, doc: object) -> list[tuple[str, dict[str, Any]]]:
    paths = doc.get("path") if isinstance(doc, dict) else None
    if isinstance(paths, list):  # [{"a": {...}}, {"b": {...}}]
        return [(p, b) for item in paths if isinstance(item, dict) for p, b in item.items()]
    if isinstance(paths, dict):
        return [(p, b if isinstance(b, dict) else {}) for p, b in paths.items()]
    raise PolicyError(f"policy {name!r}: JSON policies hold a `path` object")


def _rule(name: str, path: str, body: dict[str, Any]) -> Rule:
    caps = list(body.get("capabilities") or [])
    old = body.get("policy")
    if old is not None:
        if old not in _OLD_POLICY:
            raise PolicyError(f"policy {name!r} path {path!r}: unknown policy {old!r}")
        caps += _OLD_POLICY[old]
    unknown = sorted(set(caps) - CAPABILITIES)
    if unknown:
        raise PolicyError(
            f"policy {name!r} path {path!r}: invalid capability {unknown[0]!r}; "
            f"valid: {', '.join(sorted(CAPABILITIES))}"
        )
    if path.startswith("/"):
        path = path[1:]
    if "+*" in path:
        raise PolicyError(f"policy {name!r} path {path!r}: '+*' is forbidden by Vault")
    return Rule(name, path, frozenset({"deny"} if "deny" in caps else caps))


# -- the merged ACL of one token ----------------------------------------------------------


def _segmented(path: str) -> bool:
    return path == "+" or "/+" in path or path.startswith("+/")


class ACL:
    """The policies of one token merged into exact, prefix and segment-wildcard rules."""

    def __init__(self, rules: Iterable[Rule], root: bool = False) -> None:
        self.root = root
        self.exact: dict[str, _Perms] = {}
        self.prefix: dict[str, _Perms] = {}
        self.segment: dict[str, _Perms] = {}  # full pattern, a trailing `*` kept
        for rule in rules:
            table, key = self._slot(rule.path)
            perms = table.setdefault(key, _Perms(set()))
            perms.add(rule)
        self._prefixes = sorted(self.prefix)
        self._segments = [(p, _SegmentPattern(p)) for p in sorted(self.segment)]

    def _slot(self, path: str) -> tuple[dict[str, _Perms], str]:
        if _segmented(path):
            return self.segment, path
        if path.endswith("*"):
            return self.prefix, path[:-1]
        return self.exact, path

    def decide(self, path: str) -> Decision | None:
        """The rule deciding `path` (a request path such as `secret/data/x`), or None
        when no rule matches (Vault denies by default)."""
        if self.root:
            return ROOT
        perms = self.exact.get(path)
        if perms is not None:
            return _decision(path, perms)
        candidates: list[tuple[tuple[int, bool, int, int, str], str, _Perms]] = []
        longest = self._longest_prefix(path)
        if longest is not None:
            candidates.append(
                (
                    (len(longest), False, 0, len(longest), longest),
                    longest + "*",
                    self.prefix[longest],
                )
            )
        parts = path.split("/")
        for full, seg in self._segments:
            wildcards = seg.match(parts)
            if wildcards is not None:
                key = (seg.first, not seg.is_prefix, -wildcards, len(seg.body), seg.body)
                candidates.append((key, full, self.segment[full]))
        if not candidates:
            return None
        _, pattern_text, perms = max(candidates, key=lambda c: c[0])
        return _decision(pattern_text, perms)

    def _longest_prefix(self, path: str) -> str | None:
        """The longest `*` rule that is a prefix of `path` (Vault's radix LongestPrefix)."""
        return max((p for p in self._prefixes if path.startswith(p)), key=len, default=None)

    def readable(self, paths: Sequence[str]) -> dict[str, Decision]:
        """The paths among `paths` this ACL lets read, with the deciding rule. Only paths
        some rule could match are judged one by one, so thousands of secrets are cheap."""
        if self.root:
            return dict.fromkeys(paths, ROOT)
        known = set(paths)
        ordered = sorted(known)
        candidates = {p for p in self.exact if p in known}
        for prefix in self._prefixes:
            lo = bisect.bisect_left(ordered, prefix)
            hi = bisect.bisect_left(ordered, prefix + "\U0010ffff")
            candidates.update(ordered[lo:hi])
        for _, seg in self._segments:
            candidates.update(p for p in ordered if seg.regex.match(p))
        out: dict[str, Decision] = {}
        for path in sorted(candidates):
            decision = self.decide(path)
            if decision is not None and decision.read:
                out[path] = decision
        return out


class _SegmentPattern:
    """A `+` pattern split as Vault splits it, with a regex that pre-filters paths."""

    def __init__(self, full: str) -> None:
        self.first = full.index("+")
        self.is_prefix = full.endswith("*")
        self.body = full[:-1] if self.is_prefix else full
        self.parts = self.body.split("/")
        pieces = ["[^/]*" if part == "+" else re.escape(part) for part in self.parts]
        self.regex = re.compile("/".join(pieces) + (".*" if self.is_prefix else "") + r"\Z")

    def match(self, path_parts: list[str]) -> int | None:
        """Number of `+` segments if the path matches, else None (vault/acl.go)."""
        if len(path_parts) < len(self.parts):
            return None
        if not self.is_prefix and len(path_parts) != len(self.parts):
            return None
        wildcards, last = 0, len(self.parts) - 1
        for i, part in enumerate(self.parts):
            if part == "+":
                wildcards += 1
            elif part == path_parts[i]:
                continue
            elif self.is_prefix and i == last and path_parts[i].startswith(part):
                continue
            else:
                return None
        return wildcards


def _decision(pattern_text: str, perms: _Perms) -> Decision:
    caps = frozenset(perms.capabilities)
    key = "deny" if "deny" in caps else "read"
    return Decision(pattern_text, caps, tuple(sorted(perms.granted_by.get(key, ()))))


def acl_for(policy_names: Sequence[str], policies: Mapping[str, list[Rule]]) -> ACL:
    """The ACL of a token carrying `policy_names`; unknown names are ignored, as Vault
    ignores policies that do not exist."""
    if "root" in policy_names:
        return ACL((), root=True)
    rules = [r for name in sorted(set(policy_names)) for r in policies.get(name, ())]
    return ACL(rules)


# -- kv v2 paths ----------------------------------------------------------------------------


def request_path(secret: str, kv2_mounts: Sequence[str]) -> str:
    """The path a read of canonical `secret` requests: KV v2 reads go to `<mount>data/`.

    >>> request_path("secret/payments/db", ["secret/"])
    'secret/data/payments/db'
    >>> request_path("database/creds/orders", ["secret/"])
    'database/creds/orders'
    """
    for mount in kv2_mounts:
        if secret.startswith(mount):
            return f"{mount}data/{secret[len(mount) :]}"
    return secret


# -- loading ---------------------------------------------------------------------------------


def read_dir(folder: Path) -> dict[str, str]:
    """The text of every `*.hcl` / `*.json` policy in `folder`, named by file stem."""
    if not folder.is_dir():
        raise PolicyError(f"policies folder {folder} does not exist; fix `report.policies_dir`")
    return {
        path.stem: path.read_text(encoding="utf-8")
        for path in sorted(folder.iterdir())
        if path.suffix in (".hcl", ".json") and path.is_file()
    }


def fetch(addr: str, token: str | None = None, timeout: float = 10.0) -> dict[str, str]:
    """Policy texts from a Vault server (`LIST` then `GET sys/policies/acl/<name>`).

    The token comes from $VAULT_TOKEN (never from config files); $VAULT_NAMESPACE and
    $VAULT_CACERT are honoured as the Vault CLI does."""
    import httpx

    token = token or os.environ.get("VAULT_TOKEN")
    if not token:
        raise PolicyError(
            f"reading policies from {addr} needs a token: set VAULT_TOKEN (a token with "
            "read and list on sys/policies/acl)"
        )
    headers = {"X-Vault-Token": token}
    if os.environ.get("VAULT_NAMESPACE"):
        headers["X-Vault-Namespace"] = os.environ["VAULT_NAMESPACE"]
    verify: str | bool = os.environ.get("VAULT_CACERT") or True
    base = addr.rstrip("/") + "/v1/sys/policies/acl"
    try:
        with httpx.Client(headers=headers, timeout=timeout, verify=verify) as client:
            names = _get(client, base, {"list": "true"})["keys"]
            return {
                name: _get(client, f"{base}/{name}", None)["policy"]
                for name in sorted(names)
                if name != "root"  # built in, has no text; `acl_for` handles it
            }
    except httpx.HTTPError as exc:
        raise PolicyError(f"cannot read policies from Vault at {addr}: {exc}") from exc


def _get(client: httpx.Client, url: str, params: dict[str, str] | None) -> dict[str, Any]:
    response = client.get(url, params=params)
    if response.status_code == 403:
        raise PolicyError(
            f"Vault refused {url} (403): the token needs read and list on sys/policies/acl"
        )
    if response.status_code != 200:
        raise PolicyError(f"Vault answered {response.status_code} for {url}")
    try:
        data = response.json()["data"]
    except (ValueError, KeyError, TypeError):
        raise PolicyError(f"Vault's answer for {url} has no `data`") from None
    if not isinstance(data, dict):
        raise PolicyError(f"Vault's answer for {url} has no `data` object")
    return data


def load_texts(texts: Mapping[str, str]) -> dict[str, list[Rule]]:
    return {name: parse(name, text) for name, text in sorted(texts.items())}
