"""Seeded generator of realistic Vault audit logs (request + response pairs, 1-2 KB lines).

Shaped like a production audit device: HMAC'd tokens and accessors, full auth blocks with
policies, metadata and policy results, mount information, headers, and HMAC'd response data.
Identities use Kubernetes, AppRole, userpass and OIDC auth; paths are KV v2 reads, lists and
metadata reads, dynamic database credentials, and token housekeeping.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson


def _hmac(rng: random.Random) -> str:
    return "hmac-sha256:" + hashlib.sha256(rng.randbytes(16)).hexdigest()


def _identities(rng: random.Random, n: int) -> list[dict]:
    people = []
    for i in range(n):
        kind = i % 4
        policies = ["default", f"team-{i % 7}", f"app-{i}"]
        if kind == 0:
            meta = {
                "role": f"svc-{i}",
                "service_account_name": f"svc-{i}",
                "service_account_namespace": f"team-{i % 7}",
                "service_account_secret_name": "",
                "service_account_uid": str(uuid.UUID(int=rng.getrandbits(128))),
            }
            display = f"kubernetes-team-{i % 7}-svc-{i}"
        elif kind == 1:
            meta = {"role_name": f"batch-{i}"}
            display = "approle"
        elif kind == 2:
            meta = {"username": f"user{i}"}
            display = f"userpass-user{i}"
        else:
            meta = {"email": f"person{i}@example.com", "role": "default"}
            display = f"oidc-{rng.getrandbits(64)}"
        people.append(
            {
                "display_name": display,
                "entity_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "metadata": meta,
                "policies": policies,
                "team": i % 7,
                "ip": f"10.{i % 7}.{i % 250}.{rng.randrange(2, 250)}",
            }
        )
    return people


_PATHS = [
    ("read", "kv", "secret/", "secret/data/team-{team}/app-{n}/db"),
    ("read", "kv", "secret/", "secret/data/team-{team}/app-{n}/api-key"),
    ("read", "kv", "secret/", "secret/data/shared/tls/{n}"),
    ("list", "kv", "secret/", "secret/metadata/team-{team}/"),
    ("read", "kv", "secret/", "secret/metadata/team-{team}/app-{n}/db"),
    ("read", "database", "database/", "database/creds/app-{n}"),
    ("update", "token", "auth/token/", "auth/token/renew-self"),
    ("read", "token", "auth/token/", "auth/token/lookup-self"),
    ("update", "system", "sys/", "sys/leases/renew"),
]
_WEIGHTS = [30, 15, 8, 4, 4, 6, 10, 8, 5]


def generate(path: Path, lines: int, seed: int = 7, identities: int = 60) -> int:
    """Write `lines` audit lines (lines/2 calls) to `path`; return the bytes written."""
    rng = random.Random(seed)
    people = _identities(rng, identities)
    clock = datetime(2026, 5, 1, tzinfo=UTC)
    written = 0
    with path.open("wb") as out:
        buf: list[bytes] = []
        for _ in range(lines // 2):
            who = rng.choice(people)
            op, mount_type, mount, template = rng.choices(_PATHS, _WEIGHTS)[0]
            req_path = template.format(team=who["team"], n=rng.randrange(40))
            clock += timedelta(microseconds=rng.randrange(1, 400_000))
            request_id = str(uuid.UUID(int=rng.getrandbits(128)))
            token, accessor = _hmac(rng), _hmac(rng)
            auth = {
                "client_token": token,
                "accessor": accessor,
                "display_name": who["display_name"],
                "policies": who["policies"],
                "token_policies": who["policies"],
                "identity_policies": [],
                "policy_results": {
                    "allowed": True,
                    "granting_policies": [
                        {"name": p, "namespace_id": "root", "type": "acl"} for p in who["policies"]
                    ],
                },
                "metadata": who["metadata"],
                "entity_id": who["entity_id"],
                "token_type": "service",
                "token_ttl": 2764800,
                "token_issue_time": "2026-04-30T08:00:00Z",
            }
            request = {
                "id": request_id,
                "client_id": who["entity_id"],
                "operation": op,
                "mount_point": mount,
                "mount_type": mount_type,
                "mount_accessor": f"{mount_type}_{abs(hash(mount)) % 10**8:08x}",
                "mount_running_version": "v0.20.0+builtin",
                "mount_class": "secret",
                "client_token": token,
                "client_token_accessor": accessor,
                "namespace": {"id": "root"},
                "path": req_path,
                "remote_address": who["ip"],
                "remote_port": rng.randrange(30000, 65000),
                "headers": {"user-agent": ["vault-client-go/0.4.3"]},
            }
            stamp = clock.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
            denied = rng.random() < 0.01
            req_entry = {"time": stamp, "type": "request", "auth": auth, "request": request}
            resp_entry = {
                "time": (clock + timedelta(microseconds=800)).strftime("%Y-%m-%dT%H:%M:%S.%f")
                + "Z",
                "type": "response",
                "auth": auth,
                "request": request,
                "response": {
                    "mount_point": mount,
                    "mount_type": mount_type,
                    "mount_class": "secret",
                    "data": {
                        "data": {"password": _hmac(rng), "username": _hmac(rng)},
                        "metadata": {"created_time": _hmac(rng), "version": 3},
                    },
                },
            }
            if denied:
                req_entry["error"] = "permission denied"
                resp_entry["error"] = "1 error occurred:\n\t* permission denied\n\n"
                del resp_entry["response"]
            buf.append(orjson.dumps(req_entry) + b"\n")
            buf.append(orjson.dumps(resp_entry) + b"\n")
            if len(buf) >= 20_000:
                chunk = b"".join(buf)
                out.write(chunk)
                written += len(chunk)
                buf.clear()
        chunk = b"".join(buf)
        out.write(chunk)
        written += len(chunk)
    return written
