"""CloudTrail log file integrity validation at ingest: the digest files CloudTrail delivers
beside its logs (`AWSLogs/<acct>/CloudTrail-Digest/<region>/YYYY/MM/DD/*.json.gz`) vouch for
each log object, and each digest for the one before it.

What is checked, as AWS's own `aws cloudtrail validate-logs` does:
- a log object's SHA-256 is that of its *uncompressed* content (the digest's `hashValue`;
  AWS hashes the inflated log, so a re-gzipped copy of an intact log still verifies);
- a digest's RSA signature (SHA256withRSA, PKCS#1 v1.5) over the string
  `digestEndTime \\n digestS3Bucket/digestS3Object \\n hex SHA-256 of the uncompressed digest
  \\n previousDigestSignature` (the text `null` for the first digest of a trail);
- the chain: `previousDigestHashValue` and `previousDigestSignature` equal the previous
  digest's hash and signature, when that digest is on disk.

The signature. CloudTrail keeps a digest's own signature in S3 object metadata
(`x-amz-meta-signature`), which a file copy loses; it cannot be inside the digest, whose
hash is part of what is signed. On disk it is read from a sidecar `<digest>.sig` (hex, as
`aws s3api head-object --query Metadata.signature --output text` prints it) or, failing
that, from the next digest's `previousDigestSignature`, which the next digest's own signature
covers. A digest with neither (the newest, copied without its sidecar) cannot be checked, and
the logs it covers are unverifiable rather than verified.

The public keys come from the config (`ingest.cloudtrail_public_key`, a PEM file holding one
or more keys: AWS rotates them, `aws cloudtrail list-public-keys` gives each as DER); a digest
verifies if any of them verifies it. Paths named inside a digest are only compared with the
files found on disk, never opened.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pipeline.errors import ConfigError

LOGS = "CloudTrail"
DIGESTS = "CloudTrail-Digest"
SIDECAR = ".sig"
MAX_DIGEST_BYTES = 64 << 20  # inflated; a digest of an hour's logs is kilobytes
_CHUNK = 1 << 20


@dataclass
class DigestReport:
    """What the digests said about the CloudTrail log objects of one ingest run."""

    digests: int = 0
    verified: list[str] = field(default_factory=list)
    unverifiable: list[tuple[str, str]] = field(default_factory=list)  # (object, why)
    mismatched: list[tuple[str, str]] = field(default_factory=list)  # (object, what)

    @property
    def ok(self) -> bool:
        return not self.mismatched


def is_digest(path: Path) -> bool:
    """A CloudTrail digest file (or its signature sidecar): never parsed as events."""
    return DIGESTS in path.parts


def is_log_object(path: Path) -> bool:
    """A CloudTrail log object as delivered: `.../CloudTrail/<region>/.../*.json.gz`."""
    return LOGS in path.parts and path.name.endswith(".json.gz")


def object_key(path: Path) -> str | None:
    """The S3 key tail of a file on disk, from `AWSLogs/` on (a bucket prefix before it
    varies with where it was copied to).

    >>> object_key(Path("/data/trail/AWSLogs/1/CloudTrail/eu-west-1/2024/01/02/x.json.gz"))
    'AWSLogs/1/CloudTrail/eu-west-1/2024/01/02/x.json.gz'
    """
    parts = path.parts
    if "AWSLogs" not in parts:
        return None
    return "/".join(parts[parts.index("AWSLogs") :])


def _tail(key: str) -> str | None:
    index = key.find("AWSLogs/")
    return key[index:] if index >= 0 else None


def load_keys(path: Path) -> list[rsa.RSAPublicKey]:
    """Every RSA public key in a PEM file (SubjectPublicKeyInfo or PKCS#1 blocks)."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"ingest.cloudtrail_public_key: cannot read {path} ({exc.strerror}); point it at "
            "a PEM file of CloudTrail's digest public keys"
        ) from None
    keys: list[rsa.RSAPublicKey] = []
    for block in text.split(b"-----END ")[:-1]:
        begin = block.find(b"-----BEGIN ")
        kind = block[begin:].split(b"\n", 1)[0]
        pem = block[begin:] + b"-----END " + kind[len(b"-----BEGIN ") :]
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError:
            continue
        if isinstance(key, rsa.RSAPublicKey):
            keys.append(key)
    if not keys:
        raise ConfigError(
            f"ingest.cloudtrail_public_key: {path} holds no RSA public key in PEM form; "
            "convert the keys of `aws cloudtrail list-public-keys` with `openssl rsa -pubin "
            "-inform DER -RSAPublicKey_in`"
        )
    return keys


@dataclass
class _Digest:
    path: Path
    body: dict[str, Any]
    sha256: str  # of the uncompressed content
    signature: str | None  # hex
    problem: str | None = None  # why it vouches for nothing


def _read_digest(path: Path) -> _Digest | str:
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read(MAX_DIGEST_BYTES + 1)
        if len(data) > MAX_DIGEST_BYTES:
            return f"digest {path.name} inflates past {MAX_DIGEST_BYTES >> 20} MiB"
        body = orjson.loads(data)
    except (OSError, EOFError, zlib.error, orjson.JSONDecodeError) as exc:
        return f"digest {path.name} unreadable ({type(exc).__name__})"
    if not isinstance(body, dict) or not isinstance(body.get("logFiles"), list):
        return f"digest {path.name} is not a CloudTrail digest"
    sidecar = path.with_name(path.name + SIDECAR)
    signature = None
    if sidecar.is_file():
        signature = sidecar.read_text(encoding="ascii", errors="replace").strip() or None
    return _Digest(path, body, hashlib.sha256(data).hexdigest(), signature)


