"""Session fixtures for the real servers that `scripts/services start` runs on 127.0.0.1:
`kafka_bootstrap` (Kafka's bootstrap servers) and `es_url` (Elasticsearch's URL); and
`aws_endpoint` (moto's S3+SQS server) and `kafka_sasl` (Kafka's SASL PLAIN listener, the
Event Hubs stand-in), which skip their tests when SECRETWATCH_AWS_ENDPOINT or
SECRETWATCH_KAFKA_SASL_BOOTSTRAP is unset and fail them when it is set but does not answer.

They read SECRETWATCH_KAFKA_BOOTSTRAP and SECRETWATCH_ES_URL (as `scripts/services env`
prints them; the defaults are the script's ports) and check that the server answers within
ANSWER_WITHIN_S (generous: a loaded machine answers slowly). A server that does not answer
fails the test, never skips it: start them with `scripts/services start` (scripts/test does
it for the whole suite).

Registered for every test under tests/ by tests/conftest.py (`pytest_plugins`).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
import warnings
from typing import NamedTuple

import pytest

with warnings.catch_warnings():
    # kafka-python 3.0 reads its protocol schemas at import time with importlib.resources'
    # read_text and open_text, deprecated on Python 3.11 and 3.12 (no longer on 3.13), and
    # pyproject makes every warning an error. Imported once here with those two warnings
    # ignored, kafka is then in sys.modules for every test: this module loads first, from
    # tests/conftest.py, before any test module is collected.
    warnings.filterwarnings("ignore", "(read|open)_text is deprecated", DeprecationWarning)
    import kafka  # noqa: F401

KAFKA_DEFAULT = "127.0.0.1:19092"
ES_DEFAULT = "http://127.0.0.1:19200"
ANSWER_WITHIN_S = 30.0  # generous: a loaded machine answers slowly; a refusal is instant
HOW = "start them with `scripts/services start` (or run the suite with scripts/test)"


def kafka_bootstrap_servers() -> str:
    """Kafka's bootstrap servers, after checking that a broker answers a metadata request."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    servers = os.environ.get("SECRETWATCH_KAFKA_BOOTSTRAP", KAFKA_DEFAULT)
    if not any(_listens(s) for s in servers.split(",")):
        pytest.fail(f"Kafka does not listen at {servers}: {HOW}", pytrace=False)
    timeout_ms = int(ANSWER_WITHIN_S * 1000)
    settings = {"bootstrap_servers": servers, "request_timeout_ms": timeout_ms}
    if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG:  # kafka-python 3
        settings["bootstrap_timeout_ms"] = timeout_ms
    admin = None
    try:
        admin = KafkaAdminClient(**settings)
        cluster = admin.describe_cluster()
    except (KafkaError, OSError) as e:
        pytest.fail(f"Kafka does not answer at {servers} ({e!r}): {HOW}", pytrace=False)
    finally:
        if admin is not None:
            admin.close()
    if not cluster.get("brokers"):
        pytest.fail(f"Kafka at {servers} reports no broker: {HOW}", pytrace=False)
    return servers


def elasticsearch_url() -> str:
    """Elasticsearch's URL, after checking that it answers with a yellow or green cluster
    whose major version is the Python client's (a 9.x client cannot talk to an 8.x server)."""
    import elasticsearch

    url = os.environ.get("SECRETWATCH_ES_URL", ES_DEFAULT).rstrip("/")
    if not url.startswith(("http://", "https://")):
        pytest.fail(f"SECRETWATCH_ES_URL must be an http(s) URL, not {url!r}", pytrace=False)
    try:
        health = _get_json(f"{url}/_cluster/health?wait_for_status=yellow&timeout=3s")
        nodes = _get_json(f"{url}/_nodes/_local/info/_none")
    except (urllib.error.URLError, OSError, ValueError) as e:
        pytest.fail(f"Elasticsearch does not answer at {url} ({e!r}): {HOW}", pytrace=False)
    if health.get("status") not in ("green", "yellow"):
        pytest.fail(f"Elasticsearch at {url} is not ready: {health}", pytrace=False)
    version = next(iter(nodes["nodes"].values()))["version"]
    client = elasticsearch.__versionstr__
    if version.split(".")[0] != client.split(".")[0]:
        pytest.fail(
            f"Elasticsearch at {url} is {version} but the Python client is {client}: "
            "their major versions must match",
            pytrace=False,
        )
    return url


