"""HashiCorp Vault / OpenBao audit device entries (file, socket or syslog: JSON per entry).

Each call is logged twice, a `request` entry and a `response` entry sharing `request.id`;
one call is one event. The response wins (it carries the outcome); a request whose response
never comes still counts once its pairing window has passed, or at the end of the input.

This is the hot path (Vault is the chattiest source), so lines are decoded straight into
typed msgspec structs holding only the fields we read (untracked by the cyclic collector:
they hold no cycles), and no dict is ever built. A request entry is only decoded as far as
pairing needs (`Head`, or not at all when its id can be read off a compact line); its
response makes the event.

Vault writes `type` last (`..."time":"...","type":"response"}`), other tools first; both
places are looked at to pick the decoder, and the decoded `type` decides.

An audit device with the `prefix` option writes that text before every entry
(`vault-audit: {"type":...}`); a line not starting with `{` is decoded from its JSON on
(`json_start`), while its position and dead letter stay those of the whole line.

Over 400 lines on purpose: decoding, pairing and normalizing are the per-line hot path,
kept side by side so a change to one is measured and read with the others
(`tests/bench/bench_ingest.py`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import msgspec

from pipeline.errors import NotSecretAccess, ParseError
from pipeline.errortext import clean_error
from pipeline.record import PROVISIONAL_NOTE, EventRow, clip, synthetic_id, to_micros
from pipeline.sources import control_plane, vault_kmip
from pipeline.sources.base import DeadLetter, FeedResult, Record, SourceSpec, json_start

NAME = "vault"


_NONE = msgspec.Raw()  # an absent field kept undecoded (`Raw` cannot be optional)


class _Namespace(msgspec.Struct, gc=False):
    path: str | None = None


class _Meta(msgspec.Struct, gc=False, frozen=True):
    """The auth-metadata keys that name a caller (Kubernetes, AppRole, userpass/LDAP, OIDC,
    JWT, Nomad); a frozen struct, not a dict, so other keys are skipped and it is hashable
    (the identity cache is keyed by it as decoded)."""

    service_account_name: str | None = None
    service_account_namespace: str | None = None
    role_name: str | None = None
    role: str | None = None
    username: str | None = None
    email: str | None = None
    Task: str | None = None
    Namespace: str | None = None


class _Auth(msgspec.Struct, gc=False):
    accessor: str | None = None
    display_name: str | None = None
    entity_id: str | None = None
    policies: list[str] | None = None
    token_policies: list[str] | None = None
    metadata: _Meta | None = None


class _Headers(msgspec.Struct, gc=False):
    user_agent: list[str] | None = msgspec.field(default=None, name="user-agent")


class _Request(msgspec.Struct, gc=False):
    id: str | None = None
    operation: str | None = None
    path: str | None = None
    mount_type: str | None = None
    mount_point: str | None = None
    remote_address: str | None = None
    remote_port: int | None = None
    namespace: _Namespace | None = None
    headers: _Headers | None = None
    data: msgspec.Raw = _NONE  # kept undecoded: read only for AppRole logins


class _Response(msgspec.Struct, gc=False):
    data: msgspec.Raw = _NONE  # kept undecoded: read only to learn a mount's KV version
    wrap_info: msgspec.Raw = _NONE  # a wrapped answer shows nothing of its shape
    auth: msgspec.Raw = _NONE  # a created token: read only for its policies (control_plane)


class _Credentials(msgspec.Struct, gc=False):
    """An AppRole login's request data, or a `role-id` read's response data."""

    role_id: Any = None


class Entry(msgspec.Struct, gc=False):
    """The fields of an audit entry secretwatch reads; everything else is skipped unparsed."""

    type: str
    time: str | None = None
    auth: _Auth | None = None
    request: _Request | None = None
    response: _Response | None = None
    error: str | None = None


class Head(msgspec.Struct, gc=False):
    """A request entry's pairing fields only: most requests are answered, so their auth block
    is never needed and is skipped unparsed."""

    type: str
    time: str | None = None
    request: _Request | None = None


_decode = msgspec.json.Decoder(Entry).decode
_decode_head = msgspec.json.Decoder(Head).decode
_RESPONSE_HINT = b'"type":"response"'
_REQUEST_HINT = b'"type":"request"'
_RESPONSE_END = b'"type":"response"}'  # Vault writes `type` last
_REQUEST_END = b'"type":"request"}'
_ID_AT = b'"request":{"id":"'
_LAST_ID = b',"id":"'


def _fast_request_id(line: bytes) -> str | None:
    """The id of a request entry, read without decoding the line; None when the line is not
    plainly one (then it is decoded). Vault sorts the keys (`type` last), so the request's
    id is the last `id` after a comma: only mount fields, `namespace` (`{"id":...`), the
    operation, path, address, time and type follow it; it is taken when it has a request
    id's UUID shape. Other tools write the id first in `request`. Only pairing relies on
    this: a request that ends up counting alone is decoded whole and keyed by its own id
    (`_emit_lone`)."""
    if line.endswith(_REQUEST_END):
        at = line.rfind(_LAST_ID) + len(_LAST_ID)
        value = line[at : at + 36]
        if at < len(_LAST_ID) or line[at + 36 : at + 37] != b'"' or value.count(b"-") != 4:
            return None
    else:
        if line.find(_REQUEST_HINT, 0, 120) < 0:
            return None
        at = line.find(_ID_AT)
        if at < 0:
            return None
        start = at + len(_ID_AT)
        end = line.find(b'"', start, start + 200)
        if end <= start:
            return None
        value = line[start:end]
    if b"\\" in value or value == b"****":
        return None
    return value.decode()


def _decode_response(line: bytes) -> Entry | Head:
    """A line that ends as Vault ends a response entry, decoded whole at once. On failure,
    what decoding its pairing fields first finds instead: their error, or a request (a
    repeated `type`), so the outcome is the same whichever end named the type."""
    try:
        return _decode(line)
    except (msgspec.DecodeError, RecursionError):
        head = _decode_head(line)
        if head.type == "response":
            raise
        return head


# Pairing: a request waits this many records for its response before it counts alone.
PAIR_WINDOW = 50_000
# Ids of answered requests remembered, so a request logged after its response is not
# counted a second time.
ANSWERED_MEMORY = 200_000

_KV2_PARTS = {"data", "metadata", "delete", "undelete", "destroy", "subkeys"}
_KV2_ACTION = {"delete": "delete", "destroy": "delete", "undelete": "write"}
_OPERATION_ACTION = {
    "read": "read",
    "list": "list",
    "create": "write",
    "update": "write",
    "patch": "write",
    "delete": "delete",
}
_DYNAMIC = re.compile(r"/(creds|sts|issue|sign|static-creds)/")
_PLAINTEXT = re.compile(r"/(decrypt|datakey/plaintext)/")  # transit calls answering plaintext
_LOGIN_USER = re.compile(r"auth/.+/login/([^/]+)")  # userpass, LDAP, Okta, RADIUS
_LOGIN = re.compile(r"auth/.+/login(/[^/]+)?")
LOGIN_NOTE = "identity: the user named in the login path (no token identity)"
ROLE_NOTE = "identity: the AppRole whose role_id the login sent (named by an earlier entry)"
ACCESSOR_NOTE = "identity: the token's accessor, named by an earlier entry"
# A request whose response never comes: Vault wrote its verdict in the request entry (a
# failed unwrap, an invalid token), or it is unanswered long after later calls were.
ANSWERED_IN_REQUEST_NOTE = "no response entry: outcome from the error in the request entry"
UNANSWERED_NOTE = "no response entry within the pairing window: outcome unknown"
PAIR_TIMEOUT_US = 5 * 60_000_000  # Vault's default max_request_duration is 90 s
PROBE_PATH = "sys/audit/test"
PROBE_REASON = (
    "vault: the audit device's own test entry (sys/audit/test, written when a device is "
    "enabled), not a client call"
)
_HMAC_PREFIX = "hmac-sha256:"
_ROTATE = re.compile(r"/rotate(-root|-role)?(/|$)")
_UUIDISH = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-?")
_MASKED = {"", "****"}
_HUMAN_METHODS = ("userpass-", "ldap-", "oidc-", "github-", "okta-", "radius-")


def looks_like(doc: dict[str, Any]) -> bool:
    """A Vault audit entry: `type` request/response with a `request` object."""
    kinds = ("request", "response", *vault_kmip.TYPES)
    return doc.get("type") in kinds and isinstance(doc.get("request"), dict)


def identity_of(auth: _Auth | None) -> tuple[str, str]:
    """(identity, kind) for the caller behind a token, stable across its tokens.

    Display names change per token and per method (every AppRole token is `approle`), so
    the auth metadata decides first; `entity_id` is the fallback.
    """
    if auth is None:
        return "unknown", "unknown"
    policies = auth.policies or auth.token_policies or ()
    return _identity(auth.display_name or "", auth.entity_id, "root" in policies, auth.metadata)


_NO_META = _Meta()


@lru_cache(maxsize=65536)
def _identity(
    display: str, entity_id: str | None, root: bool, meta: _Meta | None
) -> tuple[str, str]:
    if root or display == "root":
        return "root", "root"
    m = meta or _NO_META
    if m.service_account_name:
        return f"{m.service_account_namespace or 'default'}/{m.service_account_name}", "service"
    if m.role_name:
        return m.role_name, "service"
    if display.startswith(_HUMAN_METHODS) or (m.username and not m.role):
        return m.email or m.username or display.split("-", 1)[-1], "human"
    if m.role:
        return m.role, "service"
    if m.Task:  # Nomad workload token: one identity per task, not per allocation
        return f"nomad/{m.Namespace or 'default'}/{m.Task}", "service"
    if entity_id:
        return f"entity:{entity_id}", "unknown"
    if display.startswith("token-"):
        return _UUIDISH.sub("", display[6:]) or display, "unknown"
    return (display or "unknown"), "unknown"


@lru_cache(maxsize=65536)
def secret_and_action(
    path: str, op: str, mount_type: str | None, mount_point: str | None, kv1: bool = False
) -> tuple[str | None, str]:
    """Canonical secret path and action for a request.

    KV v2 `secret/data/x` and `secret/metadata/x` both name `secret/x`; a `list` keeps the
    folder (`secret/apps/`); on a mount known to be KV v1 (`kv1`) a `data/` folder is just a
    folder. Token housekeeping and logins are `auth`, `sys/` is `other`: kept, but not secret
    access. Issuing credentials is reading a secret: dynamic `creds/`, an AppRole's `role-id`
    read and `secret-id` generation (the secret is the role, `auth/approle/role/<name>`).
    Transit names one secret per key, `<mount>keys/<name>` (`_transit`).
    """
    if path.startswith("auth/") or path.startswith("sys/leases/"):
        if mount_type == "approle" or (mount_type is None and path.startswith("auth/approle/")):
            issued = _approle_credential(path, op, mount_point or "auth/approle/")
            if issued is not None:
                return issued
        return None, "auth"
    if path.startswith("sys/") or op == "help" or not path:
        return None, "other"
    if path.startswith("identity/"):
        return None, "other"
    action = _OPERATION_ACTION.get(op, "other")
    if mount_type == "kv" or mount_type is None:
        mount = mount_point or path.split("/", 1)[0] + "/"
        rest = path[len(mount) :] if path.startswith(mount) else ""
        part, _, name = rest.partition("/")
        if part in _KV2_PARTS and not kv1 and (mount_type == "kv" or part in ("data", "metadata")):
            secret = mount + name
            if part == "metadata" and op == "read":
                action = "list"  # metadata reveals versions, not the value
            return secret, _KV2_ACTION.get(part, action)
    if mount_type == "transit" or (mount_type is None and path.startswith("transit/")):
        used = _transit(path, op, mount_point or "transit/")
        if used is not None:
            return used
    if _ROTATE.search(path):
        return path, "rotate"
    if _DYNAMIC.search(path) and op in ("read", "update", "create"):
        return path, "read"  # issuing dynamic credentials is reading a secret
    if mount_type in ("transit", None) and op in ("update", "create") and _PLAINTEXT.search(path):
        return path, "read"  # decrypting answers the plaintext, as KMS Decrypt does
    return path, action


# Transit calls by what they do with the key: answer what it protects or the key itself
# (a read, as KMS Decrypt is), or use it without revealing it (a write).
_TRANSIT_READS = {"decrypt", "export", "backup"}
_TRANSIT_WRITES = {"encrypt", "rewrap", "sign", "verify", "hmac", "restore"}


def _transit(path: str, op: str, mount: str) -> tuple[str, str] | None:
    """One secret per transit key, `<mount>keys/<name>`, whatever the call; None for calls
    naming no key (`random`, `hash`, the key list).

    >>> _transit("transit/decrypt/orders", "update", "transit/")
    ('transit/keys/orders', 'read')
    >>> _transit("transit/datakey/wrapped/orders", "update", "transit/")
    ('transit/keys/orders', 'write')
    >>> _transit("transit/keys/orders/rotate", "update", "transit/")
    ('transit/keys/orders', 'rotate')
    """
    rest = path[len(mount) :] if path.startswith(mount) else path.partition("/")[2]
    part, _, tail = rest.partition("/")
    if part == "datakey":  # datakey/plaintext/<key> answers a key; datakey/wrapped/<key> not
        kind, _, tail = tail.partition("/")
        part = "decrypt" if kind == "plaintext" else "encrypt"
    elif part == "export":  # export/<type>/<key>[/<version>]
        tail = tail.partition("/")[2]
    name, _, more = tail.partition("/")
    if not name:
        return None
    secret = f"{mount}keys/{name}"
    if part in _TRANSIT_READS:
        return secret, "read"
    if part in _TRANSIT_WRITES:
        return secret, "write"
    if part == "keys":
        if more == "rotate":
            return secret, "rotate"
        return secret, "write" if more else _OPERATION_ACTION.get(op, "other")  # config, trim
    return None


# AppRole calls that hand out a role's login credentials, by the last part of the path.
_APPROLE_ISSUE = {"role-id": "read", "secret-id": "read", "custom-secret-id": "write"}


def _approle_credential(path: str, op: str, mount: str) -> tuple[str, str] | None:
    """`auth/<mount>/role/<name>/role-id` read, `.../secret-id` generated (or listed):
    (the role as a secret, action); None for any other AppRole call.

    >>> _approle_credential("auth/approle/role/orders-api/secret-id", "update", "auth/approle/")
    ('auth/approle/role/orders-api', 'read')
    """
    parts = path[len(mount) :].split("/") if path.startswith(mount) else ()
    if len(parts) != 3 or parts[0] != "role" or parts[2] not in _APPROLE_ISSUE:
        return None
    secret = f"{mount}role/{parts[1]}"
    if op == "list":
        return secret, "list"  # secret-id accessors, not secret ids
    if parts[2] == "role-id" and op != "read":
        return secret, "write"  # setting a role id
    return secret, _APPROLE_ISSUE[parts[2]]


@lru_cache(maxsize=4096)
def login_user(path: str) -> str | None:
    """The user a login names in its path, for a login no token identity answers (a wrong
    password: the response has no `auth`).

    >>> login_user("auth/userpass/login/alice"), login_user("auth/approle/login")
    ('alice', None)
    """
    match = _LOGIN_USER.fullmatch(path)
    return match.group(1) if match else None


def _outcome(error: str | None) -> str:
    if not error:
        return "success"
    lowered = error.lower()
    if "permission denied" in lowered or "unauthorized" in lowered or "forbidden" in lowered:
        return "denied"
    return "error"


_EPOCH_DAY = date(1970, 1, 1).toordinal()


def event_micros(text: str) -> int:
    """`to_micros` of an audit entry's time. A time in UTC (Vault's `...Z`) is counted from
    the parsed fields: a third of the cost of `timestamp()` or of subtracting two aware
    datetimes, and exact for every year; anything else goes through `to_micros` itself, so
    the two always agree (tests/sources/test_ingest_fast_paths.py).

    >>> event_micros("2020-12-01T20:29:04.356625452Z"), event_micros("2020-12-01T20:29:04.5Z")
    (1606854544356625, 1606854544500000)
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return to_micros(text)  # raises its ParseError
    if value.tzinfo is not UTC:
        return to_micros(text)
    seconds = (value.toordinal() - _EPOCH_DAY) * 86_400 + value.hour * 3_600 + value.minute * 60
    return (seconds + value.second) * 1_000_000 + value.microsecond


