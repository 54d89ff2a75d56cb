"""CloudTrail digest validation at ingest (pipeline/sources/cloudtrail_digest.py): a folder
laid out as CloudTrail delivers it, gzipped log objects made of real fixture records, and
digests signed with a key pair made for the test, the way AWS signs them."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import ConfigError
from pipeline.ingest import Ingestor, not_a_log
from pipeline.sources.cloudtrail_digest import is_digest, load_keys, verify
from pipeline.store.duckdb import DuckDBStore

FIXTURE = Path(__file__).parents[1] / "fixtures/aws_cloudtrail/secretwatch__generated"
ACCOUNT, REGION, BUCKET = "111122223333", "us-east-1", "trail-bucket"
START = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(kind: str, at: datetime, name: str) -> str:
    return f"AWSLogs/{ACCOUNT}/{kind}/{REGION}/{at:%Y/%m/%d}/{name}"


def _write_gz(root: Path, key: str, data: bytes) -> Path:
    path = root / "bucket" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0))
    return path


def _sign(private: rsa.RSAPrivateKey, body: dict, inflated: bytes) -> str:
    previous = body["previousDigestSignature"] or "null"
    message = (
        f"{body['digestEndTime']}\n{body['digestS3Bucket']}/{body['digestS3Object']}\n"
        f"{hashlib.sha256(inflated).hexdigest()}\n{previous}"
    )
    return private.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()


class Trail:
    """Three hourly log objects, two digests: the first covers logs 0 and 1, the second
    (pointing back at the first) log 2; only the newest digest has a signature sidecar, as
    after `aws s3 sync` plus one `head-object`."""

    def __init__(self, root: Path, private: rsa.RSAPrivateKey) -> None:
        records = orjson.loads((FIXTURE / "generated_records.json").read_bytes())["Records"]
        self.root = root / "bucket"
        self.logs: list[Path] = []
        entries = []
        for i, part in enumerate((records[:4], records[4:8], records[8:])):
            at = START + timedelta(minutes=5 + 60 * (i // 2))
            key = _key(
                "CloudTrail", at, f"{ACCOUNT}_CloudTrail_{REGION}_{at:%Y%m%dT%H%MZ}_{i}.json.gz"
            )
            data = json.dumps({"Records": part}).encode()
            self.logs.append(_write_gz(root, key, data))
            entries.append(
                {
                    "s3Bucket": BUCKET,
                    "s3Object": key,
                    "hashValue": hashlib.sha256(data).hexdigest(),
                    "hashAlgorithm": "SHA-256",
                    "newestEventTime": _stamp(at),
                    "oldestEventTime": _stamp(at),
                }
            )
        self.digests: list[Path] = []
        previous: tuple[str, str, str] | None = None  # key, hash, signature
        for n, covered in enumerate((entries[:2], entries[2:])):
            end = START + timedelta(hours=n + 1)
            key = _key(
                "CloudTrail-Digest",
                end,
                f"{ACCOUNT}_CloudTrail-Digest_{REGION}_trail_{REGION}_{end:%Y%m%dT%H%M%SZ}.json.gz",
            )
            body = {
                "awsAccountId": ACCOUNT,
                "digestStartTime": _stamp(end - timedelta(hours=1)),
                "digestEndTime": _stamp(end),
                "digestS3Bucket": BUCKET,
                "digestS3Object": key,
                "digestPublicKeyFingerprint": "31e8b5433410dfb61a9dc45cc65b22ff",
                "digestSignatureAlgorithm": "SHA256withRSA",
                "newestEventTime": covered[-1]["newestEventTime"],
                "oldestEventTime": covered[0]["oldestEventTime"],
                "previousDigestS3Bucket": BUCKET if previous else None,
                "previousDigestS3Object": previous[0] if previous else None,
                "previousDigestHashValue": previous[1] if previous else None,
                "previousDigestHashAlgorithm": "SHA-256" if previous else None,
                "previousDigestSignature": previous[2] if previous else None,
                "logFiles": covered,
            }
            inflated = json.dumps(body).encode()
            signature = _sign(private, body, inflated)
            self.digests.append(_write_gz(root, key, inflated))
            previous = (key, hashlib.sha256(inflated).hexdigest(), signature)
        assert previous is not None
        self.digests[-1].with_name(self.digests[-1].name + ".sig").write_text(previous[2] + "\n")


def _pem(private: rsa.RSAPrivateKey, path: Path) -> Path:
    path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture(scope="module")
def private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def trail(tmp_path: Path, private: rsa.RSAPrivateKey) -> Trail:
    return Trail(tmp_path, private)


@pytest.fixture
def key_file(tmp_path: Path, private: rsa.RSAPrivateKey) -> Path:
    return _pem(private, tmp_path / "cloudtrail.pem")


def _ingest(tmp_path: Path, trail: Trail, key_file: Path | None):
    with DuckDBStore(tmp_path / "store.duckdb") as store:
        keys = load_keys(key_file) if key_file else None
        summary = Ingestor(store, cloudtrail_keys=keys).ingest([str(trail.root)])
        return summary, store.count()


def _edit(path: Path, old: bytes, new: bytes) -> None:
    """Change the object's content (one byte of a value) and gzip it again."""
    data = gzip.decompress(path.read_bytes())
    assert old in data
    path.write_bytes(gzip.compress(data.replace(old, new, 1), mtime=0))


