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
from functools import lru_cache
from typing import Any

import msgspec

from pipeline.errors import ParseError
from pipeline.errortext import clean_error
from pipeline.record import PROVISIONAL_NOTE, EventRow, clip, synthetic_id, to_micros
from pipeline.sources.base import DeadLetter, FeedResult, Record, SourceSpec, json_start

NAME = "vault"


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


class Entry(msgspec.Struct, gc=False):
    """The fields of an audit entry secretwatch reads; everything else is skipped unparsed."""

    type: str
    time: str | None = None
    auth: _Auth | None = None
    request: _Request | None = None
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


def _fast_request_id(line: bytes) -> str | None:
    """The id of a compact request entry, read without decoding the line; None when the
    line is not plainly one (then it is decoded). Only pairing relies on this: a request
    that ends up counting alone is fully decoded and checked before it becomes an event."""
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
LOGIN_NOTE = "identity: the user named in the login path (no token identity)"
_ROTATE = re.compile(r"/rotate(-root|-role)?(/|$)")
_UUIDISH = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-?")
_MASKED = {"", "****"}
_HUMAN_METHODS = ("userpass-", "ldap-", "oidc-", "github-", "okta-", "radius-")


def looks_like(doc: dict[str, Any]) -> bool:
    """A Vault audit entry: `type` request/response with a `request` object."""
    return doc.get("type") in ("request", "response") and isinstance(doc.get("request"), dict)


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
    path: str, op: str, mount_type: str | None, mount_point: str | None
) -> tuple[str | None, str]:
    """Canonical secret path and action for a request.

    KV v2 `secret/data/x` and `secret/metadata/x` both name `secret/x`; a `list` keeps the
    folder (`secret/apps/`). Token housekeeping and logins are `auth`, `sys/` is `other`:
    kept, but not secret access.
    """
    if path.startswith("auth/") or path.startswith("sys/leases/"):
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
        if part in _KV2_PARTS and (mount_type == "kv" or part in ("data", "metadata")):
            secret = mount + name
            if part == "metadata" and op == "read":
                action = "list"  # metadata reveals versions, not the value
            return secret, _KV2_ACTION.get(part, action)
    if _ROTATE.search(path):
        return path, "rotate"
    if _DYNAMIC.search(path) and op in ("read", "update", "create"):
        return path, "read"  # issuing dynamic credentials is reading a secret
    if mount_type in ("transit", None) and op in ("update", "create") and _PLAINTEXT.search(path):
        return path, "read"  # decrypting answers the plaintext, as KMS Decrypt does
    return path, action


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


_HOURS: dict[str, int] = {}  # "YYYY-MM-DDTHH" -> its microseconds since 1970
_SECONDS: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS." -> the same, of the second
_SCALE = (0, 100_000, 10_000, 1_000, 100, 10, 1, 1, 1, 1)  # by count of fraction digits


def event_micros(text: str) -> int:
    """`to_micros` of an audit entry's time. Go's RFC 3339 in UTC (`...THH:MM:SS.fffffffffZ`,
    0-9 fractional digits) is read from its second, looked up, plus the fraction; the first
    time of a second from its hour, looked up, plus minutes, seconds and fraction (UTC has no
    other steps); anything else, and the first time of each hour, goes through `to_micros`
    itself, so all three always agree (tests/sources/test_ingest_fast_paths.py).

    >>> event_micros("2020-12-01T20:29:04.356625452Z"), event_micros("2020-12-01T20:29:04.5Z")
    (1606854544356625, 1606854544500000)
    """
    second = _SECONDS.get(text[:20])  # Vault's usual: a second seen before ("...:SS.")
    if second is not None:
        digits = text[20:-1]
        if text[-1:] == "Z" and digits.isdigit() and digits.isascii() and len(digits) < 10:
            return second + int(digits[:6]) * _SCALE[len(digits)]
    fraction = _fraction(text)
    hour = _HOURS.get(text[:13]) if fraction >= 0 else None
    if hour is not None:
        value = hour + fraction
    else:
        value = to_micros(text)
        if fraction < 0 or not (text[10] == "T" and text[4] == "-" == text[7]):
            return value
        if len(_HOURS) >= 100_000:
            _HOURS.clear()
        _HOURS[text[:13]] = value - fraction
    if text[19:20] == ".":
        if len(_SECONDS) >= 100_000:
            _SECONDS.clear()
        _SECONDS[text[:20]] = value - fraction % 1_000_000
    return value