_row = tuple.__new__  # EventRow's own __new__ is Python code: build the tuple directly


class Memory:
    """What earlier entries of one input taught, for entries that do not say it themselves:
    who holds a token accessor (a failed unwrap's auth block is the accessor alone), which
    AppRole a role_id belongs to (a failed login sends only the role_id), and which KV mounts
    are version 1 or 2 (only a response's shape tells; `data/` is a folder on KV v1)."""

    __slots__ = ("accessors", "kv1", "kv2", "roles")

    LIMIT = 100_000

    def __init__(self) -> None:
        self.accessors: dict[str, tuple[str, str]] = {}
        self.roles: dict[str, str] = {}
        self.kv1: set[str] = set()
        self.kv2: set[str] = set()

    def learn_kv(self, entry: Entry, path: str, op: str, mount: str) -> None:
        """A successful `<mount>data/...` read or write may show the mount's version: KV v2
        answers a read with `data` and `metadata` and a write with its `version`, and takes
        writes only as `{"data": ...}`; KV v1 answers a read with the fields themselves.
        Absent bodies (an audit filter, a wrapped answer) teach nothing. Once per mount."""
        response = entry.response
        if entry.type != "response" or entry.error or not path.startswith(mount + "data/"):
            return
        if response is not None and response.wrap_info:
            return  # a wrapped answer's shape is the wrapping's
        answer = _keys(response.data) if response is not None else {}
        if op == "read" and answer:
            v2 = "data" in answer and "metadata" in answer
        elif op in ("create", "update"):
            sent = _keys(entry.request.data) if entry.request is not None else {}
            if "version" in answer:
                v2 = True
            elif sent and "data" not in sent:
                v2 = False  # KV v2 refuses a write without `data`
            else:
                return
        else:
            return
        (self.kv2 if v2 else self.kv1).add(mount)

    def learn_role(self, entry: Entry, path: str, role: str) -> None:
        """The role_id an AppRole login sent (answered with the role's name), or a `role-id`
        read answered."""
        request, response = entry.request, entry.response
        raw = request.data if request is not None and path.endswith("/login") else None
        if not raw and path.endswith("/role-id") and response is not None:
            raw = response.data
        role_id = _credentials(raw)
        if role_id:
            if len(self.roles) >= self.LIMIT:
                self.roles.clear()
            self.roles[role_id] = role


