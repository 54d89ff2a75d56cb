"""The Vault/OpenBao socket audit device: JSON lines over TCP or a unix socket.

Vault blocks its own requests when a socket sink stops reading, so this collector never
stops reading: a thread per connection reads, and each read's complete lines go to the
spool at once (fsynced, group-committed across connections). Nothing is parsed here; the
service's reader does that from the spool. The socket has no acknowledgement: what sits in
the kernel's buffers when the process dies is the one loss window.

A line longer than `max_line_bytes` becomes a dead letter and is skipped to its newline, so
memory stays bounded whatever a sender writes. When a connection closes, its unterminated
tail is spooled as a line of its own (Vault ends every entry with a newline; a tail is a
cut entry, which the parser dead-letters). Off this machine, clients must present a
certificate signed by `client_ca_file` (mutual TLS): the device cannot send a token.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import stat
import threading
from pathlib import Path

from pipeline.collectors.base import Intake
from pipeline.collectors.settings import VaultSocket, parse_listen
from pipeline.errors import ConfigError
from pipeline.errortext import clean_error

log = logging.getLogger(__name__)

READ_BYTES = 1 << 20
POLL_SECONDS = 0.2  # how soon a blocked read or accept notices `stop`
STOP_SECONDS = 10.0  # how long `stop` waits for connections to drain
KEEP_BYTES = 4096  # of an over-long line, what its dead letter keeps
DRAIN_READS = 64  # reads of a connection after `stop` at most
# Open connections at most (Vault keeps one per node); one more is closed at once, so a
# flood of connections cannot take threads and buffers without bound.
MAX_CONNECTIONS = 128


class VaultSocketCollector:
    """Listens on `settings.listen`; every connection's lines go to `intake`."""

    def __init__(self, settings: VaultSocket, intake: Intake) -> None:
        self.name = settings.label
        self.settings = settings
        self.intake = intake
        self.where = parse_listen(settings.listen)
        self.address = settings.listen  # where it really listens (port 0 resolved), once started
        self._sock: socket.socket | None = None
        self._tls: ssl.SSLContext | None = None
        self._stop = threading.Event()
        self._accepting: threading.Thread | None = None
        self._conns: dict[int, tuple[socket.socket, threading.Thread]] = {}
        self._lock = threading.Lock()
        self._serial = 0

    @property
    def listening(self) -> bool:
        return self._sock is not None and not self._stop.is_set()

    def start(self) -> None:
        if self.settings.mtls:
            self._tls = _server_context(self.settings)
        self._sock = self._bind()
        self._sock.settimeout(POLL_SECONDS)
        self._accepting = threading.Thread(
            target=self._accept_loop, name=f"collector-{self.name}", daemon=True
        )
        self._accepting.start()

    def _bind(self) -> socket.socket:
        where = self.where
        if where.scheme == "unix":
            path = Path(where.path)
            _remove_stale(path, self.name)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: str | tuple[str, int] = str(path)
        else:
            family = socket.AF_INET6 if ":" in where.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            target = (where.host, where.port)
        try:
            sock.bind(target)
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"collector {self.name}: cannot listen on {self.settings.listen}: "
                f"{exc.strerror or exc}"
            ) from None
        if where.scheme == "unix":
            os.chmod(where.path, 0o660)  # Vault's user or group writes; nobody else
        else:
            port = sock.getsockname()[1]
            host = f"[{where.host}]" if ":" in where.host else where.host
            self.address = f"tcp://{host}:{port}"
        return sock

    def _accept_loop(self) -> None:
        assert self._sock is not None  # noqa: S101 - started
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                log.exception("collector=%s accept failed", self.name)
                continue
            who = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix socket"
            with self._lock:
                if len(self._conns) >= MAX_CONNECTIONS:
                    conn.close()
                    log.warning(
                        "collector=%s connection=refused peer=%s open=%d (at most %d)",
                        self.name,
                        who,
                        len(self._conns),
                        MAX_CONNECTIONS,
                    )
                    continue
                self._serial += 1
                key = self._serial
                thread = threading.Thread(
                    target=self._serve, args=(key, conn, who), name=f"{self.name}-conn", daemon=True
                )
                self._conns[key] = (conn, thread)
            thread.start()

    def _serve(self, key: int, conn: socket.socket, who: str) -> None:
        log.info("collector=%s connection=open peer=%s", self.name, who)
        try:
            conn.settimeout(POLL_SECONDS)
            if self._tls is not None:
                conn = self._handshake(conn, who)
            Lines(self.intake, who, self.settings.max_line_bytes).read(conn, self._stop)
        except (ssl.SSLError, OSError) as exc:
            log.warning("collector=%s peer=%s closed: %s", self.name, who, clean_error(str(exc)))
        finally:
            conn.close()
            with self._lock:
                self._conns.pop(key, None)
            log.info("collector=%s connection=closed peer=%s", self.name, who)

    def _handshake(self, conn: socket.socket, who: str) -> socket.socket:
        assert self._tls is not None  # noqa: S101 - only with mTLS
        conn.settimeout(STOP_SECONDS)
        tls = self._tls.wrap_socket(conn, server_side=True)
        tls.settimeout(POLL_SECONDS)
        return tls

    def stop(self) -> None:
        """Stop accepting; each open connection is read until it has nothing more to give
        right now (what is in flight is spooled), then closed."""
        self._stop.set()
        if self._accepting is not None:
            self._accepting.join(STOP_SECONDS)
        if self._sock is not None:
            self._sock.close()
            if self.where.scheme == "unix":
                Path(self.where.path).unlink(missing_ok=True)
        with self._lock:
            threads = [t for _, t in self._conns.values()]
        for thread in threads:
            thread.join(STOP_SECONDS)


