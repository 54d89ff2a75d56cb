"""The Vault socket collector against real senders on 127.0.0.1 and unix sockets: what it
spools is exactly the lines written, however the writes cut them."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from waiting import spooled, wait_until

from pipeline.collectors import make_collector
from pipeline.collectors.base import Intake
from pipeline.collectors.settings import VaultSocket
from pipeline.collectors.spool import Spool
from pipeline.collectors.vault_socket import VaultSocketCollector
from pipeline.errors import ConfigError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "vault" / "audit.jsonl"
LINES = [line for line in FIXTURE.read_bytes().splitlines() if line.strip()]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., tuple[VaultSocketCollector, Intake]]]:
    made: list[VaultSocketCollector] = []

    def run(
        listen: str = "tcp://127.0.0.1:0", **extra: object
    ) -> tuple[VaultSocketCollector, Intake]:
        settings = VaultSocket.model_validate({"type": "vault_socket", "listen": listen, **extra})
        intake = Intake(settings.label, Spool(tmp_path / f"spool{len(made)}"))
        collector = make_collector(settings, intake)
        assert isinstance(collector, VaultSocketCollector)
        collector.start()
        made.append(collector)
        return collector, intake

    yield run
    for collector in made:
        collector.stop()


def connect(collector: VaultSocketCollector) -> socket.socket:
    where = collector.address
    if where.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(where[len("unix://") :])
    else:
        host, port = where[len("tcp://") :].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def test_tcp_lines_cut_across_writes_are_spooled_whole(
    start: Callable[..., tuple[VaultSocketCollector, Intake]],
) -> None:
    collector, intake = start()
    assert collector.listening
    stream = b"\n".join(LINES) + b"\n"
    with connect(collector) as sock:
        for at in range(0, len(stream), 777):  # cuts fall inside lines
            sock.sendall(stream[at : at + 777])
        wait_until(lambda: intake.counts.records == len(LINES))
    assert spooled(intake.spool) == LINES
    assert intake.counts.requests >= 2  # spooled read by read, not at the end


def test_crlf_endings_and_blank_lines_are_counted_as_the_lines_they_hold(
    start: Callable[..., tuple[VaultSocketCollector, Intake]],
) -> None:
    """Reads without blank lines are spooled as read (CRLF endings kept: the reader drops
    the CR), reads with them line by line: either way one record per line."""
    collector, intake = start()
    crlf = b"\r\n".join(LINES[:3]) + b"\r\n"
    with connect(collector) as sock:
        sock.sendall(crlf)
        wait_until(lambda: intake.counts.records == 3)
        sock.sendall(b"\n" + LINES[3] + b"\n\n\n" + LINES[4] + b"\n")
        wait_until(lambda: intake.counts.records == 5)
    assert [line for line in spooled(intake.spool) if line] == LINES[:5]


def test_unix_socket_and_a_closed_connections_tail(
    tmp_path: Path, start: Callable[..., tuple[VaultSocketCollector, Intake]]
) -> None:
    path = tmp_path / "vault-audit.sock"
    collector, intake = start(f"unix://{path}")
    assert path.is_socket()
    with connect(collector) as sock:
        sock.sendall(LINES[0] + b"\n" + LINES[1])  # the second line has no newline
        wait_until(lambda: intake.counts.records == 1)
        assert spooled(intake.spool) == LINES[:1]  # a partial line waits for more bytes
    wait_until(lambda: intake.counts.records == 2)  # closed: the tail counts as a line
    assert spooled(intake.spool) == LINES[:2]
    collector.stop()
    assert not path.exists()


def test_an_over_long_line_is_a_dead_letter_and_the_stream_goes_on(
    start: Callable[..., tuple[VaultSocketCollector, Intake]],
) -> None:
    collector, intake = start(max_line_bytes=4096)
    long = b'{"type":"request","pad":"' + b"x" * 9000 + b'"}'
    with connect(collector) as sock:
        sock.sendall(LINES[0] + b"\n" + long[:6000])  # over the limit before its newline
        wait_until(lambda: intake.counts.rejected == 1)
        sock.sendall(long[6000:] + b"\n" + LINES[1] + b"\n")
        sock.sendall(b"y" * 5000 + b"\n" + LINES[2] + b"\n")  # over-long inside one read
        wait_until(lambda: intake.counts.records == 3 and intake.counts.rejected == 2)
    assert spooled(intake.spool) == LINES[:3]
    dead = intake.take_dead()
    assert len(dead) == 2
    assert all(d.file.startswith("collector vault_socket: 127.0.0.1:") for d in dead)
    assert "longer than 4,096 bytes" in dead[0].reason
    assert len(dead[0].raw) <= 4096


def test_many_connections_at_once(
    start: Callable[..., tuple[VaultSocketCollector, Intake]],
) -> None:
    collector, intake = start()
    senders, each = 16, 40

    def send(n: int) -> None:
        with connect(collector) as sock:
            for i in range(each):
                sock.sendall(b'{"sender":%d,"i":%d}\n' % (n, i))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    wait_until(lambda: intake.counts.records == senders * each)
    got = spooled(intake.spool)
    assert sorted(got) == sorted(
        b'{"sender":%d,"i":%d}' % (n, i) for n in range(senders) for i in range(each)
    )
    for n in range(senders):  # each connection's lines stay in order
        mine = [line for line in got if line.startswith(b'{"sender":%d,' % n)]
        assert mine == [b'{"sender":%d,"i":%d}' % (n, i) for i in range(each)]


def test_a_port_in_use_is_a_clear_error(
    start: Callable[..., tuple[VaultSocketCollector, Intake]],
) -> None:
    first, _ = start()
    with pytest.raises(ConfigError, match="cannot listen on tcp://127.0.0.1:"):
        start(first.address)


def test_a_stale_unix_socket_is_replaced_a_live_one_is_not(
    tmp_path: Path, start: Callable[..., tuple[VaultSocketCollector, Intake]]
) -> None:
    path = tmp_path / "a.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(path))  # closed on the way out, even when this fails: the file stays
    collector, _ = start(f"unix://{path}")
    assert collector.listening
    with pytest.raises(ConfigError, match="another process listens"):
        start(f"unix://{path}")
    other = tmp_path / "plain"
    other.write_text("not a socket")
    with pytest.raises(ConfigError, match="is not a socket"):
        start(f"unix://{other}")


def test_off_loopback_needs_mutual_tls() -> None:
    with pytest.raises(ValueError, match="cannot send a token"):
        VaultSocket.model_validate(
            {"type": "vault_socket", "listen": "tcp://0.0.0.0:9090", "token_env": "T"}
        )
    with pytest.raises(ValueError, match="needs tls_cert_file, tls_key_file and client_ca_file"):
        VaultSocket.model_validate(
            {"type": "vault_socket", "listen": "tcp://0.0.0.0:9090", "client_ca_file": "ca.pem"}
        )


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it,
    and a client certificate from another CA."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(
        cn: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name | None,
        signer: ec.EllipticCurvePrivateKey | None,
        ca: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer or name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(signer or key, hashes.SHA256())

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{stem}-key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca_key, other_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = issue("test ca", ca_key, None, None, True)
    other = issue("other ca", other_key, None, None, True)
    write("ca", ca, ca_key)
    for stem, issuer, signer in (
        ("server", ca, ca_key),
        ("client", ca, ca_key),
        ("stranger", other, other_key),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        write(stem, issue(stem, key, issuer.subject, signer, False), key)
    return {p.stem: p for p in folder.glob("*.pem")}


def test_mutual_tls_takes_a_signed_client_and_refuses_others(
    tmp_path: Path, start: Callable[..., tuple[VaultSocketCollector, Intake]]
) -> None:
    import ssl

    pem = _certificates(tmp_path)
    collector, intake = start(
        tls_cert_file=str(pem["server"]),
        tls_key_file=str(pem["server-key"]),
        client_ca_file=str(pem["ca"]),
    )

    def client(stem: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=pem["ca"])
        if stem is not None:
            context.load_cert_chain(pem[stem], pem[f"{stem}-key"])
        return context

    for stranger in (None, "stranger"):  # no certificate, or one of another CA
        with connect(collector) as raw:
            try:
                with client(stranger).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.sendall(LINES[0] + b"\n")
                    tls.recv(1)  # TLS 1.3: the refusal arrives after the handshake
            except (ssl.SSLError, OSError):
                pass
    with (
        connect(collector) as raw,
        client("client").wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"\n".join(LINES[:3]) + b"\n")
        wait_until(lambda: intake.counts.records == 3)
    assert spooled(intake.spool) == LINES[:3]  # nothing from the refused ones


def test_connections_past_the_limit_are_closed_at_once(
    start: Callable[..., tuple[VaultSocketCollector, Intake]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.collectors import vault_socket

    monkeypatch.setattr(vault_socket, "MAX_CONNECTIONS", 2)
    collector, intake = start()
    held = [connect(collector) for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(LINES[0] + b"\n")
        wait_until(lambda: intake.counts.records == 2)  # both taken
        with connect(collector) as extra:
            try:  # closed by the collector unread: an end of stream, or a reset
                extra.sendall(LINES[1] + b"\n")
                assert extra.recv(1) == b""
            except ConnectionResetError:
                pass
        held[0].close()
        wait_until(lambda: len(collector._conns) == 1)
        with connect(collector) as again:  # room again
            again.sendall(LINES[2] + b"\n")
            wait_until(lambda: intake.counts.records == 3)
    finally:
        for sock in held:
            sock.close()
    assert spooled(intake.spool) == [LINES[0], LINES[0], LINES[2]]
