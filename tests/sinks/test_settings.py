"""The `sinks:` and `delivery:` config sections: defaults, every type, errors with the fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.config import Config, load_config
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return load_config(path)


def test_default_yaml_equals_the_builtin_default() -> None:
    loaded, builtin = load_config(REPO / "config" / "default.yaml"), Config()
    assert loaded.sinks == builtin.sinks and loaded.delivery == builtin.delivery
    [only] = builtin.sinks
    assert (only.type, only.name, str(only.path)) == ("jsonl", "alerts-file", "data/alerts.jsonl")
    assert builtin.delivery.max_age == timedelta(hours=24)


EVERY_TYPE = """
sinks:
  - {name: hook, type: webhook, url: "https://hooks.example.com/x", secret_env: S}
  - {name: splunk, type: splunk, url: "https://splunk.example.com:8088", token_file: /t,
     index: security, ack: true, ack_timeout: 45s}
  - {name: es, type: elasticsearch, url: "https://es.example.com:9200", api_key_env: K}
  - {name: sentinel, type: sentinel, endpoint: "https://dce.ingest.monitor.azure.com",
     dcr_immutable_id: dcr-00000000000000000000000000000000,
     stream_name: Custom-SecretwatchAlerts_CL, tenant_id: t, client_id: c,
     client_secret_env: C, format: ocsf}
  - {name: dd, type: datadog, site: datadoghq.eu, api_key_env: D, intake: events}
  - {name: pd, type: pagerduty, routing_key_env: P}
  - {name: file, type: jsonl, path: /var/log/secretwatch/alerts.jsonl}
  - {name: out, type: stdout, rate_limit: {per_second: 5, burst: 10}}
