"""Real HTTP receivers on 127.0.0.1 that imitate each SIEM's endpoint contract.

`Receiver` is an http.server in a thread, on an ephemeral port, that records every request
and answers as the imitated service would: it checks the credentials the service checks,
parses the body the way the service does (a malformed one gets the service's 400), and
keeps what it accepted. Before the contract answers, scripted answers are used up in order
(`fail(times, status, headers)`) to play an outage, a rate limit or a revoked token;
`delay` makes every request slow to be taken, `slow_answer` every answer slow to come
after the request was taken; `hold_answers(after)` keeps every answer after the first
`after` until `release()` (a kill then surely leaves requests taken but not acknowledged).
Requests are stamped with `clock` (the delivery worker's, in tests that check its pacing).

`received()` gives the (alert id, revision) pairs a contract accepted, in order: what a
receiver that deduplicates by idempotency key would keep is `set(received())`.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pipeline.sinks.signing import SignatureError, verify


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


Contract = Callable[["Receiver", Request], Answer]
HOLD_LIMIT_S = 120.0  # a held answer goes out after this at the latest (a stuck test)


class Receiver:
    def __init__(
        self,
        contract: Contract,
        delay: float = 0.0,
        slow_answer: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.contract, self.delay, self.slow_answer = contract, delay, slow_answer
        self.clock = clock
        self.hold_after: int | None = None  # answers after this many requests wait
        self.released = threading.Event()
        self.requests: list[Request] = []
        self.accepted: list[tuple[str, int]] = []  # (alert id, revision) taken, in order
        self.docs: dict[Any, Any] = {}  # what a store-like receiver holds (ES)
        self.state: dict[str, Any] = {}  # a contract's own bookkeeping
        self.script: list[Answer] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                size = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(size)
                parts = urlsplit(self.path)
                request = Request(
                    "POST",
                    parts.path,
                    {k: v[0] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    receiver.clock(),
                )
                answer, held = receiver.handle(request)
                if held:
                    receiver.released.wait(HOLD_LIMIT_S)
                if receiver.slow_answer:
                    time.sleep(receiver.slow_answer)
                payload = answer.encoded()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.status != 204:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def handle(self, request: Request) -> tuple[Answer, bool]:
        """The answer, and whether it is held until `release()`."""
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.requests.append(request)
            held = self.hold_after is not None and len(self.requests) > self.hold_after
            if self.script:
                return self.script.pop(0), held
            return self.contract(self, request), held

    def hold_answers(self, after: int) -> None:
        """Answer the first `after` requests (of all, counted from the first); hold the
        answers to the rest, each taken and its alert accepted, until `release()`."""
        with self.lock:
            self.hold_after = after
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def fail(
        self, times: int, status: int, headers: dict[str, str] | None = None, body: Any = None
    ) -> None:
        """The next `times` requests get this answer instead of the contract's."""
        with self.lock:
            self.script.extend(
                Answer(
                    status, body if body is not None else {"error": "scripted"}, dict(headers or {})
                )
                for _ in range(times)
            )

    def received(self) -> list[tuple[str, int]]:
        with self.lock:
            return list(self.accepted)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, int]]:
        """Wait until `count` distinct alert revisions were accepted (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received()
            if len(set(got)) >= count:
                return got
            time.sleep(0.02)
        return self.received()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


# -- contracts -------------------------------------------------------------------------------
def webhook(secret: str) -> Contract:
    """A Standard Webhooks consumer: 401 unless the signature verifies."""

    def answer(rx: Receiver, req: Request) -> Answer:
        try:
            verify(secret, req.headers, req.body)
        except SignatureError as exc:
            return Answer(401, {"error": str(exc)})
        doc = req.json()
        items = doc["data"] if isinstance(doc["data"], list) else [doc["data"]]
        for item in items:
            rx.accepted.append(_key(item))
        return Answer(200, {"ok": True})

    return answer


def _key(doc: dict[str, Any]) -> tuple[str, int]:
    """(alert id, revision) from a native, ECS or OCSF document."""
    if "class_uid" in doc:
        return doc["finding_info"]["uid"], doc["unmapped"]["revision"]
    if "ecs" in doc:
        return doc["event"]["id"], doc["secretwatch"]["alert"]["revision"]
    return doc["id"], doc["revision"]


def splunk_hec(token: str, ack_after: int = 0) -> Contract:
    """Splunk HEC: `Authorization: Splunk <token>`; concatenated event objects; with a
    channel header, an ackId that /services/collector/ack reports indexed after
    `ack_after` polls."""

    def answer(rx: Receiver, req: Request) -> Answer:
        auth = req.headers.get("authorization", "")
        if not auth:
            return Answer(401, {"text": "Token is required", "code": 2})
        if auth != f"Splunk {token}":
            return Answer(403, {"text": "Invalid token", "code": 4})
        channel = req.headers.get("x-splunk-request-channel")
        if req.path == "/services/collector/ack":
            if req.query.get("channel") != channel:
                return Answer(400, {"text": "Data channel is missing", "code": 10})
            polls = rx.state.setdefault("polls", {})
            acks = {}
            for ack_id in req.json()["acks"]:
                polls[ack_id] = polls.get(ack_id, 0) + 1
                acks[str(ack_id)] = polls[ack_id] > ack_after
            return Answer(200, {"acks": acks})
        if req.path != "/services/collector/event":
            return Answer(404, {"text": "The requested URL was not found", "code": 404})
        events = []
        decoder, text, pos = json.JSONDecoder(), req.body.decode(), 0
        while pos < len(text):
            try:
                event, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                return Answer(400, {"text": "Invalid data format", "code": 6})
            if "event" not in event:
                return Answer(400, {"text": "Event field is required", "code": 12})
            events.append(event)
        rx.state.setdefault("events", []).extend(events)
        for event in events:
            rx.accepted.append((event["fields"]["alert_id"], int(event["fields"]["revision"])))
        if channel:
            ack_id = rx.state["next_ack"] = rx.state.get("next_ack", -1) + 1
            return Answer(200, {"text": "Success", "code": 0, "ackId": ack_id})
        return Answer(200, {"text": "Success", "code": 0})

    return answer


def elasticsearch(api_key: str) -> Contract:
    """Elasticsearch _bulk with `Authorization: ApiKey`: index with external_gte versions
    and create semantics, per-item statuses."""

    def answer(rx: Receiver, req: Request) -> Answer:
        if req.headers.get("authorization") != f"ApiKey {api_key}":
            return Answer(401, {"error": {"type": "security_exception"}, "status": 401})
        if req.path != "/_bulk" or req.headers.get("content-type") != "application/x-ndjson":
            return Answer(400, {"error": {"type": "illegal_argument_exception"}, "status": 400})
        lines = req.body.decode().splitlines()
        items, errors = [], False
        for action_line, doc_line in zip(lines[::2], lines[1::2], strict=True):
            (op, meta), doc = next(iter(json.loads(action_line).items())), json.loads(doc_line)
            key = (meta["_index"], meta["_id"])
            held = rx.docs.get(key)
            if op == "create" and held is not None:
                status = 409
            elif op == "index" and held is not None and meta.get("version", 0) < held[0]:
                status = 409  # external_gte: an older revision never replaces a newer one
            else:
                status = 200 if held else 201
                rx.docs[key] = (meta.get("version", 1), doc)
                rx.accepted.append(_key(doc))
            errors |= status >= 300
            items.append({op: {"_index": meta["_index"], "_id": meta["_id"], "status": status}})
        return Answer(200, {"took": 1, "errors": errors, "items": items})

    return answer


def sentinel(tenant: str, client_id: str, client_secret: str, dcr: str, stream: str) -> Contract:
    """Entra ID client-credentials token endpoint + Logs Ingestion API (204 on success)."""

    def answer(rx: Receiver, req: Request) -> Answer:
        if req.path == f"/{tenant}/oauth2/v2.0/token":
            form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
            if (
                form.get("grant_type"),
                form.get("client_id"),
                form.get("client_secret"),
                form.get("scope"),
            ) != (
                "client_credentials",
                client_id,
                client_secret,
                "https://monitor.azure.com//.default",
            ):
                return Answer(401, {"error": "invalid_client"})
            token = base64.b64encode(f"{time.time()}".encode()).decode()
            rx.state.setdefault("tokens", []).append(token)
            return Answer(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": token})
        if req.path != f"/dataCollectionRules/{dcr}/streams/{stream}":
            return Answer(404, {"error": {"code": "NotFound"}})
        if req.query.get("api-version") != "2023-01-01":
            return Answer(400, {"error": {"code": "InvalidApiVersion"}})
        bearer = req.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in rx.state.get("tokens", []) or bearer in rx.state.get("revoked", []):
            return Answer(401, {"error": {"code": "InvalidAuthenticationToken"}})
        rows = req.json()
        if not isinstance(rows, list):
            return Answer(400, {"error": {"code": "InvalidPayload"}})
        for row in rows:
            rx.accepted.append(_key({k: v for k, v in row.items() if k != "TimeGenerated"}))
        rx.state.setdefault("rows", []).extend(rows)
        return Answer(204)

    return answer


def datadog(api_key: str) -> Contract:
    """Datadog Logs (/api/v2/logs, JSON array) and Events (/api/v1/events) intake."""

    def answer(rx: Receiver, req: Request) -> Answer:
        if req.headers.get("dd-api-key") != api_key:
            return Answer(403, {"errors": ["Forbidden"]})
        doc = req.json()
        if req.path == "/api/v2/logs":
            if not isinstance(doc, list):
                return Answer(400, {"errors": ["Bad Request"]})
            for log in doc:
                rx.accepted.append((log["alert_id"], log["revision"]))
            rx.state.setdefault("logs", []).extend(doc)
            return Answer(202, {})
        if req.path == "/api/v1/events":
            if not doc.get("title") or not doc.get("text"):
                return Answer(400, {"errors": ["Event title and text are required"]})
            revision = int(doc["text"].rsplit("revision ", 1)[1])
            rx.accepted.append((doc["aggregation_key"], revision))
            rx.state.setdefault("events", []).append(doc)
            return Answer(202, {"status": "ok", "event": {"id": len(rx.state["events"])}})
        return Answer(404, {"errors": ["Not found"]})

    return answer


def pagerduty(routing_key: str) -> Contract:
    """PagerDuty Events API v2 (/v2/enqueue): validation as documented, 202 on success."""

    def answer(rx: Receiver, req: Request) -> Answer:
        if req.path != "/v2/enqueue":
            return Answer(404, {"status": "not found"})
        doc = req.json()
        problems = []
        if doc.get("routing_key") != routing_key:
            problems.append("routing_key is invalid")
        if doc.get("event_action") not in ("trigger", "acknowledge", "resolve"):
            problems.append("event_action is invalid")
        if doc.get("event_action") == "trigger":
            payload = doc.get("payload", {})
            for name in ("summary", "source", "severity"):
                if not payload.get(name):
                    problems.append(f"payload.{name} is missing")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                problems.append("payload.severity is invalid")
        if problems:
            return Answer(
                400,
                {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": problems,
                },
            )
        rx.state.setdefault("events", []).append(doc)
        revision = doc.get("payload", {}).get("custom_details", {}).get("revision", 0)
        rx.accepted.append((doc["dedup_key"], revision))
        return Answer(
            202, {"status": "success", "message": "Event processed", "dedup_key": doc["dedup_key"]}
        )

    return answer
