"""Property-based tests for every registered parser, and for redaction.

Whatever bytes a parser is fed, nothing escapes `feed()`/`flush()`, every record fed ends up
consumed, skipped or dead-lettered (exactly once), every dead letter says where and why, and
every event satisfies the `AccessEvent` contract. The registry is read when the tests run, so
formats added later are covered without touching this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import SecretwatchError
from pipeline.record import to_event
from pipeline.redact import redact_raw
from pipeline.sources import SOURCES, new_parser
from pipeline.sources.base import FeedResult, Record, unwrap
from pipeline.sources.framing import file_records

REPO = Path(__file__).resolve().parents[2]
MAX_RECORD = 64 * 1024  # larger records are left out of the corpus to keep examples fast
MAX_FILE_RECORDS = 80

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Real-looking records of every format the project reads, written here (not copied), so
# the corpus covers formats whose fixtures are not in the tree.
INLINE: list[dict] = [
    {
        "time": "2026-05-01T03:10:00.104000000Z",
        "type": "request",
        "auth": {
            "client_token": "hmac-sha256:aa",
            "display_name": "approle",
            "policies": ["default", "billing"],
            "metadata": {"role_name": "billing-worker"},
            "entity_id": "1f3b0c2a-0000-4000-8000-000000000002",
        },
        "request": {
            "id": "33333333-3333-4333-8333-000000000001",
            "operation": "read",
            "mount_type": "kv",
            "mount_point": "secret/",
            "path": "secret/data/apps/billing/db",
            "remote_address": "10.1.2.4",
            "remote_port": 50000,
            "namespace": {"id": "root"},
            "headers": {"user-agent": ["vault-agent/1.15"]},
        },
    },
    {
        "time": "2026-05-01T03:10:00.204000000Z",
        "type": "response",
        "auth": {
            "display_name": "approle",
            "policies": ["default", "billing"],
            "metadata": {"role_name": "billing-worker"},
        },
        "request": {
            "id": "33333333-3333-4333-8333-000000000001",
            "operation": "read",
            "mount_type": "kv",
            "mount_point": "secret/",
            "path": "secret/data/apps/billing/db",
            "remote_address": "10.1.2.4",
            "remote_port": 50000,
        },
        "response": {"data": {"data": {"password": "hmac-sha256:bb"}}},
        "error": "1 error occurred:\n\t* permission denied\n\n",
    },
    {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:deploy",
            "arn": "arn:aws:sts::123456789012:assumed-role/deploy/session",
            "accountId": "123456789012",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": "arn:aws:iam::123456789012:role/deploy",
                    "userName": "deploy",
                }
            },
        },
        "eventTime": "2026-05-01T03:10:00Z",
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "GetSecretValue",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "10.0.0.1",
        "userAgent": "aws-cli/2.15",
        "requestParameters": {"secretId": "prod/db"},
        "responseElements": None,
        "requestID": "6e8f0c62-0000-4000-8000-000000000001",
        "eventID": "6e8f0c62-0000-4000-8000-000000000002",
        "readOnly": True,
        "eventType": "AwsApiCall",
        "recipientAccountId": "123456789012",
    },
    {
        "Records": [
            {
                "eventTime": "2026-05-01T03:11:00Z",
                "eventSource": "ssm.amazonaws.com",
                "eventName": "GetParameter",
                "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/bob"},
                "requestParameters": {"name": "/prod/db/password", "withDecryption": True},
                "errorCode": "AccessDenied",
                "eventID": "6e8f0c62-0000-4000-8000-000000000003",
            }
        ]
    },
    {
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "status": {},
            "authenticationInfo": {"principalEmail": "ci@proj.iam.gserviceaccount.com"},
            "requestMetadata": {"callerIp": "10.0.0.2", "callerSuppliedUserAgent": "gcloud"},
            "serviceName": "secretmanager.googleapis.com",
            "methodName": "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion",
            "resourceName": "projects/123/secrets/db/versions/1",
        },
        "insertId": "abc123",
        "resource": {"type": "audited_resource", "labels": {"project_id": "proj"}},
        "timestamp": "2026-05-01T03:12:00.123456Z",
        "logName": "projects/proj/logs/cloudaudit.googleapis.com%2Fdata_access",
    },
    {
        "time": "2026-05-01T03:13:00.1234567Z",
        "category": "AuditEvent",
        "operationName": "SecretGet",
        "resourceId": "/SUBSCRIPTIONS/X/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV1",
        "resultType": "Success",
        "resultSignature": "OK",
        "durationMs": "12",
        "callerIpAddress": "10.0.0.3",
        "correlationId": "5b0c0000-0000-4000-8000-000000000001",
        "identity": {"claim": {"oid": "11111111-2222-3333-4444-555555555555", "appid": "app"}},
        "properties": {"id": "https://kv1.vault.azure.net/secrets/db/abc", "httpStatusCode": 200},
    },
    {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": "5b0c0000-0000-4000-8000-000000000002",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/shop/secrets/db",
        "verb": "get",
        "user": {"username": "system:serviceaccount:shop:orders-api", "groups": []},
        "sourceIPs": ["10.0.0.4"],
        "userAgent": "kubectl/v1.30",
        "objectRef": {"resource": "secrets", "namespace": "shop", "name": "db", "apiVersion": "v1"},
        "responseStatus": {"code": 200},
        "responseObject": {"kind": "Secret", "data": {"password": "aHVudGVyMg=="}},
        "requestReceivedTimestamp": "2026-05-01T03:14:00.000000Z",
        "stageTimestamp": "2026-05-01T03:14:00.010000Z",
    },
]


def _corpus_roots() -> list[Path]:
    roots = [REPO / "tests" / "fixtures"]
    for shared in (REPO.parent / "shared" / "samples", Path("/work/shared/samples")):
        if shared.is_dir():
            roots.append(shared)
            break
    return roots


def _load_corpus() -> tuple[list[bytes], list[list[list[bytes]]]]:
    """All records of the fixtures and samples (and INLINE), and the record lists of their
    files grouped by format folder (so a folder of 46 files is not 46 times as likely)."""
    records: list[bytes] = [orjson.dumps(doc) for doc in INLINE]
    groups: dict[str, list[list[bytes]]] = {"inline": [records[:2]]}
    seen: set[bytes] = set(records)
    for root in _corpus_roots():
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.suffix in {".md", ".txt"}:
                continue
            try:
                raws = [raw for chunk in file_records(path) for raw, _, _ in chunk]
            except (SecretwatchError, OSError):
                continue
            raws = [bytes(r) for r in raws if len(r) <= MAX_RECORD]
            if raws and len(raws) <= MAX_FILE_RECORDS:
                groups.setdefault(path.relative_to(root).parts[0], []).append(raws)
            for raw in raws:
                if raw not in seen:
                    seen.add(raw)
                    records.append(raw)
    return records, [groups[k] for k in sorted(groups)]


CORPUS, FILE_GROUPS = _load_corpus()
DOCS: list[object] = []
for _raw in CORPUS:
    try:
        DOCS.append(orjson.loads(_raw))
    except orjson.JSONDecodeError:
        pass
assert len(DOCS) >= len(INLINE)


# -- strategies ----------------------------------------------------------------------------

KEYS = st.sampled_from(
    [
        "type",
        "time",
        "request",
        "response",
        "auth",
        "id",
        "path",
        "operation",
        "error",
        "Records",
        "eventTime",
        "eventSource",
        "eventName",
        "userIdentity",
        "kind",
        "items",
        "verb",
        "objectRef",
        "protoPayload",
        "category",
        "operationName",
        "identity",
        "properties",
        "detail",
        "detail-type",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["request", "response", "2026-05-01T00:00:00Z", "secrets", "Event", ""]),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.one_of(KEYS, st.text(max_size=8)), children, max_size=5)
    ),
    max_leaves=12,
)
# Values of the wrong type for whatever slot they land in.
WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=5), SCALARS, max_size=3),
    st.text(max_size=12),
    st.just("not-a-timestamp"),
    st.just({}),
    st.just([]),
)


def _paths(doc: object, prefix: tuple = (), out: list | None = None, depth: int = 0) -> list:
    """Every path (tuple of keys/indexes) to a node of `doc`, breadth-limited."""
    out = [] if out is None else out
    if len(out) > 400 or depth > 8:
        return out
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.append((*prefix, key))
            _paths(value, (*prefix, key), out, depth + 1)
    elif isinstance(doc, list):
        for i, value in enumerate(doc[:5]):
            out.append((*prefix, i))
            _paths(value, (*prefix, i), out, depth + 1)
    return out


def _replace(doc: object, path: tuple, value: object) -> object:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        copy = dict(doc)
        copy[head] = _replace(doc[head], rest, value)
        return copy
    assert isinstance(doc, list)
    items = list(doc)
    items[head] = _replace(doc[head], rest, value)
    return items


@st.composite
def mutated(draw: st.DrawFn, doc: object | None = None) -> bytes:
    """A real-looking record with one to three fields replaced by wrongly typed values."""
    if doc is None:
        doc = draw(st.sampled_from(DOCS))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        top = [p for p in paths if len(p) == 1]
        if top and draw(st.booleans()):
            paths = top  # half the time a top-level field: where formats keep time and type
        if not paths:
            break
        doc = _replace(doc, draw(st.sampled_from(paths)), draw(WRONG))
    return json.dumps(doc, separators=(",", ":")).encode()  # json: integers beyond 64 bits


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    raw = draw(st.sampled_from(CORPUS))
    return raw[: draw(st.integers(0, len(raw)))]


RANDOM_BYTES = st.binary(max_size=300)
RANDOM_JSON = JSON_VALUES.map(orjson.dumps)
VALID = st.sampled_from(CORPUS)
ONE_RECORD = st.one_of(RANDOM_BYTES, truncated(), RANDOM_JSON, mutated(), VALID)


@st.composite
def file_with_damage(draw: st.DrawFn) -> list[bytes]:
    """The records of one real file, in order, some damaged: pairs stay adjacent, so a
    stateful parser meets a good request followed by its broken response."""
    raws = list(draw(st.sampled_from(draw(st.sampled_from(FILE_GROUPS)))))
    for i, raw in enumerate(raws):
        how = draw(st.sampled_from(["keep", "keep", "keep", "mutate", "truncate", "drop"]))
        if how == "mutate":
            try:
                raws[i] = draw(mutated(orjson.loads(raw)))
            except orjson.JSONDecodeError:
                pass
        elif how == "truncate":
            raws[i] = raw[: draw(st.integers(0, len(raw)))]
        elif how == "drop":
            raws[i] = b""
    return [r for r in raws if r.strip()]


def _frame(raws: list[bytes]) -> list[Record]:
    records: list[Record] = []
    offset = 0
    for line, raw in enumerate(raws, start=1):
        records.append((raw, line, offset))
        offset += len(raw) + 1
    return records


def audit_records(name: str, raw: bytes) -> int:
    """How many audit records one framed record holds: a Vault line is one; a document
    counts each record it wraps (`Records`, `items`, an array), and at least one."""
    if name == "vault":
        return 1
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 1
    return max(1, sum(1 for _ in unwrap(doc)))


def _check(name: str, raws: list[bytes], cuts: list[int]) -> FeedResult:
    """Feed `raws` to a fresh parser in chunks split at `cuts`, flush, check invariants."""
    records = _frame(raws)
    parser = new_parser(name)
    total = FeedResult()
    bounds = sorted({0, len(records), *[c % (len(records) + 1) for c in cuts]})
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        total.extend(parser.feed(records[lo:hi], "fuzz.log"))
    total.extend(parser.flush("fuzz.log"))
    assert parser.pending_position() is None, "flush must leave nothing pending"
    expected = sum(audit_records(name, bytes(raw)) for raw, _, _ in records)
    assert total.accounted == expected, (
        f"{name}: fed {len(records)} ({expected} audit records), consumed {total.consumed} + "
        f"skipped {total.skipped_records} + dead {total.dead_records}"
    )
    assert len(total.dead) == total.dead_records, "each dead record is one dead letter"
    assert len(total.where) == len(total.rows), "every row knows the record it came from"
    for letter in total.dead:
        assert letter.file == "fuzz.log"
        assert 1 <= letter.line <= len(records)
        assert isinstance(letter.reason, str) and letter.reason.strip()
        assert isinstance(letter.raw, bytes)
    for row in total.rows:
        to_event(row)  # raises if a row breaks the AccessEvent contract
    return total


NAMES = sorted(SOURCES)
CUTS = st.lists(st.integers(0, 64), max_size=3)


def test_registry_is_not_empty() -> None:
    assert "vault" in NAMES
    assert len(CORPUS) > len(INLINE)  # the fixtures were found


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(raws=st.lists(RANDOM_BYTES, max_size=8), cuts=CUTS)
def test_random_bytes(name: str, raws: list[bytes], cuts: list[int]) -> None:
    _check(name, raws, cuts)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(raws=st.lists(truncated(), max_size=6), cuts=CUTS)
def test_truncated_records(name: str, raws: list[bytes], cuts: list[int]) -> None:
    _check(name, raws, cuts)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(raws=st.lists(RANDOM_JSON, max_size=6), cuts=CUTS)
def test_random_json_values(name: str, raws: list[bytes], cuts: list[int]) -> None:
    _check(name, raws, cuts)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(raws=st.lists(mutated(), min_size=1, max_size=6), cuts=CUTS)
def test_wrongly_typed_fields(name: str, raws: list[bytes], cuts: list[int]) -> None:
    _check(name, raws, cuts)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(raws=st.lists(ONE_RECORD, max_size=10), cuts=CUTS)
def test_mixed_records(name: str, raws: list[bytes], cuts: list[int]) -> None:
    _check(name, raws, cuts)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(raws=file_with_damage(), cuts=CUTS)
def test_damaged_files(name: str, raws: list[bytes], cuts: list[int]) -> None:
    _check(name, raws, cuts)


@pytest.mark.parametrize("name", NAMES)
def test_whole_corpus_in_one_feed(name: str) -> None:
    """Every real record, valid or not for this parser, in one go."""
    result = _check(name, list(CORPUS), [])
    assert result.accounted == sum(audit_records(name, raw) for raw in CORPUS)


# -- redaction -----------------------------------------------------------------------------

MARKER = "S3cr3t-"
SECRET_TEXT = st.text(min_size=1, max_size=40).map(lambda s: MARKER + s)


@st.composite
def secret_documents(draw: st.DrawFn) -> tuple[bytes, str]:
    """A JSON document holding a secret under a sensitive key, as a source would write it."""
    key = draw(st.sampled_from(["SecretString", "data", "stringData"]))
    secret = draw(SECRET_TEXT)
    value = draw(
        st.sampled_from(
            [
                secret,
                {"password": secret},
                {"a": "x", "b": {"c": [secret]}},
                [secret, secret],
                {"nested": {"data": secret}},
            ]
        )
    )
    shape = draw(st.sampled_from(["cloudtrail", "k8s", "flat", "list"]))
    if shape == "cloudtrail":
        doc: object = {
            "eventName": "GetSecretValue",
            "requestParameters": {"secretId": "prod/db"},
            "responseElements": {"arn": "arn:aws:secretsmanager:x", key: value},
        }
    elif shape == "k8s":
        doc = {
            "kind": "Event",
            "objectRef": {"resource": "secrets", "name": "db"},
            "responseObject": {"kind": "Secret", "metadata": {"name": "db"}, key: value},
        }
    elif shape == "flat":
        doc = {"before": 1, key: value, "after": "ok"}
    else:
        doc = [{"x": 1}, {key: value}]
    style = draw(st.sampled_from(["compact", "spaced", "indented", "ascii"]))
    if style == "compact":
        raw = orjson.dumps(doc)
    elif style == "spaced":
        raw = json.dumps(doc, ensure_ascii=False).encode()
    elif style == "indented":
        raw = json.dumps(doc, indent=draw(st.integers(0, 4)), ensure_ascii=False).encode()
    else:
        raw = json.dumps(doc).encode()
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw, secret


@settings(max_examples=200, deadline=None, database=None)
@given(case=secret_documents())
def test_redact_raw_never_keeps_secret_values(case: tuple[bytes, str]) -> None:
    raw, _secret = case
    out = redact_raw(raw)
    assert MARKER.encode() not in out, out


@settings(max_examples=100, deadline=None, database=None)
@given(raw=st.binary(max_size=400), limit=st.integers(16, 512))
def test_redact_raw_total_on_any_bytes(raw: bytes, limit: int) -> None:
    out = redact_raw(raw, limit)
    assert isinstance(out, bytes)
    assert len(out) <= limit + len(b"...[clipped]")