def test_an_intact_trail_verifies_and_digests_are_not_events(
    tmp_path: Path, trail: Trail, key_file: Path
) -> None:
    summary, stored = _ingest(tmp_path, trail, key_file)
    report = summary.cloudtrail
    assert report is not None
    assert report.digests == 2
    assert report.verified == [str(p) for p in trail.logs]
    assert report.unverifiable == [] and report.mismatched == []
    assert summary.files == 3  # the logs; the digests and their sidecar were not read
    assert summary.dead_records == 0
    assert stored > 0
    assert all(is_digest(p) for p in trail.digests)


def test_a_changed_byte_in_one_object_is_named_and_its_events_are_stored(
    tmp_path: Path, trail: Trail, key_file: Path
) -> None:
    _edit(trail.logs[1], b'"sourceIPAddress": "10.', b'"sourceIPAddress": "11.')
    summary, stored = _ingest(tmp_path, trail, key_file)
    report = summary.cloudtrail
    assert report is not None
    assert report.mismatched == [
        (str(trail.logs[1]), f"SHA-256 differs from {trail.digests[0].name}")
    ]
    assert report.verified == [str(trail.logs[0]), str(trail.logs[2])]
    _, intact = _ingest(tmp_path / "again", Trail(tmp_path / "again", _new_key()), None)
    assert stored == intact  # every event stored all the same


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_a_deleted_digest_leaves_its_objects_unverifiable(
    tmp_path: Path, trail: Trail, key_file: Path
) -> None:
    trail.digests[1].unlink()
    trail.digests[1].with_name(trail.digests[1].name + ".sig").unlink()
    report = _ingest(tmp_path, trail, key_file)[0].cloudtrail
    assert report is not None
    assert report.verified == [] and report.mismatched == []
    first = trail.digests[0].name
    assert report.unverifiable == [
        (str(trail.logs[0]), f"hash matches; {first} has no signature (sidecar .sig)"),
        (str(trail.logs[1]), f"hash matches; {first} has no signature (sidecar .sig)"),
        (str(trail.logs[2]), "no digest lists it"),
    ]


def test_a_wrong_key_is_a_signature_failure_named(tmp_path: Path, trail: Trail) -> None:
    wrong = _pem(_new_key(), tmp_path / "wrong.pem")
    report = _ingest(tmp_path, trail, wrong)[0].cloudtrail
    assert report is not None
    assert report.verified == []
    assert report.mismatched == [
        (str(log), f"digest {digest.name} signature does not verify")
        for log, digest in zip(trail.logs, [trail.digests[0], *trail.digests], strict=True)
    ]


def test_a_changed_digest_breaks_the_chain(tmp_path: Path, trail: Trail, key_file: Path) -> None:
    _edit(
        trail.digests[0], b'"digestStartTime": "2024-01-02T10', b'"digestStartTime": "2024-01-02T09'
    )
    report = _ingest(tmp_path, trail, key_file)[0].cloudtrail
    assert report is not None
    assert report.verified == []
    assert report.mismatched[2] == (
        str(trail.logs[2]),
        f"previous digest {trail.digests[0].name} changed (hash differs)",
    )
    # The first digest's borrowed signature no longer matches its changed content.
    assert report.mismatched[0] == (
        str(trail.logs[0]),
        f"digest {trail.digests[0].name} signature does not verify",
    )


def test_without_a_key_hashes_are_checked_but_nothing_is_verified(
    tmp_path: Path, trail: Trail
) -> None:
    report = verify(trail.logs, None)
    assert report.verified == []
    assert report.unverifiable == [
        (str(p), "hash matches; no public key configured") for p in trail.logs
    ]


