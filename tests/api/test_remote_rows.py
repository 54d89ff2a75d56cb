"""`RemoteStore.event_rows`, what `secretwatch events --server` prints: the rows the store
gives, read without pandas; and the client's TLS: no CA bundle for an http:// service, a
verified certificate for an https:// one."""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from served_store import served

from pipeline.api import queries
from pipeline.errors import StoreError
from pipeline.store.base import EventFilter
from pipeline.store.remote import RemoteStore

FILTERS = [
    EventFilter(),
    EventFilter(identity="shop/*", action="read"),
    EventFilter(source="k8s"),
    EventFilter(outcome="denied"),
    EventFilter(identity="nobody-at-all"),
]


def plain(record: dict[str, Any]) -> dict[str, Any]:
    """A row of `Store.events(...).to_dict("records")` as plain values: NaN as None."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}


def test_event_rows_are_the_stored_events(store_path: Path) -> None:
    with served(store_path, None) as (url, writer), RemoteStore(url) as remote:
        for where in FILTERS:
            for limit, newest in ((None, False), (7, True)):
                want = [plain(r) for r in writer.events(where, limit, newest).to_dict("records")]
                got = remote.event_rows(where, limit, newest)
                assert got == want, where
                assert [list(r) for r in got] == [list(r) for r in want]  # column order
                assert all(type(r["ts"]) is dt.datetime for r in got)
                assert all(r["ts"].utcoffset() == dt.timedelta(0) for r in got)
        everything = remote.event_rows()
        assert len(everything) > 500
        assert any(r["secret"] is None for r in everything)  # missing values came through
        assert remote.event_rows(EventFilter(identity="nobody-at-all")) == []


def test_event_rows_past_the_row_cap(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "MAX_ROWS", 2)
    with served(store_path, None) as (url, _), RemoteStore(url) as remote:
        with pytest.raises(StoreError, match="answers at most 2 rows at a time: narrow"):
            remote.event_rows()
        assert len(remote.event_rows(limit=2)) == 2


# -- TLS ----------------------------------------------------------------------------------
def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secretwatch test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class _Schema(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b'{"schema_version": 1}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextmanager
def _https(cert_file: Path, key_file: Path) -> Iterator[str]:
    """A server on 127.0.0.1 answering the schema version over TLS; its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Schema)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_an_https_service_is_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An http:// service's client skips the CA bundle; an https:// one's still checks the
    certificate: refused when no trusted CA signed it, accepted when one did."""
    cert_file, key_file = _certificate(tmp_path)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with _https(cert_file, key_file) as url:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        with pytest.raises(StoreError, match="CERTIFICATE_VERIFY_FAILED"):
            RemoteStore(url).open()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # httpx trusts it (trust_env)
        with RemoteStore(url) as remote:
            assert remote.schema_version() == 1