class Lines:
    """One connection's stream cut into lines: complete ones spooled read by read, an
    over-long one rejected and skipped, the tail held until its newline (or the end)."""

    def __init__(self, intake: Intake, who: str, max_line: int) -> None:
        self.intake = intake
        self.who = who
        self.max_line = max_line
        self.rest = bytearray()
        self.skipping = False  # inside an over-long line: drop bytes up to its newline

    def read(self, conn: socket.socket, stop: threading.Event) -> None:
        """Read until the peer closes, or `stop` is set and nothing more is waiting (a
        sender that never pauses gets `DRAIN_READS` more reads after `stop`)."""
        after_stop = 0
        while after_stop < DRAIN_READS:
            try:
                data = conn.recv(READ_BYTES)
            except TimeoutError:
                if stop.is_set():
                    break
                continue
            if not data:
                break
            self.feed(data)
            after_stop += stop.is_set()
        self.end()

    def feed(self, data: bytes) -> None:
        if self.skipping:
            nl = data.find(b"\n")
            if nl < 0:
                return
            data, self.skipping = data[nl + 1 :], False
        cut = data.rfind(b"\n")
        if cut < 0:
            self.rest += data
            self._bound()
            return
        head = bytes(self.rest) + data[: cut + 1] if self.rest else data[: cut + 1]
        self.rest = bytearray(data[cut + 1 :])
        if len(head) <= self.max_line and b"\n\n" not in head and head[:1] != b"\n":
            # No line in it can be over the cap, and none is empty: spooled as read, not
            # cut into lines and joined again (a line's own spaces are the parser's to skip).
            self.intake.accept_block(head, head.count(b"\n"), sync=False)
            self._bound()
            return
        lines: list[bytes] = []
        for line in head[:-1].split(b"\n"):
            line = line.strip()
            if not line:
                continue
            if len(line) > self.max_line:
                self._reject(line)
            else:
                lines.append(line)
        self.intake.accept(lines, sync=False)  # no acknowledgement to wait for
        self._bound()

    def end(self) -> None:
        """The connection is done: its unterminated tail counts as a line."""
        tail = bytes(self.rest).strip()
        self.rest = bytearray()
        if tail and not self.skipping:
            self.intake.accept([tail], sync=False)

    def _bound(self) -> None:
        if len(self.rest) > self.max_line:
            self._reject(bytes(self.rest))
            self.rest, self.skipping = bytearray(), True

    def _reject(self, line: bytes) -> None:
        self.intake.reject(
            self.who,
            f"line longer than {self.max_line:,} bytes (max_line_bytes)",
            line[:KEEP_BYTES],
            "vault",
        )


def _server_context(settings: VaultSocket) -> ssl.SSLContext:
    """TLS that requires a client certificate signed by `client_ca_file`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        assert settings.tls_cert_file and settings.client_ca_file  # noqa: S101 - validated
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        context.load_verify_locations(cafile=settings.client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"collector {settings.label}: cannot load its TLS files: {clean_error(str(exc))}"
        ) from None
    return context


def _remove_stale(path: Path, name: str) -> None:
    """A socket file left by a process that died is removed; any other file is not ours."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"collector {name}: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody listens: stale
        return
    finally:
        probe.close()
    raise ConfigError(f"collector {name}: another process listens on {path}")


def make(settings: VaultSocket, intake: Intake) -> VaultSocketCollector:
    return VaultSocketCollector(settings, intake)