def _listens(server: str) -> bool:
    host, _, port = server.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=ANSWER_WITHIN_S):
            return True
    except (OSError, ValueError):
        return False


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=ANSWER_WITHIN_S) as response:  # noqa: S310
        return json.load(response)


class SaslKafka(NamedTuple):
    """Kafka's SASL listeners: user `$ConnectionString`, this password; SASL_PLAINTEXT at
    `bootstrap`, SASL_SSL at `ssl_bootstrap` with a certificate `cafile` verifies (None
    when SECRETWATCH_KAFKA_SASL_SSL_BOOTSTRAP or SECRETWATCH_KAFKA_SASL_CAFILE is unset)."""

    bootstrap: str
    password: str
    ssl_bootstrap: str | None = None
    cafile: str | None = None


# The made-up connection string scripts/services gives the SASL listener's one user.
SASL_CONNECTION_STRING_DEFAULT = (  # made up, no credential of anything real
    "Endpoint=sb://secretwatch-test.servicebus.windows.net/;"
    "SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=c2VjcmV0d2F0Y2gtdGVzdC1vbmx5"
)


def aws_endpoint_url() -> str:
    """moto's URL, after checking that it answers; skips when SECRETWATCH_AWS_ENDPOINT is
    unset."""
    url = os.environ.get("SECRETWATCH_AWS_ENDPOINT", "").rstrip("/")
    if not url:
        pytest.skip("SECRETWATCH_AWS_ENDPOINT is unset (see `scripts/services env moto`)")
    try:
        _get_json(f"{url}/moto-api/data.json")
    except (urllib.error.URLError, OSError, ValueError) as e:
        pytest.fail(f"moto does not answer at {url} ({e!r}): {HOW}", pytrace=False)
    return url


def kafka_sasl_listener() -> SaslKafka:
    """Kafka's SASL listener, after checking that it accepts connections; skips when
    SECRETWATCH_KAFKA_SASL_BOOTSTRAP is unset."""
    servers = os.environ.get("SECRETWATCH_KAFKA_SASL_BOOTSTRAP", "")
    if not servers:
        pytest.skip("SECRETWATCH_KAFKA_SASL_BOOTSTRAP is unset (see `scripts/services env`)")
    if not any(_listens(s) for s in servers.split(",")):
        pytest.fail(f"Kafka's SASL listener does not listen at {servers}: {HOW}", pytrace=False)
    password = os.environ.get("SECRETWATCH_KAFKA_SASL_PASSWORD") or SASL_CONNECTION_STRING_DEFAULT
    ssl = os.environ.get("SECRETWATCH_KAFKA_SASL_SSL_BOOTSTRAP") or None
    cafile = os.environ.get("SECRETWATCH_KAFKA_SASL_CAFILE") or None
    if ssl and cafile and not any(_listens(s) for s in ssl.split(",")):
        pytest.fail(f"Kafka's SASL_SSL listener does not listen at {ssl}: {HOW}", pytrace=False)
    return SaslKafka(servers, password, ssl if cafile else None, cafile if ssl else None)


@pytest.fixture(scope="session")
def aws_endpoint() -> str:
    return aws_endpoint_url()


@pytest.fixture(scope="session")
def kafka_sasl() -> SaslKafka:
    return kafka_sasl_listener()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return kafka_bootstrap_servers()


@pytest.fixture(scope="session")
def es_url() -> str:
    return elasticsearch_url()