def _fraction(text: str) -> int:
    """Microseconds past the hour of `...:MM:SS.<0-9 digits>Z` (truncated, as `to_micros`
    reads them), or -1 for any other ending."""
    minutes, seconds, digits = text[14:16], text[17:19], text[20:-1]
    if (
        text[13:14] != ":"
        or text[16:17] != ":"
        or text[-1:] != "Z"
        or not (minutes + seconds).isdigit()
        or not (minutes + seconds).isascii()
        or minutes > "59"
        or seconds > "59"
    ):
        return -1
    past = (int(minutes) * 60 + int(seconds)) * 1_000_000
    if len(text) == 20:
        return past
    if text[19] == "." and len(digits) < 10 and digits.isdigit() and digits.isascii():
        return past + int(digits[:6]) * _SCALE[len(digits)]
    return -1


_row = tuple.__new__  # EventRow's own __new__ is Python code: build the tuple directly


def normalize(entry: Entry, backend: str | None, event_id: str) -> EventRow:
    """One event from an entry (the response when there is one)."""
    request = entry.request
    if request is None or entry.time is None:
        raise ParseError("vault entry lacks `request` or `time`")
    identity, kind = identity_of(entry.auth)
    path = request.path or ""
    operation = request.operation or ""
    note = None if entry.type == "response" else PROVISIONAL_NOTE
    if identity == "unknown" and path.startswith("auth/"):
        user = login_user(path)
        if user:
            identity, kind = user, "human"
            note = note or LOGIN_NOTE  # a provisional note stays exact: stores match it
    secret, action = secret_and_action(path, operation, request.mount_type, request.mount_point)
    namespace = request.namespace
    if namespace is not None and namespace.path and secret:
        secret = namespace.path.rstrip("/") + "/" + secret
    agent = None
    if request.headers is not None and request.headers.user_agent:
        agent = request.headers.user_agent[0]
        if len(agent) > 256:
            agent = clip(agent)
    error = entry.error
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
            _outcome(error) if error else "success",
            request.remote_address,
            agent,
            request.id if request.id not in _MASKED else None,
            clip(clean_error(error)) if error else None,
            note,
        ),
    )


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

    def feed(self, records: list[Record], file: str) -> FeedResult:
        out = FeedResult()
        rows, where, pending, answered = out.rows, out.where, self._pending, self._answered
        backend, seen = self.backend, self._seen
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
                    key = pair_key(entry)
                elif raw.endswith(_REQUEST_END):
                    entry = _decode_head(raw)
                    if entry.type == "response":
                        entry = _decode(raw)
                    key = pair_key(entry)
                elif raw.find(_RESPONSE_HINT, 0, 120) >= 0:
                    entry = _decode(raw)
                    key = pair_key(entry)
                else:
                    fast_id = _fast_request_id(raw)
                    if fast_id is not None:
                        key = fast_id
                        if key in answered:
                            out.consumed += 1
                        else:
                            if key in pending:
                                self._emit_lone(key, out, file)
                            pending[key] = (None, record, seen)
                        continue
                    entry = _decode_response(raw) if raw.endswith(_RESPONSE_END) else None
                    if entry is None:
                        entry = _decode_head(raw)
                        if entry.type == "response":
                            entry = _decode(raw)
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
                    rows.append(normalize(entry, backend, event_id))  # type: ignore[arg-type]
                    where.append((record[1], record[2]))
                    if waiting:
                        del pending[key]
                    out.consumed += 2 if waiting else 1
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
        self._expire(out, file)
        if len(answered) > ANSWERED_MEMORY:
            for key in list(answered)[: len(answered) - ANSWERED_MEMORY // 2]:
                del answered[key]
        return out

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
            self._emit_lone(key, out, file)

    def _emit_lone(self, key: str, out: FeedResult, file: str) -> None:
        head, record, _ = self._pending.pop(key)
        raw = bytes(record[0])
        try:
            entry = _decode(raw[json_start(raw) :])
            if entry.type != "request":
                raise ParseError(f"vault entry `type` is {entry.type!r}, not request/response")
            out.rows.append(normalize(entry, self.backend, self._event_id(key, head or entry)))
            out.where.append((record[1], record[2]))
            out.consumed += 1
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
