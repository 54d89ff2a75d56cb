"""Vault audit lines shaped exactly as a real Vault 1.21.4 writes them, multiplied.

The templates are the request/response pairs of a real audit log
(`tests/fixtures/vault/vault-1.21.4-dev/audit.log`, recorded from `vault server -dev`):
Vault's own field order (auth and request first, `time` and `type` last; `request.id` after
the client token, the request data and the headers), the audited request headers, the HMAC'd
request and response data, the token housekeeping (lookup-self, renew-self, create), the UI's
mount lookups before every KV call, and their sizes. Each call copies one template pair and
varies what differs between calls in production, deterministically from the seed: request
id, times, client address and port, the caller (its token, accessor, entity, metadata and
policies) and the application named in the path.

    >>> import io
    >>> out = io.BytesIO()
    >>> n = write_lines(out, 4, seed=1)
    >>> [orjson.loads(line)["type"] for line in out.getvalue().splitlines()]
    ['request', 'response', 'request', 'response']
"""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO

import orjson

FIXTURE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "vault" / "vault-1.21.4-dev" / "audit.log"
)
# Share of calls per kind of template: a production mix (services read KV v2 secrets and
# keep their tokens alive; the CLI and UI look the mount up before each KV call; some
# logins, transit, writes and denials; little administration).
WEIGHTS = {
    "kv-read": 30,
    "ui-mounts": 14,
    "token": 18,
    "login": 7,
    "transit": 8,
    "kv-metadata": 6,
    "kv-write": 6,
    "denied": 4,
    "other": 2,
}
_AUTH_ORDER = (
    "accessor",
    "client_token",
    "display_name",
    "entity_created",
    "entity_id",
    "metadata",
    "policies",
    "policy_results",
    "token_policies",
    "token_issue_time",
    "token_ttl",
    "token_type",
)
_AGENTS = ("Go-http-client/1.1", "vault-client-go/0.4.3", "hvac/2.1.0", "Vault/v1.21.4")


def _kind(entry: dict[str, Any], error: bool) -> str:
    request = entry["request"]
    path, op = request.get("path", ""), request.get("operation")
    if error:
        return "denied"
    if path.startswith("sys/internal/ui/mounts/"):
        return "ui-mounts"
    if path.startswith(("auth/token/lookup-self", "auth/token/renew-self", "auth/token/create")):
        return "token"
    if "/login" in path:
        return "login"
    if path.startswith("transit/") and op == "update":
        return "transit"
    if path.startswith("secret/metadata/"):
        return "kv-metadata"
    if path.startswith(("secret/", "kv1/")):
        return "kv-read" if op == "read" else "kv-write"
    return "other"


def templates(path: Path = FIXTURE) -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """The fixture's complete request/response pairs, grouped by kind."""
    requests: dict[str, dict[str, Any]] = {}
    out: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {kind: [] for kind in WEIGHTS}
    for line in path.read_bytes().splitlines():
        entry = orjson.loads(line)
        rid = entry["request"].get("id")
        if entry["type"] == "request":
            requests[rid] = entry
        elif rid in requests:
            request = requests.pop(rid)
            error = "error" in entry or "error" in request
            out[_kind(request, error)].append((request, entry))
    return out


def _hmac(rng: random.Random) -> str:
    return "hmac-sha256:" + rng.randbytes(32).hex()


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128)))


def identities(rng: random.Random, n: int = 60) -> list[dict[str, Any]]:
    """Callers as their tokens' auth blocks show them (one root token among them)."""
    people: list[dict[str, Any]] = []
    for i in range(n):
        team = f"team-{i % 7}"
        meta: dict[str, str]
        user: str | None
        if i == 0:
            people.append({"display_name": "token", "policies": ["root"], "ip": "10.0.0.2"})
            continue
        kind = i % 3
        if kind == 0:
            meta = {
                "role": f"svc-{i}",
                "service_account_name": f"svc-{i}",
                "service_account_namespace": team,
                "service_account_secret_name": "",
                "service_account_uid": _uuid(rng),
            }
            display, user = f"kubernetes-{team}-svc-{i}", None
        elif kind == 1:
            meta, display, user = {"role_name": f"batch-{i}"}, "approle", None
        else:
            user = f"user{i}"
            meta, display = {"username": user}, f"userpass-{user}"
        people.append(
            {
                "display_name": display,
                "entity_id": _uuid(rng),
                "metadata": meta,
                "policies": ["default", f"{team}-read", f"app-{i}"],
                "token_ttl": 2764800,
                "user": user,
                "agent": _AGENTS[i % len(_AGENTS)],
                "ip": f"10.{i % 7}.{i % 250}.{rng.randrange(2, 250)}",
            }
        )
    return people


