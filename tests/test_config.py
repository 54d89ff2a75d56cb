"""Configuration loading: defaults, files, and errors that name the file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import DEFAULT_CONFIG, ENV_VAR, Config, load_config
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_YAML = REPO / "config" / "default.yaml"


@pytest.fixture(autouse=True)
def _no_env_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)  # no config/default.yaml here unless a test makes one


def _write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_yaml_equals_builtin_defaults() -> None:
    loaded = load_config(DEFAULT_YAML)
    builtin = Config()
    assert loaded.store == builtin.store
    assert loaded.store.path == Path("data/secretwatch.duckdb")
    assert loaded.store.type == "duckdb"
    assert loaded.ingest == builtin.ingest
    assert loaded.ingest.batch_size == 150_000
    assert loaded.ingest.follow_poll_seconds == 0.5
    # Backend names: the ones the parsers fall back to when none is configured.
    assert loaded.backends == {"vault": "vault", "k8s": "kubernetes"}


def test_without_any_file_builtin_defaults_apply(tmp_path: Path) -> None:
    assert not (tmp_path / DEFAULT_CONFIG).exists()
    assert load_config() == Config()


def test_default_file_in_working_directory_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.yaml").write_text("ingest:\n  batch_size: 7\n")
    assert load_config().ingest.batch_size == 7


def test_environment_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "store:\n  path: /var/lib/sw/s.duckdb\n", "env.yaml")
    monkeypatch.setenv(ENV_VAR, str(path))
    assert load_config().store.path == Path("/var/lib/sw/s.duckdb")
    # an explicit path wins over the environment
    other = _write(tmp_path, "ingest:\n  batch_size: 3\n", "explicit.yaml")
    assert load_config(other).ingest.batch_size == 3


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "ingest:\n  batch_size: 10\n"))
    assert config.ingest.batch_size == 10
    assert config.ingest.follow_poll_seconds == 0.5
    assert config.store == Config().store


def test_empty_file_is_defaults(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "# nothing\n")) == Config()


def test_unknown_key_names_file_key_and_valid_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, "store:\n  pth: x.duckdb\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "store.pth" in message
    assert "unknown key" in message
    assert "type, path" in message


def test_unknown_elasticsearch_store_key_names_its_valid_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, "store:\n  type: elasticsearch\n  password: hunter2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "  store.password: unknown key" in message
    for key in ("url", "index_prefix", "username", "password_env", "api_key_env", "bulk_size"):
        assert key in message.split("valid keys here:", 1)[1]
    assert "path" not in message.split("valid keys here:", 1)[1]  # not the DuckDB keys


def test_elasticsearch_store_section(tmp_path: Path) -> None:
    text = "store:\n  type: elasticsearch\n  url: https://es:9200\n  password_env: ES_PW\n"
    store = load_config(_write(tmp_path, text)).store
    assert (store.type, store.url, store.password_env) == (
        "elasticsearch",
        "https://es:9200",
        "ES_PW",
    )
    assert store.index_prefix == "secretwatch" and store.verify_certs


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "stores:\n  path: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "stores" in message
    for key in ("store", "ingest", "backends"):
        assert key in message.split("valid keys here:", 1)[1]


def test_unknown_nested_ingest_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "ingest:\n  batchsize: 10\n"))
    message = str(info.value)
    assert "ingest.batchsize" in message
    assert "batch_size" in message
    assert "follow_poll_seconds" in message


@pytest.mark.parametrize(
    ("text", "key", "detail"),
    [
        ("ingest:\n  batch_size: lots\n", "ingest.batch_size", "'lots'"),
        ("ingest:\n  batch_size: 0\n", "ingest.batch_size", "greater than 0"),
        ("ingest:\n  follow_poll_seconds: 600\n", "ingest.follow_poll_seconds", "600"),
        ("store:\n  type: mongodb\n", "store.type", "'duckdb', 'elasticsearch'"),
        ("store:\n  type: elasticsearch\n  index_prefix: Big\n", "store.index_prefix", "lowercase"),
        ("store:\n  type: elasticsearch\n  url: localhost:9200\n", "store.url", "http(s)://"),
        ("store: [1, 2]\n", "store", "[1, 2]"),
        ("backends: vault\n", "backends", "'vault'"),
    ],
)
def test_wrong_type_names_the_key(tmp_path: Path, text: str, key: str, detail: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert f"  {key}:" in message
    assert detail in message


def test_unknown_backend_source_names_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "backends:\n  vaultt: prod\n"))
    message = str(info.value)
    assert "vaultt" in message
    assert "vault, aws, gcp, azure, k8s" in message


def test_several_problems_reported_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "store:\n  pth: x\ningest:\n  batch_size: -1\n"))
    message = str(info.value)
    assert "store.pth" in message
    assert "ingest.batch_size" in message


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(missing)
    assert str(missing) in str(info.value)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, "store:\n  path: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "- store\n- ingest\n"))


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("http://es.internal:9200", True),
        ("https://es.internal:9200", False),
        ("http://127.0.0.1:9200", False),
        ("http://localhost:9200", False),
    ],
)
def test_elasticsearch_store_credentials_over_plain_http_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, url: str, warned: bool
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"store: {{type: elasticsearch, url: '{url}', api_key_env: ES_KEY}}\n")
    with caplog.at_level("WARNING"):
        load_config(cfg)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert ("plain http to es.internal" in text and "api_key_env" in text) is warned
    assert "https://" in text or not warned


def test_the_detectors_take_each_identitys_vault_policies_from_the_inventory(
    tmp_path: Path,
) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "identities:\n"
        "  - {identity: ledger-sync, policies: [default, billing-read]}\n"
        "  - {identity: orders/fulfilment, policies: [billing-read]}\n"
    )
    config = tmp_path / "c.yaml"
    config.write_text(f"report: {{inventory: {inventory}}}\n")
    cfg = load_config(config)
    assert cfg.detectors.policies == {}  # read by the commands that judge, not at load
    assert cfg.detection().policies == {
        "ledger-sync": ["default", "billing-read"],
        "orders/fulfilment": ["billing-read"],
    }
    given = tmp_path / "given.yaml"
    given.write_text(f"report: {{inventory: {inventory}}}\ndetectors: {{policies: {{x: [ops]}}}}\n")
    assert load_config(given).detection().policies == {"x": ["ops"]}
    inventory.unlink()
    with pytest.raises(ConfigError, match="inventory.yaml not found"):
        cfg.detection()