def _keys(raw: msgspec.Raw | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return {}
    return body if isinstance(body, dict) else {}


_decode_credentials = msgspec.json.Decoder(_Credentials).decode


def _credentials(raw: msgspec.Raw | None) -> str | None:
    if not raw:
        return None
    try:
        role_id = _decode_credentials(raw).role_id
    except (msgspec.DecodeError, RecursionError):
        return None
    return role_id if isinstance(role_id, str) and role_id not in _MASKED else None


def _short(accessor: str) -> str:
    """`token:` and the first 12 characters of a token's accessor (its HMAC, as logged)."""
    return "token:" + accessor.removeprefix(_HMAC_PREFIX)[:12]


def normalize(
    entry: Entry,
    backend: str | None,
    event_id: str,
    memory: Memory | None = None,
    lone_note: str = PROVISIONAL_NOTE,
) -> EventRow:
    """One event from an entry (the response when there is one). A request counting alone
    carries `lone_note`: provisional (its response may still come) unless told otherwise."""
    request = entry.request
    if request is None or entry.time is None:
        raise ParseError("vault entry lacks `request` or `time`")
    auth = entry.auth
    identity, kind = identity_of(auth)
    path = request.path or ""
    operation = request.operation or ""
    note = None if entry.type == "response" else lone_note
    error = entry.error
    outcome = _outcome(error) if error else "success"
    if auth is not None and auth.accessor:
        if identity == "token":  # no display name, entity or metadata: one per token
            identity = _short(auth.accessor)
        elif identity == "unknown":  # an auth block holding the token alone
            named = memory.accessors.get(auth.accessor) if memory is not None else None
            identity, kind = named or (_short(auth.accessor), "unknown")
            if named:
                note = note or ACCESSOR_NOTE
        elif memory is not None and auth.accessor not in memory.accessors:
            if len(memory.accessors) >= Memory.LIMIT:
                memory.accessors.clear()
            memory.accessors[auth.accessor] = (identity, kind)
    if path.startswith("auth/"):
        identity, kind, note, outcome = _auth_call(
            entry, path, identity, kind, note, outcome, memory
        )
    elif path == PROBE_PATH and (auth is None or not (auth.accessor or auth.display_name)):
        raise NotSecretAccess(PROBE_REASON)
    mount_type = request.mount_type
    kv1 = False
    if mount_type == "kv" and memory is not None and request.mount_point:
        mount = request.mount_point
        kv1 = mount in memory.kv1
        if not kv1 and mount not in memory.kv2:
            memory.learn_kv(entry, path, operation, mount)
            kv1 = mount in memory.kv1
    secret, action = secret_and_action(path, operation, mount_type, request.mount_point, kv1)
    if path[:4] in ("sys/", "auth"):  # control-plane calls (`control_plane`)
        change = _control(entry, path, operation, secret, action)
        if change is not None:  # a provisional note stays first: stores match its start
            secret, action, operation = change.secret, change.action, change.operation
            note = f"{note}; {change.note}" if note else change.note
    namespace = request.namespace
    if namespace is not None and namespace.path and secret:
        secret = namespace.path.rstrip("/") + "/" + secret
    agent = None
    if request.headers is not None and request.headers.user_agent:
        agent = request.headers.user_agent[0]
        if len(agent) > 256:
            agent = clip(agent)
    if note == UNANSWERED_NOTE and not error:
        outcome = "error"
    return _row(
        EventRow,
        (
            event_id,
            event_micros(entry.time),
            NAME,
            backend or NAME,
            identity,
            kind,
            secret,
            action,
            operation,
            outcome,
            request.remote_address,
            agent,
            request.id if request.id not in _MASKED else None,
            clip(clean_error(error)) if error else None,
            note,
            None,  # actor: Vault names the caller itself
        ),
    )


def _control(
    entry: Entry, path: str, op: str, secret: str | None, action: str
) -> control_plane.Change | None:
    """The control-plane change a `sys/` or `auth/` call makes, if any: by path (a tune
    that unhashes audited values, by the names in its request data), an AppRole secret-id
    generated (already a `read` of the role), or a token created with the root policy or
    without a parent (read off the new token in the response)."""
    if path.startswith("sys/"):
        change = control_plane.vault(path, op)
        if change is not None and change.operation.endswith("-tune"):
            sent = _keys(entry.request.data if entry.request is not None else None)
            unhashing = [name for name in control_plane.UNHASHING if name in sent]
            if unhashing:
                return control_plane.vault_unhashed(change, unhashing)
        return change
    if action == "read" and secret is not None and path.endswith("/secret-id"):
        return control_plane.vault_secret_id(secret, op)
    if control_plane.is_token_create(path) and op in ("create", "update"):
        response = entry.response
        token = _new_token(response.auth if response is not None else None)
        orphan = _new_token_request(entry.request.data if entry.request is not None else None)
        return control_plane.vault_token(path, "root" in (token.policies or ()), orphan)
    return None


class _NewToken(msgspec.Struct, gc=False):
    policies: list[str] | None = None


class _TokenRequest(msgspec.Struct, gc=False):
    no_parent: Any = None  # booleans are not HMAC'd in the audit log


def _new_token(raw: msgspec.Raw | None) -> _NewToken:
    if not raw:
        return _NewToken()
    try:
        return msgspec.json.decode(raw, type=_NewToken)
    except (msgspec.DecodeError, RecursionError):
        return _NewToken()


def _new_token_request(raw: msgspec.Raw | None) -> bool:
    if not raw:
        return False
    try:
        return msgspec.json.decode(raw, type=_TokenRequest).no_parent is True
    except (msgspec.DecodeError, RecursionError):
        return False


def _auth_call(
    entry: Entry,
    path: str,
    identity: str,
    kind: str,
    note: str | None,
    outcome: str,
    memory: Memory | None,
) -> tuple[str, str, str | None, str]:
    """Logins: a failed one names its user by the login path (userpass, LDAP, ...) or its
    AppRole by the role_id it sent, and counts as denied (a wrong password, a bad
    secret_id); a successful AppRole login or `role-id` read teaches the role_id."""
    request = entry.request
    mount_type = request.mount_type if request is not None else None
    if identity == "unknown":
        user = login_user(path)
        if user:
            identity, kind = user, "human"
            note = note or LOGIN_NOTE  # a provisional note wins: its complete record says it
        elif memory is not None and mount_type == "approle" and path.endswith("/login"):
            role_id = _credentials(request.data if request is not None else None)
            role = memory.roles.get(role_id) if role_id else None
            if role:
                identity, kind = role, "service"
                note = note or ROLE_NOTE
        if outcome == "error" and entry.error and _LOGIN.fullmatch(path):
            lowered = entry.error.lower()
            if "invalid" in lowered or "incorrect" in lowered:
                outcome = "denied"  # the credentials were refused
    elif memory is not None and mount_type == "approle" and outcome == "success":
        meta = entry.auth.metadata if entry.auth is not None else None
        if meta is not None and meta.role_name and path.endswith("/login"):
            memory.learn_role(entry, path, meta.role_name)
        elif path.endswith("/role-id") and request is not None and request.operation == "read":
            parts = path.split("/")
            if len(parts) >= 3 and parts[-3] == "role":
                memory.learn_role(entry, path, parts[-2])
    return identity, kind, note, outcome


def pair_key(entry: Entry | Head) -> str:
    """Pairing key: `request.id`, or when that is masked or absent, the fields a request
    and its response share."""
    request = entry.request
    if request is None:
        raise ParseError("vault entry has no `request` object")
    if request.id and request.id not in _MASKED:
        return request.id
    return synthetic_id(
        NAME, request.path, request.operation, request.remote_address, request.remote_port
    )


class VaultParser:
    """Pairs request and response entries into one event per call."""

    def __init__(self, backend: str | None = None) -> None:
        self.backend = backend
        # Waiting requests and remembered answers, in arrival (= file) order.
        self._pending: dict[str, tuple[Head | None, Record, int]] = {}
        self._answered: dict[str, None] = {}
        self._seen = 0
        self._memory = Memory()
        self._latest_us = 0  # the time of the newest event made (a feed's last), roughly

    def feed(self, records: list[Record], file: str) -> FeedResult:
        out = FeedResult()
        rows, where, pending, answered = out.rows, out.where, self._pending, self._answered
        backend, seen, memory = self.backend, self._seen, self._memory
        for record in records:
            seen += 1
            raw = record[0]
            if raw.__class__ is not bytes:
                raw = bytes(raw)
            if raw[:1] != b"{":
                raw = raw[json_start(raw) :]  # the audit device's `prefix`
            try:
                # The hint only picks the cheaper decoder; the decoded `type` decides.
                entry: Entry | Head | None
                if raw.endswith(_RESPONSE_END):  # as Vault writes them: `type` last
                    entry = _decode_response(raw)
                elif not raw.endswith(_REQUEST_END) and raw.find(_RESPONSE_HINT, 0, 120) >= 0:
                    entry = _decode(raw)
                else:
                    key = _fast_request_id(raw)  # most requests: paired by id, never decoded
                    if key is not None and key not in pending and key not in answered:
                        pending[key] = (None, record, seen)
                        continue
                    entry = _decode_head(raw)
                    if entry.type == "response":
                        entry = _decode(raw)
                    elif entry.type in vault_kmip.TYPES:  # rare: Enterprise KMIP
                        self._kmip(raw, record, out)
                        continue
                key = pair_key(entry)
                if entry.type == "response":
                    waiting = pending.get(key)
                    source = waiting[0] if waiting else entry
                    rid = entry.request.id if entry.request is not None else None
                    plain = bool(rid) and rid not in _MASKED
                    if source is None or (source is entry and plain):
                        event_id = key  # paired, or answered, by a plain request id
                    else:
                        event_id = self._event_id(key, source)
                    # A bad response leaves its request waiting: it still counts, alone.
                    try:
                        row = normalize(entry, backend, event_id, memory)  # type: ignore[arg-type]
                    except NotSecretAccess as exc:
                        out.skipped[str(exc)] += 1
                        out.skipped_records += 2 if waiting else 1
                    else:
                        rows.append(row)
                        where.append((record[1], record[2]))
                        out.consumed += 2 if waiting else 1
                    if waiting:
                        del pending[key]
                    if plain:
                        answered[key] = None  # masked ids repeat: never treat them as answered
                elif entry.type == "request":
                    if key in answered:
                        out.consumed += 1  # its response already made the event
                    else:
                        if key in pending:  # the same id twice: the first counts alone
                            self._emit_lone(key, out, file)
                        pending[key] = (entry, record, seen)  # type: ignore[assignment]
                else:
                    raise ParseError(f"vault entry `type` is {entry.type!r}, not request/response")
            except (msgspec.DecodeError, ParseError, RecursionError) as exc:
                out.dead.append(DeadLetter.of(record, file, _reason(exc), NAME))
                out.dead_records += 1
        self._seen = seen
        if rows and rows[-1][1] > self._latest_us:
            self._latest_us = rows[-1][1]
        self._expire(out, file)
        if len(answered) > ANSWERED_MEMORY:
            for key in list(answered)[: len(answered) - ANSWERED_MEMORY // 2]:
                del answered[key]
        return out

    def _kmip(self, raw: bytes, record: Record, out: FeedResult) -> None:
        """A KMIP entry: the response an event, the request skipped (`vault_kmip`)."""
        try:
            caller = identity_of(_decode(raw).auth)
        except (msgspec.DecodeError, RecursionError):
            caller = ("unknown", "unknown")  # an odd auth block does not lose the call
        try:
            row = vault_kmip.normalize(vault_kmip.decode(raw), self.backend, caller)
        except NotSecretAccess as exc:
            out.skipped[str(exc)] += 1
            out.skipped_records += 1
            return
        out.rows.append(row)
        out.where.append((record[1], record[2]))
        out.consumed += 1

    def _event_id(self, key: str, entry: Entry | Head | None) -> str:
        if entry is None:  # paired by a plain request id
            return key
        request = entry.request
        if request is not None and request.id and request.id not in _MASKED:
            return key
        # Masked ids: the request's own time makes the pair unique (responses lack it).
        return synthetic_id(NAME, key, entry.time)

    def _expire(self, out: FeedResult, file: str) -> None:
        horizon = self._seen - PAIR_WINDOW
        expired = []
        for key, (_, _, seen) in self._pending.items():
            if seen > horizon:
                break  # arrival order: the rest are younger
            expired.append(key)
        for key in expired:
            self._emit_lone(key, out, file, expired=True)

    def _emit_lone(self, key: str, out: FeedResult, file: str, expired: bool = False) -> None:
        """A request counts alone: final when the request entry holds Vault's verdict (an
        error) or when it went unanswered past the pairing window or `PAIR_TIMEOUT_US`
        behind the newest event; provisional otherwise (its response may still come)."""
        head, record, _ = self._pending.pop(key)
        raw = bytes(record[0])
        try:
            entry = _decode(raw[json_start(raw) :])
            if entry.type != "request":
                raise ParseError(f"vault entry `type` is {entry.type!r}, not request/response")
            own = pair_key(entry)
            if head is None and own != key:  # an id misread off the line
                key = own
                if key in self._answered:
                    out.consumed += 1  # its response made the event
                    return
            note = PROVISIONAL_NOTE
            if entry.error:
                note = ANSWERED_IN_REQUEST_NOTE
            elif expired or (
                entry.time is not None
                and self._latest_us - event_micros(entry.time) > PAIR_TIMEOUT_US
            ):
                note = UNANSWERED_NOTE
            event_id = self._event_id(key, head or entry)
            row = normalize(entry, self.backend, event_id, self._memory, note)
            out.rows.append(row)
            out.where.append((record[1], record[2]))
            out.consumed += 1
        except NotSecretAccess as exc:
            out.skipped[str(exc)] += 1
            out.skipped_records += 1
        except (msgspec.DecodeError, ParseError, RecursionError) as exc:
            out.dead.append(DeadLetter.of(record, file, _reason(exc), NAME))
            out.dead_records += 1

    def flush(self, file: str) -> FeedResult:
        """End of input: every request still waiting counts alone."""
        out = FeedResult()
        for key in list(self._pending):
            self._emit_lone(key, out, file)
        return out

    def pending_position(self) -> tuple[int, int] | None:
        """(byte offset, line) of the oldest request still waiting for its response."""
        for _, record, _ in self._pending.values():
            return record[2], record[1]  # insertion order is file order: first is oldest
        return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "not valid JSON: nested too deep (depth limit exceeded)"
    if isinstance(exc, msgspec.ValidationError):
        return f"not a Vault audit entry: {exc}"
    if isinstance(exc, msgspec.DecodeError):
        return f"not valid JSON: {exc}"
    return str(exc)


SPEC = SourceSpec(
    name=NAME,
    looks_like=looks_like,
    new_parser=VaultParser,
    prefixed=True,
    description="HashiCorp Vault / OpenBao audit device (request/response JSON entries)",
)