def _token(who: dict[str, Any], rng: random.Random, issued: str) -> dict[str, Any]:
    """A token of `who`: the fields every auth block of it repeats."""
    block = {
        "accessor": _hmac(rng),
        "client_token": _hmac(rng),
        "display_name": who["display_name"],
        "entity_id": who.get("entity_id"),
        "metadata": who.get("metadata"),
        "policies": who["policies"],
        "token_policies": who["policies"],
        "token_issue_time": issued,
        "token_ttl": who.get("token_ttl"),
        "token_type": "service",
    }
    return {k: v for k, v in block.items() if v is not None}


def _auth(template: dict[str, Any], token: dict[str, Any]) -> dict[str, Any]:
    """The token's auth block in the template's shape: its keys, Vault's order."""
    out = {}
    for key in _AUTH_ORDER:
        if key in token and (key in template or key in ("entity_id", "metadata", "token_ttl")):
            out[key] = token[key]
        elif key in template:
            out[key] = template[key]
    results = out.get("policy_results")
    if results and "granting_policies" in results:
        granted = [dict(g) for g in results["granting_policies"]]
        for g in granted:
            if "name" in g:
                g["name"] = token["policies"][-1]
        out["policy_results"] = {**results, "granting_policies": granted}
    return out


def _go_time(ns: int) -> str:
    """RFC 3339 with nanoseconds, trailing zeros trimmed, as Go writes it."""
    sec, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def _path(path: str, app: str, who: dict[str, Any]) -> str:
    path = path.replace("orders", app).replace("billing", app)
    if who.get("user"):
        path = path.replace("alice", who["user"]).replace("bob", who["user"])
    return path


def _entry(
    template: dict[str, Any],
    stamp: str,
    rid: str,
    who: dict[str, Any],
    token: dict[str, Any],
    app: str,
    port: int,
    op: int,
) -> dict[str, Any]:
    entry = dict(template)
    auth = template.get("auth")
    if auth and "client_token" in auth and "accessor" in auth:
        entry["auth"] = _auth(auth, token)
    request = dict(template["request"])
    if "client_id" in request:
        request["client_id"] = token.get("entity_id", request["client_id"])
    if "client_token" in request:
        request["client_token"] = token["client_token"]
    if "client_token_accessor" in request:
        request["client_token_accessor"] = token["accessor"]
    if "headers" in request:
        headers = dict(request["headers"])
        headers["user-agent"] = [who.get("agent", "Go-http-client/1.1")]
        if "x-gt-op" in headers:
            headers["x-gt-op"] = [str(op)]
        request["headers"] = headers
    request["id"] = rid
    request["path"] = _path(request.get("path", ""), app, who)
    if "remote_address" in request:
        request["remote_address"] = who["ip"]
        request["remote_port"] = port
    entry["request"] = request
    response = template.get("response")
    if response and isinstance(response.get("auth"), dict):
        entry["response"] = {**response, "auth": _auth(response["auth"], token)}
    entry["time"] = stamp
    return entry


def write_lines(out: BinaryIO, lines: int, seed: int = 7, apps: int = 200) -> int:
    """Write `lines` audit lines (lines/2 calls) to `out`; return the bytes written."""
    rng = random.Random(seed)
    pairs = templates()
    kinds = [k for k in WEIGHTS if pairs[k]]
    weights = [WEIGHTS[k] for k in kinds]
    people = identities(rng)
    tokens: dict[int, dict[str, Any]] = {}
    clock = 1_777_593_600 * 1_000_000_000  # 2026-05-01T00:00:00Z, in ns
    written, buf = 0, []
    for call in range(lines // 2):
        kind = rng.choices(kinds, weights)[0]
        request, response = rng.choice(pairs[kind])
        k = 0 if rng.random() < 0.01 else rng.randrange(1, len(people))
        who = people[k]
        if k not in tokens or rng.random() < 0.002:  # tokens expire and are replaced
            tokens[k] = _token(who, rng, _go_time(clock - clock % 1_000_000_000))
        clock += rng.randrange(1_000, 400_000_000)
        rid, app, port = _uuid(rng), f"app-{rng.randrange(apps)}", rng.randrange(30000, 65000)
        common = (rid, who, tokens[k], app, port, call)
        done = clock + rng.randrange(300_000, 3_000_000)
        buf.append(orjson.dumps(_entry(request, _go_time(clock), *common)) + b"\n")
        buf.append(orjson.dumps(_entry(response, _go_time(done), *common)) + b"\n")
        if len(buf) >= 20_000:
            chunk = b"".join(buf)
            out.write(chunk)
            written += len(chunk)
            buf.clear()
    chunk = b"".join(buf)
    out.write(chunk)
    return written + len(chunk)


def generate(path: Path, lines: int, seed: int = 7) -> int:
    """Write `lines` real-shaped audit lines to `path`; return the bytes written."""
    with path.open("wb") as out:
        return write_lines(out, lines, seed)