def test_cli_summary_names_mismatches_and_exits_1(
    tmp_path: Path, trail: Trail, key_file: Path
) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(f"ingest:\n  cloudtrail_public_key: {key_file}\n")
    store = tmp_path / "cli.duckdb"
    args = ["ingest", str(trail.root), "--config", str(config), "--store", str(store)]
    wide = {"COLUMNS": "400", "NO_COLOR": "1"}
    ok = CliRunner().invoke(app, args, env=wide)
    assert ok.exit_code == 0, ok.output
    assert "log objects 3 verified, 0 unverifiable, 0 mismatched" in ok.output
    _edit(trail.logs[2], b'"sourceIPAddress": "10.', b'"sourceIPAddress": "12.')
    bad = CliRunner().invoke(app, args, env=wide)
    assert bad.exit_code == 1, bad.output
    assert "log objects 2 verified, 0 unverifiable, 1 mismatched" in bad.output
    assert (
        f"MISMATCHED    {trail.logs[2]}: SHA-256 differs from {trail.digests[1].name}" in bad.output
    )
    missing = tmp_path / "none.yaml"
    missing.write_text(f"ingest:\n  cloudtrail_public_key: {tmp_path / 'absent.pem'}\n")
    refused = CliRunner().invoke(
        app, [*args[:2], "--config", str(missing), "--store", str(store)], env=wide
    )
    assert refused.exit_code == 2
    assert "ingest.cloudtrail_public_key" in refused.output


def test_a_digest_moved_elsewhere_vouches_for_nothing(
    tmp_path: Path, trail: Trail, key_file: Path
) -> None:
    moved = trail.digests[0].parent.parent / "01" / trail.digests[0].name
    moved.parent.mkdir()
    trail.digests[0].rename(moved)
    report = verify(trail.logs, load_keys(key_file))
    claimed = trail.digests[0].relative_to(trail.root).as_posix()
    assert report.mismatched[:2] == [
        (str(log), f"digest {moved.name} names another place ({claimed})") for log in trail.logs[:2]
    ]
    assert report.verified == [str(trail.logs[2])]


def test_a_key_file_may_hold_several_keys_in_either_pem_form(
    tmp_path: Path, trail: Trail, private: rsa.RSAPrivateKey
) -> None:
    pkcs1 = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    other = _pem(_new_key(), tmp_path / "other.pem").read_bytes()
    both = tmp_path / "both.pem"
    both.write_bytes(other + pkcs1)
    keys = load_keys(both)
    assert len(keys) == 2
    assert verify(trail.logs, keys).verified == [str(p) for p in trail.logs]
    empty = tmp_path / "empty.pem"
    empty.write_text("not a key\n")
    with pytest.raises(ConfigError, match="holds no RSA public key"):
        load_keys(empty)


def test_digests_are_not_logs_to_ship_either(trail: Trail) -> None:
    assert all(not_a_log(p) for p in trail.digests)
    assert not any(not_a_log(p) for p in trail.logs)


def test_a_flipped_byte_in_the_gzip_stream_is_named(
    tmp_path: Path, trail: Trail, key_file: Path
) -> None:
    data = bytearray(trail.logs[0].read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the deflate stream: the object no longer inflates
    trail.logs[0].write_bytes(bytes(data))
    summary, _ = _ingest(tmp_path, trail, key_file)
    report = summary.cloudtrail
    assert report is not None
    assert report.mismatched == [(str(trail.logs[0]), "unreadable as gzip (BadGzipFile)")]
    assert report.verified == [str(p) for p in trail.logs[1:]]
    # Ingest went on past it: the object is one dead letter, the other objects are stored.
    assert summary.dead_records == 1 and summary.files == 3
    assert "gzip input corrupt or cut short" in summary.dead_examples[0].reason


def test_an_object_cut_short_is_a_dead_letter_and_mismatched(
    tmp_path: Path, trail: Trail, key_file: Path
) -> None:
    data = trail.logs[1].read_bytes()
    trail.logs[1].write_bytes(data[: len(data) - 20])  # as a download cut off
    summary, _ = _ingest(tmp_path, trail, key_file)
    report = summary.cloudtrail
    assert report is not None
    assert report.mismatched == [(str(trail.logs[1]), "unreadable as gzip (EOFError)")]
    assert summary.dead_records == 1 and len(report.verified) == 2