def _string_to_sign(digest: _Digest) -> bytes:
    body = digest.body
    previous = body.get("previousDigestSignature") or "null"
    return (
        f"{body.get('digestEndTime')}\n{body.get('digestS3Bucket')}/{body.get('digestS3Object')}"
        f"\n{digest.sha256}\n{previous}"
    ).encode()


def _signed(digest: _Digest, keys: Sequence[rsa.RSAPublicKey]) -> bool:
    try:
        signature = bytes.fromhex(digest.signature or "")
    except ValueError:
        return False
    message = _string_to_sign(digest)
    for key in keys:
        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        return True
    return False


def _chain(digests: list[_Digest], keys: Sequence[rsa.RSAPublicKey] | None) -> None:
    """Borrow signatures from the next digest, check the chain, then each signature;
    mark each digest that vouches for nothing with its `problem`."""
    by_key = {_tail(str(d.body.get("digestS3Object", ""))): d for d in digests}
    for digest in digests:
        prev_key = _tail(str(digest.body.get("previousDigestS3Object") or ""))
        previous = by_key.get(prev_key) if prev_key else None
        if previous is not None and previous.signature is None:
            previous.signature = digest.body.get("previousDigestSignature")
    ordered = sorted(digests, key=lambda d: str(d.body.get("digestEndTime")))
    oldest = {(d.body.get("awsAccountId"), _region(d)): d for d in reversed(ordered)}
    for digest in ordered:
        prev_key = _tail(str(digest.body.get("previousDigestS3Object") or ""))
        previous = by_key.get(prev_key) if prev_key else None
        claimed = _tail(str(digest.body.get("digestS3Object", "")))
        if claimed != object_key(digest.path):
            digest.problem = f"digest {digest.path.name} names another place ({claimed})"
        elif previous is None:
            if (
                prev_key
                and oldest[(digest.body.get("awsAccountId"), _region(digest))] is not digest
            ):
                digest.problem = f"previous digest {prev_key} is missing (chain broken)"
        elif digest.body.get("previousDigestHashValue") != previous.sha256:
            digest.problem = f"previous digest {previous.path.name} changed (hash differs)"
        elif (
            previous.signature and digest.body.get("previousDigestSignature") != previous.signature
        ):
            digest.problem = (
                f"previous digest {previous.path.name} signature differs (chain broken)"
            )
        if digest.problem:
            continue
        if keys is None or digest.signature is None:
            continue  # unverifiable, said per log
        if not _signed(digest, keys):
            digest.problem = f"digest {digest.path.name} signature does not verify"


def _region(digest: _Digest) -> str:
    key = str(digest.body.get("digestS3Object", ""))
    parts = key.split("/")
    return parts[parts.index(DIGESTS) + 1] if DIGESTS in parts[:-1] else ""


def _digest_files(logs: Iterable[Path]) -> list[Path]:
    """The digests beside the logs: `<...>/CloudTrail-Digest` next to each `<...>/CloudTrail`."""
    folders: set[Path] = set()
    for log in logs:
        parts = log.parts
        index = len(parts) - 1 - parts[::-1].index(LOGS)
        folders.add(Path(*parts[:index], DIGESTS))
    found: set[Path] = set()
    for folder in folders:
        if folder.is_dir():
            found.update(p for p in folder.rglob("*.json.gz") if p.is_file())
    return sorted(found)


def log_sha256(path: Path) -> str:
    """SHA-256 of a log object's uncompressed content, streamed."""
    digest = hashlib.sha256()
    with gzip.open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(logs: Sequence[Path], keys: Sequence[rsa.RSAPublicKey] | None) -> DigestReport:
    """Check each CloudTrail log object against the digests beside it. `keys` None: no
    public key configured (hashes are still compared, but nothing counts as verified)."""
    report = DigestReport()
    digests: list[_Digest] = []
    for path in _digest_files(logs):
        read = _read_digest(path)
        if isinstance(read, str):
            report.mismatched.append((str(path), read))
        else:
            digests.append(read)
    report.digests = len(digests)
    _chain(digests, keys)
    covered: dict[str, tuple[_Digest, dict[str, Any]]] = {}
    for digest in digests:
        for entry in digest.body["logFiles"]:
            tail = _tail(str(entry.get("s3Object", ""))) if isinstance(entry, dict) else None
            if tail:
                covered[tail] = (digest, entry)
    for log in logs:
        name = str(log)
        key = object_key(log)
        if key is None or key not in covered:
            report.unverifiable.append((name, "no digest lists it"))
            continue
        digest, entry = covered[key]
        try:
            actual = log_sha256(log)
        except (OSError, EOFError, zlib.error) as exc:
            report.mismatched.append((name, f"unreadable as gzip ({type(exc).__name__})"))
            continue
        if actual != entry.get("hashValue"):
            report.mismatched.append((name, f"SHA-256 differs from {digest.path.name}"))
        elif digest.problem:
            report.mismatched.append((name, digest.problem))
        elif keys is None:
            report.unverifiable.append((name, "hash matches; no public key configured"))
        elif digest.signature is None:
            report.unverifiable.append(
                (name, f"hash matches; {digest.path.name} has no signature (sidecar .sig)")
            )
        else:
            report.verified.append(name)
    return report