delivery: {max_age: 2d, backoff_base: 500ms, suppression_window: 0}
"""


def test_every_sink_type_loads(tmp_path: Path) -> None:
    cfg = _load(tmp_path, EVERY_TYPE)
    assert [s.type for s in cfg.sinks] == [
        "webhook",
        "splunk",
        "elasticsearch",
        "sentinel",
        "datadog",
        "pagerduty",
        "jsonl",
        "stdout",
    ]
    es, pd = cfg.sinks[2], cfg.sinks[5]
    assert (es.format, es.batch_size, pd.min_severity, pd.batch_size) == ("ecs", 100, "high", 1)
    assert cfg.sinks[1].ack_timeout == timedelta(seconds=45)
    assert cfg.delivery.backoff_base == timedelta(milliseconds=500)
    assert cfg.delivery.suppression_window == timedelta(0)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "{name: h, type: webhook, url: 'https://x.example'}",
            "sinks[0]: Value error, set secret_env (an environment variable holding it) or "
            "secret_file",
        ),
        (
            "{name: h, type: webhook, url: 'https://x.example', secret_env: A, secret_file: /b}",
            "set only one of secret_env and secret_file",
        ),
        (
            "{name: h, type: webhook, url: 'https://user:pw@x.example', secret_env: A}",
            "sinks[0].url: Value error, must not hold credentials",
        ),
        (
            "{name: h, type: webhook, url: 'ftp://x.example', secret_env: A}",
            "sinks[0].url: Value error, must be an http(s) URL",
        ),
        (
            "{name: h, type: webhook, url: 'https://x.example', secret_env: A, "
            "headers: {Authorization: x}}",
            "use auth_token_env",
        ),
        (
            "{name: h, type: splunk, url: 'https://s.example', token_env: T, tokn: 1}",
            "sinks[0].tokn: unknown key; valid keys here: name, enabled",
        ),
        (
            "{name: h, type: splunk, url: 'https://s.example', token_env: T, ack_timeout: soon}",
            "sinks[0].ack_timeout: Value error, must be a duration such as",
        ),
        (
            "{name: h, type: sentinel, endpoint: 'https://e.example', dcr_immutable_id: x, "
            "stream_name: Custom-A, tenant_id: t, client_id: c, client_secret_env: C}",
            "sinks[0].dcr_immutable_id: Value error, must be the rule's immutable id",
        ),
        ("{name: h, type: pagerduty, routing_key_env: P, batch_size: 5}", "batch_size must be 1"),
        (
            "{name: h, type: elasticsearch, username: elastic}",
            "username needs password_env or password_file",
        ),
        ("{name: Bad Name, type: stdout}", "sinks[0].name: Value error, must be 1-63 lowercase"),
        ("{name: h, type: kafka}", "sinks[0].type: Input tag 'kafka'"),
        ("{name: h, type: stdout, min_severity: severe}", "sinks[0].min_severity"),
    ],
)
def test_errors_name_the_key_and_the_fix(tmp_path: Path, entry: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, f"sinks:\n  - {entry}\n")
    assert expected in str(info.value)


def test_sink_names_are_unique(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="two sinks are named 'a'"):
        _load(tmp_path, "sinks:\n  - {name: a, type: stdout}\n  - {name: a, type: stdout}\n")


def test_delivery_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="backoff_max must be at least backoff_base"):
        _load(tmp_path, "delivery: {backoff_base: 5m, backoff_max: 1m}\n")
    with pytest.raises(ConfigError, match="delivery.max_age: Value error, must be a duration"):
        _load(tmp_path, "delivery: {max_age: forever}\n")


def test_no_sinks_is_allowed(tmp_path: Path) -> None:
    assert _load(tmp_path, "sinks: []\n").sinks == []


def test_secrets_from_env_and_file(tmp_path: Path, monkeypatch) -> None:
    from outbox import sink

    from pipeline.sinks.base import read_secret

    cfg = sink(name="s", type="splunk", url="https://s.example", token_env="MY_TOKEN")
    monkeypatch.delenv("MY_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="MY_TOKEN .from token_env. is not set"):
        read_secret(cfg, "token")
    monkeypatch.setenv("MY_TOKEN", " abc\n")
    assert read_secret(cfg, "token") == "abc"
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    from_file = sink(name="s", type="splunk", url="https://s.example", token_file=str(secret))
    assert read_secret(from_file, "token") == "from-file"
    missing = sink(
        name="s", type="splunk", url="https://s.example", token_file=str(tmp_path / "nope")
    )
    with pytest.raises(ConfigError, match="token_file .* cannot be read") as info:
        read_secret(missing, "token")
    assert "from-file" not in str(info.value)


# -- credentials over plain http ------------------------------------------------------------

SENTINEL = ("dcr_immutable_id: dcr-00000000000000000000000000000000, "
            "stream_name: Custom-A, tenant_id: t, client_id: c, client_secret_env: C")  # fmt: skip
CLEARTEXT = [
    ("{name: hook, type: webhook, url: 'http://siem.example/x', secret_env: S}", "url", "secret"),
    ("{name: hook, type: webhook, url: 'http://10.0.0.5/x', secret_env: S, auth_token_env: T}",
     "url", "auth_token"),
    ("{name: hook, type: splunk, url: 'http://splunk.example:8088', token_env: T}", "url",
     "token"),
    ("{name: hook, type: elasticsearch, url: 'http://es.example:9200', api_key_env: K}", "url",
     "api_key"),
    ("{name: hook, type: elasticsearch, url: 'http://es.example:9200', username: u, "
     "password_env: P}", "url", "password"),
    (f"{{name: hook, type: sentinel, endpoint: 'http://dce.example', {SENTINEL}}}", "endpoint",
     "client_secret"),
    (f"{{name: hook, type: sentinel, endpoint: 'https://dce.example', "
     f"authority: 'http://login.example', {SENTINEL}}}", "authority", "client_secret"),
    ("{name: hook, type: datadog, url: 'http://intake.example', api_key_env: D}", "url",
     "api_key"),
    ("{name: hook, type: pagerduty, url: 'http://pd.example/v2/enqueue', routing_key_env: P}",
     "url", "routing_key"),
]  # fmt: skip


@pytest.mark.parametrize(("entry", "field", "credential"), CLEARTEXT)
def test_credentials_over_plain_http_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, entry: str, field: str, credential: str
) -> None:
    with caplog.at_level("WARNING", logger="pipeline.sinks.settings"):
        _load(tmp_path, f"sinks:\n  - {entry}\n")
    [record] = [r for r in caplog.records if r.name == "pipeline.sinks.settings"]
    message = record.getMessage()
    assert record.levelname == "WARNING"
    assert "sink 'hook'" in message
    assert f"`{field}`" in message and "http://" in message
    assert credential in message
    assert "clear text" in message
    assert "use an https:// URL" in message


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/x", "http://127.9.8.7/x", "http://[::1]:8080/x",
     "http://localhost:8080/x", "http://LOCALHOST/x", "https://siem.example/x"],
)  # fmt: skip
def test_loopback_or_https_is_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, url: str
) -> None:
    with caplog.at_level("WARNING", logger="pipeline.sinks.settings"):
        _load(tmp_path, f"sinks:\n  - {{name: h, type: webhook, url: '{url}', secret_env: S, "
                        "auth_token_env: T}\n")  # fmt: skip
    assert not [r for r in caplog.records if r.name == "pipeline.sinks.settings"]


def test_plain_http_without_credentials_is_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="pipeline.sinks.settings"):
        _load(tmp_path, "sinks:\n  - {name: es, type: elasticsearch, url: 'http://es.example'}\n")
    assert not [r for r in caplog.records if r.name == "pipeline.sinks.settings"]
