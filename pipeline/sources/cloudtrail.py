"""AWS CloudTrail records about secrets: Secrets Manager, SSM Parameter Store, KMS Decrypt and
EC2 GetPasswordData.

A trail mixes every AWS API, so most records are well-formed but not about secrets; they are
skipped with a reason naming the event source (a low-cardinality counter key). Only names and
ARNs are read: `responseElements` may carry values and is consulted for `arn`/`name` alone.

KMS calls that Secrets Manager or SSM make on a caller's behalf (`GetSecretValue`,
`GetParameter` with decryption, `PutSecretValue`: `invokedBy`/`sourceIPAddress` a service or
`AWS Internal`, the encryption context naming the secret) are not a second read by that
caller: they are kept, linked to the secret and naming the service, as action `other`
(`DERIVED_NOTE`), which no baseline or evidence counts as an access.

An assumed role is the identity; when its session name is a person (an SSO role, or an
e-mail address), that person is the event's `actor`.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from pipeline.errors import NotSecretAccess, ParseError
from pipeline.errortext import clean_error
from pipeline.record import EventRow, clip, synthetic_id, to_micros
from pipeline.sources import control_plane
from pipeline.sources.addresses import split_address
from pipeline.sources.base import document_source, obj, text

NAME = "aws"

_SM = "secretsmanager.amazonaws.com"
_SSM = "ssm.amazonaws.com"
_KMS = "kms.amazonaws.com"
_EC2 = "ec2.amazonaws.com"

_OPERATIONS = {
    "read": "GetSecretValue BatchGetSecretValue GetParameter GetParameters GetParametersByPath"
    " GetParameterHistory Decrypt GetPasswordData",
    "list": "ListSecrets ListSecretVersionIds DescribeSecret GetResourcePolicy DescribeParameters",
    "write": "PutSecretValue UpdateSecret CreateSecret PutParameter RestoreSecret TagResource"
    " UntagResource PutResourcePolicy UpdateSecretVersionStage LabelParameterVersion"
    " UnlabelParameterVersion CancelRotateSecret",
    "delete": "DeleteSecret DeleteParameter DeleteParameters StartSecretVersionDelete"
    " EndSecretVersionDelete DeleteResourcePolicy",
    "rotate": "RotateSecret RotationSucceeded",  # the latter: scheduled rotation, logged by AWS
}
ACTIONS: dict[str, str] = {op: act for act, ops in _OPERATIONS.items() for op in ops.split()}
_DENIED = re.compile(r"^AccessDenied|UnauthorizedOperation$|^UnauthorizedAccess$|NotAuthorized")

# Secrets Manager appends "-" and 6 random characters to a secret's name in its ARN.
_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")

Targets = list[tuple[str | None, str | None]]  # (secret, note) for each row to emit


def looks_like(doc: dict[str, Any]) -> bool:
    """A CloudTrail record: bare, first of an S3 object `{"Records": [...]}`, or EventBridge."""
    records = doc.get("Records")
    if isinstance(records, list):
        doc = records[0] if records and isinstance(records[0], dict) else {}
    if "detail-type" in doc and isinstance(doc.get("detail"), dict):
        doc = doc["detail"]
    return (
        isinstance(doc.get("eventSource"), str)
        and "eventName" in doc
        and ("eventTime" in doc or "eventID" in doc)
    )


_str = partial(text, source="cloudtrail")


# KMS calls a service makes with a secret's or parameter's data key, by the context key
# naming it: the service that made it.
_DERIVED_BY = {"SecretARN": _SM, "PARAMETER_ARN": _SSM}
_KMS_KEY_USES = {"Decrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "Encrypt"}
DERIVED_NOTE = "derived: {event} made by {service} for this caller's call on the secret"


def derived_by(doc: dict[str, Any], ui: dict[str, Any]) -> str | None:
    """The service (`secretsmanager.amazonaws.com`, `ssm.amazonaws.com`) that made this KMS
    call on the caller's behalf, or None for a call the caller made itself.

    >>> ctx = {"encryptionContext": {"SecretARN": "arn:aws:secretsmanager:r:1:secret:x"}}
    >>> derived_by({"eventSource": _KMS, "eventName": "Decrypt", "requestParameters": ctx,
    ...     "sourceIPAddress": "secretsmanager.amazonaws.com"}, {})
    'secretsmanager.amazonaws.com'
    """
    if doc.get("eventSource") != _KMS or doc.get("eventName") not in _KMS_KEY_USES:
        return None
    by = ui.get("invokedBy")
    if not isinstance(by, str):
        by = doc.get("sourceIPAddress")
    if not isinstance(by, str) or not (by == "AWS Internal" or by.endswith(".amazonaws.com")):
        return None
    req = doc.get("requestParameters")
    context = req.get("encryptionContext") if isinstance(req, dict) else None
    if not isinstance(context, dict):
        return None
    for key, service in _DERIVED_BY.items():
        if isinstance(context.get(key), str):
            return by if by.endswith(".amazonaws.com") else service
    return None


def _check_scope(source: str, event: str, derived: bool = False) -> None:
    """Raise NotSecretAccess unless this API call touches secrets."""
    if source == _SM or (source == _KMS and (event == "Decrypt" or derived)):
        return
    if (source == _SSM and "Parameter" in event) or (source == _EC2 and event == "GetPasswordData"):
        return
    if source == _KMS:
        raise NotSecretAccess("cloudtrail: kms.amazonaws.com call other than Decrypt")
    if source == _SSM:
        raise NotSecretAccess("cloudtrail: ssm.amazonaws.com call not about parameters")
    raise NotSecretAccess(f"cloudtrail: not a secrets API ({source[:60]})")


def actor_of(ui: dict[str, Any], kind: str) -> str | None:
    """The person behind an assumed role, when its session name is one: any session of a
    role people sign in to (SSO: `AWSReservedSSO_*`, `aws-reserved/sso.amazonaws.com`), or a
    session named by an e-mail address. Instance ids and SDK session names are not people.

    >>> arn = "arn:aws:sts::1:assumed-role/AWSReservedSSO_Admin_0123/alice@example.com"
    >>> actor_of({"type": "AssumedRole", "arn": arn}, "human")
    'alice@example.com'
    >>> actor_of({"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/r/i-0abc"}, "service")
    """
    if ui.get("type") != "AssumedRole":
        return None
    arn = ui.get("arn")
    if not isinstance(arn, str) or ":assumed-role/" not in arn:
        return None
    session = arn.split(":assumed-role/", 1)[1].partition("/")[2]
    if not session or (kind != "human" and "@" not in session):
        return None
    return clip(session, 128)


def identity_of(ui: dict[str, Any]) -> tuple[str, str, str | None]:
    """(identity, kind, note). For an assumed role the role, never the session name, which
    changes with every session."""
    kind = _str(ui.get("type"), "userIdentity.type")
    arn = _str(ui.get("arn"), "userIdentity.arn")
    account = _str(ui.get("accountId"), "userIdentity.accountId")
    if kind == "AssumedRole":
        context = obj(ui.get("sessionContext"), "userIdentity.sessionContext")
        issuer = obj(context.get("sessionIssuer"), "userIdentity.sessionContext.sessionIssuer")
        role = _str(issuer.get("arn"), "sessionIssuer.arn") or _role_from_session(arn)
        if not role:
            return arn or "unknown", "unknown", "assumed role without a role ARN"
        human = role.rsplit("/", 1)[-1].startswith("AWSReservedSSO_") or "sso.amazonaws.com" in role
        return role, "human" if human else "service", None
    if kind == "IAMUser":
        user = _str(ui.get("userName"), "userIdentity.userName")
        if arn or (user and account):
            return arn or f"arn:aws:iam::{account}:user/{user}", "human", None
        return "unknown", "unknown", "IAM user without arn or userName"
    if kind == "Root" and (arn or account):
        return arn or f"arn:aws:iam::{account}:root", "root", None
    invoked_by = _str(ui.get("invokedBy"), "userIdentity.invokedBy")
    if kind == "AWSService" or (kind is None and invoked_by):
        return invoked_by or "unknown", "service", None
    who = arn or _str(ui.get("principalId"), "userIdentity.principalId")
    if who:
        return who, "unknown", None
    return "unknown", "unknown", "userIdentity names no principal" if ui else "no userIdentity"


def _role_from_session(arn: str | None) -> str | None:
    """arn:aws:sts::ACCT:assumed-role/ROLE/SESSION -> arn:aws:iam::ACCT:role/ROLE."""
    parts = (arn or "").split(":", 5)
    if len(parts) < 6 or not parts[5].startswith("assumed-role/"):
        return None
    return f"arn:{parts[1]}:iam::{parts[4]}:role/{parts[5].split('/')[1]}"


def secret_arn(secret_id: str, region: str, account: str, name: str | None = None) -> str:
    """Canonical Secrets Manager ARN: random suffix dropped, a plain name made an ARN.

    >>> secret_arn("arn:aws:secretsmanager:us-east-1:1:secret:db-pw-L0CnJd", "x", "y")
    'arn:aws:secretsmanager:us-east-1:1:secret:db-pw'
    """
    if not secret_id.startswith("arn:"):
        return f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}"
    head, sep, tail = secret_id.rpartition(":secret:")
    if not sep:
        return secret_id
    if name and (tail == name or (tail.startswith(name + "-") and len(tail) == len(name) + 7)):
        return f"{head}:secret:{name}"  # the name is known: no guessing at the suffix
    return f"{head}:secret:{_SUFFIX.sub('', tail)}"


def parameter_arn(name: str, region: str, account: str, folder: bool = False) -> str:
    """Canonical SSM parameter ARN; a version or label selector (`name:3`) is dropped.

    >>> parameter_arn("/credentials/db:3", "us-east-1", "1")
    'arn:aws:ssm:us-east-1:1:parameter/credentials/db'
    """
    if name.startswith("arn:"):
        head, sep, rest = name.partition(":parameter/")
        return f"{head}:parameter/{rest.split(':', 1)[0]}" if sep else name
    name = name.split(":", 1)[0].lstrip("/")
    if folder and name and not name.endswith("/"):
        name += "/"
    return f"arn:aws:ssm:{region}:{account}:parameter/{name}"


def _filters(items: object) -> str:
    """`key=v1,v2; key2=v3` for notes (filters hold tag keys and name prefixes, no values)."""
    parts = []
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and isinstance(item.get("values"), list):
            parts.append(f"{item.get('key')}={','.join(str(v) for v in item['values'])}")
    return "; ".join(parts)


def _names(value: object, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParseError(f"cloudtrail `requestParameters.{field}` must be a list of strings")
    return value


def _secretsmanager(
    event: str, doc: dict[str, Any], req: dict[str, Any], rg: str, acct: str
) -> Targets:
    if event in ("ListSecrets", "BatchGetSecretValue") and not req.get("secretIdList"):
        found = _filters(req.get("filters"))
        verb = "list" if event == "ListSecrets" else "batch"
        note = f"{verb} by filter: {found}" if found else None
        return [(f"arn:aws:secretsmanager:{rg}:{acct}:secret:*", note)]
    if event == "BatchGetSecretValue":
        return [
            (secret_arn(s, rg, acct), None) for s in _names(req["secretIdList"], "secretIdList")
        ]
    extra = obj(doc.get("additionalEventData"), "additionalEventData")
    resp = obj(doc.get("responseElements"), "responseElements")  # names only, never values
    name = _str(extra.get("Name"), "additionalEventData.Name") or _str(resp.get("name"), "name")
    secret_id = (
        _str(req.get("secretId"), "requestParameters.secretId")
        or _str(extra.get("ARN"), "additionalEventData.ARN")  # service events: deletion
        or _str(extra.get("SecretId"), "additionalEventData.SecretId")  # and rotation
        or _str(resp.get("arn") or resp.get("aRN"), "responseElements.arn")
        or _str(req.get("name"), "requestParameters.name")  # CreateSecret
        or name
    )
    if not secret_id:
        return [(None, "no secret id in record")]
    return [(secret_arn(secret_id, rg, acct, name), None)]


def _ssm(event: str, req: dict[str, Any] | None, rg: str, acct: str) -> Targets:
    if req is None and event == "DescribeParameters":  # dropped on throttled or failed calls
        return [(f"arn:aws:ssm:{rg}:{acct}:parameter/*", "requestParameters not logged")]
    if req is None:
        return [(None, "requestParameters not logged; parameter unknown")]
    if event == "DescribeParameters":
        return _describe_parameters(req, rg, acct)
    if event == "GetParametersByPath":
        path = _str(req.get("path"), "requestParameters.path") or "/"
        return [(parameter_arn(path, rg, acct, folder=True), None)]
    if req.get("names"):
        return [(parameter_arn(n, rg, acct), None) for n in _names(req["names"], "names")]
    name = _str(req.get("name"), "requestParameters.name")
    return [(parameter_arn(name, rg, acct), None) if name else (None, "no parameter name")]


def _describe_parameters(req: dict[str, Any], rg: str, acct: str) -> Targets:
    """A discovery call: the parameters it names, the folder it searches, or everything."""
    filters = req.get("parameterFilters")
    for f in filters if isinstance(filters, list) else ():
        if not isinstance(f, dict) or not isinstance(f.get("values"), list) or not f["values"]:
            continue
        key, option, values = f.get("key"), f.get("option", "Equals"), f["values"]
        if key == "Name" and option == "Equals":
            return [(parameter_arn(str(v), rg, acct), None) for v in values]
        if (key == "Path" or (key == "Name" and option == "BeginsWith")) and len(values) == 1:
            return [(parameter_arn(str(values[0]), rg, acct, folder=True), None)]
    found = _filters(filters) or _filters(req.get("filters"))
    return [(f"arn:aws:ssm:{rg}:{acct}:parameter/*", f"filter: {found}" if found else None)]


def _kms(req: dict[str, Any], resources: object, rg: str, acct: str) -> Targets:
    """The secret a Decrypt unwraps, named by its encryption context; else the key itself."""
    context = obj(req.get("encryptionContext"), "requestParameters.encryptionContext")
    if isinstance(context.get("SecretARN"), str):
        return [(secret_arn(context["SecretARN"], rg, acct), None)]
    if isinstance(context.get("PARAMETER_ARN"), str):
        return [(parameter_arn(context["PARAMETER_ARN"], rg, acct), None)]
    for res in resources if isinstance(resources, list) else ():
        arn = (res.get("ARN") or res.get("arn")) if isinstance(res, dict) else None
        if isinstance(arn, str) and ":key/" in arn:
            return [(arn, None)]
    key = _str(req.get("keyId"), "requestParameters.keyId")
    if not key:
        return [(None, "no key or encryption context in record")]
    if key.startswith("arn:"):
        return [(key, None)]
    return [(f"arn:aws:kms:{rg}:{acct}:{'' if key.startswith('alias/') else 'key/'}{key}", None)]


def _targets(source: str, event: str, doc: dict[str, Any], region: str, account: str) -> Targets:
    """The secrets a call names, each with what the parser assumed about it."""
    raw_req = doc.get("requestParameters")
    req = obj(raw_req, "requestParameters")
    if source == _SM:
        return _secretsmanager(event, doc, req, region, account)
    if source == _SSM:
        return _ssm(event, None if raw_req is None else req, region, account)
    if source == _KMS:
        return _kms(req, doc.get("resources"), region, account)
    instance = _str(req.get("instanceId"), "requestParameters.instanceId")
    if not instance:
        return [(None, "no instanceId in record")]
    return [(f"arn:aws:ec2:{region}:{account}:instance/{instance}/password-data", None)]


def parse(doc: dict[str, Any], backend: str | None) -> list[EventRow]:
    """One row per secret the call names (GetParameters fans out to one row per name)."""
    source = _str(doc.get("eventSource"), "eventSource")
    event = _str(doc.get("eventName"), "eventName")
    if not source or not event:
        raise ParseError("cloudtrail record lacks `eventSource` or `eventName`")
    ui = obj(doc.get("userIdentity"), "userIdentity")
    service = derived_by(doc, ui) if source == _KMS else None
    if not control_plane.aws_in_scope(source, event):
        _check_scope(source, event, service is not None)
    if doc.get("eventTime") is None:
        raise ParseError("cloudtrail record has no `eventTime`")
    ts = to_micros(doc["eventTime"])
    region = _str(doc.get("awsRegion"), "awsRegion") or "unknown"
    account = (
        _str(doc.get("recipientAccountId"), "recipientAccountId")
        or _str(ui.get("accountId"), "userIdentity.accountId")
        or "unknown"
    )
    identity, kind, id_note = identity_of(ui)
    req = doc.get("requestParameters")
    change = control_plane.aws(source, event, req if isinstance(req, dict) else {}, region, account)
    if change is not None and change.secret is not None:
        targets: Targets = [(change.secret, None)]  # a trail: not a secret the call names
    else:
        targets = _targets(source, event, doc, region, account)
    code = _str(doc.get("errorCode"), "errorCode")
    message = _str(doc.get("errorMessage"), "errorMessage")
    event_id = _str(doc.get("eventID"), "eventID")
    source_ip, ip_note = split_address(_str(doc.get("sourceIPAddress"), "sourceIPAddress"))
    action = ACTIONS.get(event, "other")
    notes = [id_note]
    if service is not None:
        action = "other"  # not a second read: the call that caused it is counted
        notes.append(DERIVED_NOTE.format(event=event, service=service))
    elif ip_note:
        notes.append(ip_note)
    if change is not None:
        action = change.action  # its operation is the event name
        notes.append(change.note)
    if not event_id:
        event_id = synthetic_id(
            NAME, doc["eventTime"], source, event, doc.get("requestID"), identity
        )
        notes.append("no eventID; id derived from record fields")
    base = EventRow(
        event_id,
        ts,
        NAME,
        backend or f"{account}/{region}",
        identity,
        kind,
        None,
        action,
        event,
        "success" if not code else "denied" if _DENIED.search(code) else "error",
        source_ip,
        clip(_str(doc.get("userAgent"), "userAgent")),
        _str(doc.get("requestID"), "requestID"),
        clip(clean_error(f"{code}: {message}" if message else code)) if code else None,
        None,
        actor_of(ui, kind),
    )
    return [
        base._replace(
            event_id=event_id if len(targets) == 1 else f"{event_id}#{i}",
            secret=secret,
            note="; ".join(n for n in (*notes, note) if n) or None,
        )
        for i, (secret, note) in enumerate(targets)
    ]


SPEC = document_source(
    NAME,
    looks_like,
    parse,
    "AWS CloudTrail (Secrets Manager, SSM parameters, KMS Decrypt, EC2 passwords)",
)
