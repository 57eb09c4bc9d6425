"""Server configuration: YAML + ``OCS_*`` environment, named errors, path rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from ocs.config import ConfigError, load_config, validate_section

REPO = Path(__file__).resolve().parents[2]
NO_ENV: dict[str, str] = {}


def write(tmp_path: Path, data: Any, name: str = "ocs.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def error_of(path: Path | None, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, NO_ENV if environ is None else environ)
    return str(info.value)


def test_defaults_without_a_file() -> None:
    """No file, no environment: every section has its documented default."""
    config = load_config(None, NO_ENV)
    assert config.redis.url is None and config.redis.appendfsync == "always"
    assert config.redis.data_dir == Path.cwd() / "var/redis" and config.redis.port == 0
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 9464)
    assert config.node.product_name == "ocs" and config.node.vendor_id == 0
    assert config.logging.mask_identities is True and config.workers == 1
    assert config.metrics.health_details is False
    assert config.base_dir == Path.cwd()


def test_example_config_loads() -> None:
    """config/ocs.yaml, the example `make run` uses, is valid and uses the embedded Redis."""
    config = load_config(REPO / "config" / "ocs.yaml", NO_ENV)
    assert config.redis.url is None
    assert config.path(config.redis.data_dir) == REPO / "var" / "redis"
    assert config.path(config.policies.dir) == REPO / "policies"
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 9464)


def test_example_config_front_end_sections_load() -> None:
    """The example's diameter, radius and export sections pass their own validation."""
    from ocs.export.config import ExportConfig
    from protocols.diameter.config import DiameterConfig
    from protocols.radius.settings import RadiusConfig

    config = load_config(REPO / "config" / "ocs.yaml", NO_ENV)
    diameter = validate_section(DiameterConfig, config.diameter, config.file, "diameter", {})
    assert diameter.data_dir == REPO / "var" / "diameter"
    validate_section(RadiusConfig, config.radius, config.file, "radius", {})
    export = validate_section(ExportConfig, config.export, config.file, "export", {})
    assert export.output_dir == REPO / "var" / "export"


def test_relative_paths_from_the_dir_holding_config(tmp_path: Path) -> None:
    """A file in <root>/config/ resolves relative paths against <root>; absolute ones stay."""
    path = write(tmp_path / "config", {"redis": {"data_dir": "data", "socket": "/run/o.sock"}})
    config = load_config(path, NO_ENV)
    assert config.path(config.redis.data_dir) == tmp_path / "data"
    assert config.redis.socket is not None
    assert config.path(config.redis.socket) == Path("/run/o.sock")


def test_every_path_of_every_section_resolves_one_way(tmp_path: Path) -> None:
    """diameter.data_dir, export.output_dir and the core's paths: all from the base directory.

    Regression: diameter.data_dir was taken from the working directory, so a
    container (or a systemd unit without WorkingDirectory) wrote elsewhere.
    """
    from ocs.export.config import ExportConfig
    from ocs.frontend import FrontendContext
    from protocols.diameter.frontend import load_config as diameter_config

    path = write(
        tmp_path / "config",
        {
            "redis": {"data_dir": "var/redis"},
            "diameter": {"data_dir": "var/diameter"},
            "export": {"output_dir": "var/export"},
        },
    )
    config = load_config(path, NO_ENV)
    assert config.redis.data_dir == tmp_path / "var/redis"
    assert config.policies.dir == tmp_path / "policies"
    assert config.diameter is not None and config.export is not None
    ctx = FrontendContext(config.file, "diameter", "h", "r", "p")
    assert diameter_config(config.diameter, ctx).data_dir == tmp_path / "var/diameter"
    export = validate_section(ExportConfig, config.export, config.file, "export")
    assert export.output_dir == tmp_path / "var/export"
    # Absolute paths stay as they are.
    absolute = validate_section(ExportConfig, {"output_dir": "/srv/x"}, config.file, "export")
    assert absolute.output_dir == Path("/srv/x")


def test_paths_do_not_follow_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loaded in one directory, used from another: the paths are already absolute."""
    path = write(tmp_path / "etc", {"redis": {"data_dir": "data"}})
    config = load_config(path, NO_ENV)
    monkeypatch.chdir("/")
    assert config.redis.data_dir.is_absolute()
    assert config.redis.data_dir == tmp_path / "etc" / "data"


def test_relative_paths_from_the_files_own_dir_elsewhere(tmp_path: Path) -> None:
    """A file not under a config/ directory resolves relative paths against its own directory."""
    config = load_config(write(tmp_path / "etc", {"policies": {"dir": "p"}}), NO_ENV)
    assert config.path(config.policies.dir) == tmp_path / "etc" / "p"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"redis": {"appendfsync": "sometimes"}},
            "redis.appendfsync: expected one of always, everysec, no; got 'sometimes'",
        ),
        (
            {"logging": {"format": "xml"}},
            "logging.format: expected one of auto, json, console; got 'xml'",
        ),
        ({"metrics": {"port": "abc"}}, "metrics.port: expected an integer; got 'abc'"),
        ({"metrics": {"port": 70000}}, "metrics.port: expected less than or equal to 65535"),
        ({"workers": 0}, "workers: expected greater than or equal to 1; got 0"),
        ({"supervision": {"sweep_interval": 0}}, "supervision.sweep_interval: expected greater"),
        (
            {"logging": {"mask_identities": "maybe"}},
            "logging.mask_identities: expected true or false; got 'maybe'",
        ),
        (
            {"redis": {"url": "http://x"}},
            "redis.url: expected a redis://, rediss:// or unix:// URL, or a redis+cluster:// "
            "or redis+sentinel:// one (rediss+... with TLS); got 'http://x'",
        ),
        ({"node": {"vendor_id": -1}}, "node.vendor_id: expected greater than or equal to 0"),
        ({"redis": 5}, "redis: expected a mapping; got 5"),
        ({"diameter": ["a"]}, "diameter: expected a mapping"),
    ],
    ids=[
        "enum",
        "enum-format",
        "int-type",
        "int-range",
        "workers-min",
        "positive-float",
        "bool",
        "url-scheme",
        "vendor-id",
        "section-not-mapping",
        "raw-section-not-mapping",
    ],
)
def test_bad_value_names_file_key_and_expectation(
    tmp_path: Path, data: dict[str, Any], expected: str
) -> None:
    """Each bad value: one line with the file, the key path and what was expected."""
    path = write(tmp_path, data)
    message = error_of(path)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_unknown_key_is_rejected_with_the_valid_ones(tmp_path: Path) -> None:
    """A misspelt key is refused, naming the key path and the keys that section accepts."""
    message = error_of(write(tmp_path, {"redis": {"urll": "redis://h"}}))
    assert "redis.urll: unknown key (expected one of url, data_dir, appendfsync" in message


def test_unknown_section_is_rejected(tmp_path: Path) -> None:
    """A misspelt top-level section is refused; derived keys are not offered as valid."""
    message = error_of(write(tmp_path, {"redsi": {}}))
    assert "redsi: unknown key (expected one of node, redis," in message
    assert "base_dir" not in message


@pytest.mark.parametrize("key", ["file", "base_dir"])
def test_loader_owned_keys_are_rejected(tmp_path: Path, key: str) -> None:
    """`file`/`base_dir` are set by the loader; in the file they are unknown keys."""
    assert f"{key}: unknown key" in error_of(write(tmp_path, {key: "/x"}))


def test_every_error_is_reported(tmp_path: Path) -> None:
    """Several bad keys: one line each, not only the first."""
    message = error_of(write(tmp_path, {"workers": 0, "metrics": {"port": -1}}))
    assert len(message.splitlines()) == 2


def test_missing_file(tmp_path: Path) -> None:
    """A configuration file that does not exist: named, not a traceback."""
    assert (
        error_of(tmp_path / "nope.yaml")
        == f"{tmp_path / 'nope.yaml'}: configuration file not found"
    )


def test_directory_instead_of_file(tmp_path: Path) -> None:
    """A directory given as the configuration file: named, not a traceback."""
    assert error_of(tmp_path).startswith(f"{tmp_path}: cannot read")


def test_invalid_yaml(tmp_path: Path) -> None:
    """Broken YAML: the file and the parser's position."""
    message = error_of(write(tmp_path, "redis: [unclosed\n"))
    assert "not valid YAML" in message and "line" in message


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    """A YAML list at the top: the file must be a mapping of sections."""
    assert "expected a mapping of sections; got list" in error_of(write(tmp_path, "- a\n- b\n"))


def test_duplicate_key_is_rejected(tmp_path: Path) -> None:
    """A section given twice (YAML would silently keep the last): refused with its line."""
    message = error_of(write(tmp_path, "redis: {}\nlogging: {}\nredis: {port: 1}\n"))
    assert "duplicate key 'redis'" in message and "line 3" in message


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    """An empty file is a valid configuration of defaults."""
    assert load_config(write(tmp_path, ""), NO_ENV).redis.appendfsync == "always"


def test_yaml_no_is_appendfsync_no(tmp_path: Path) -> None:
    """`appendfsync: no` (a YAML 1.1 boolean) means the policy `no`."""
    config = load_config(write(tmp_path, "redis:\n  appendfsync: no\n"), NO_ENV)
    assert config.redis.appendfsync == "no"


def test_config_is_frozen() -> None:
    """Loaded once into frozen objects: nothing changes it afterwards."""
    config = load_config(None, NO_ENV)
    with pytest.raises(pydantic.ValidationError):
        config.redis.port = 1  # type: ignore[misc]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    """OCS_<SECTION>__<KEY> overrides the file's value, parsed as YAML, as containers expect."""
    path = write(
        tmp_path,
        {"redis": {"appendfsync": "always"}, "diameter": {"port": 3868, "listen": ["127.0.0.1"]}},
    )
    config = load_config(
        path,
        {
            "OCS_REDIS__URL": "redis://10.0.0.5:6379/0",
            "OCS_LOGGING__LEVEL": "debug",
            "OCS_WORKERS": "4",
            "OCS_METRICS__ENABLED": "no",
            "OCS_DIAMETER__LISTEN": '["0.0.0.0", "::"]',
            "OCS_RADIUS__ACCT_PORT": "11813",
        },
    )
    assert config.redis.url == "redis://10.0.0.5:6379/0"
    assert config.redis.appendfsync == "always"  # untouched keys keep the file's value
    assert config.logging.level == "debug" and config.workers == 4
    assert config.metrics.enabled is False
    assert config.diameter == {"port": 3868, "listen": ["0.0.0.0", "::"]}
    assert config.radius == {"acct_port": 11813}


def test_environment_words_stay_words() -> None:
    """OCS_REDIS__APPENDFSYNC=no is the word `no`, not YAML's false."""
    assert load_config(None, {"OCS_REDIS__APPENDFSYNC": "no"}).redis.appendfsync == "no"


def test_empty_environment_value_is_null(tmp_path: Path) -> None:
    """OCS_REDIS__URL= (empty) unsets the file's URL: the embedded server is used."""
    path = write(tmp_path, {"redis": {"url": "redis://h:1/0"}})
    assert load_config(path, {"OCS_REDIS__URL": ""}).redis.url is None


def test_non_configuration_ocs_variables_are_ignored() -> None:
    """OCS_CONFIG (the CLI's) and OCS_TEST_* (the tests') are not configuration."""
    environ = {"OCS_CONFIG": "x.yaml", "OCS_TEST_REDIS_URL": "redis://h/0", "PATH": "/bin"}
    assert load_config(None, environ) == load_config(None, NO_ENV)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("OCS_DIAMETR__PORT", "did you mean OCS_DIAMETER__PORT?"),
        ("OCS_REDSI__URL", "did you mean OCS_REDIS__URL?"),
        ("OCS_WORKER", "did you mean OCS_WORKERS?"),
        ("OCS_CONFG", "did you mean OCS_CONFIG?"),
        ("OCS_FILE", "'file' names no configuration section"),
    ],
)
def test_unknown_ocs_variable_is_refused_with_a_suggestion(name: str, expected: str) -> None:
    """A misspelt section is an error naming the variable and the closest valid name."""
    message = error_of(None, {name: "1"})
    assert message.startswith(f"environment {name}: ")
    assert expected in message


def test_malformed_variable_name_is_refused() -> None:
    """OCS_REDIS___URL (three underscores: an empty key) is refused, not dropped."""
    assert "empty key" in error_of(None, {"OCS_REDIS____URL": "x"})


def test_section_errors_name_the_variable(tmp_path: Path) -> None:
    """OCS_EXPORT__PERIOD=weekly: the export section's error names the variable, not the file."""
    from ocs.export.config import load_export_config

    path = write(tmp_path / "config", {"export": {"period": "daily"}})
    environ = {"OCS_EXPORT__PERIOD": "weekly"}
    config = load_config(path, environ)
    with pytest.raises(ConfigError) as info:
        validate_section(
            type(load_export_config(None)), config.export, config.file, "export", environ
        )
    assert str(info.value).startswith("environment OCS_EXPORT__PERIOD: export.period: expected")
    # Keys the file set keep naming the file.
    config = load_config(write(tmp_path / "config", {"export": {"period": "weekly"}}), NO_ENV)
    with pytest.raises(ConfigError) as info:
        validate_section(type(load_export_config(None)), config.export, config.file, "export", {})
    assert str(info.value).startswith(f"{config.file}: export.period: expected")


def test_unknown_section_key_from_the_environment_suggests_the_key() -> None:
    """OCS_DIAMETER__PROT: the Diameter section refuses it, naming the variable and `port`."""
    from protocols.diameter.config import DiameterConfig

    environ = {"OCS_DIAMETER__PROT": "3869"}
    config = load_config(None, environ)
    with pytest.raises(ConfigError) as info:
        validate_section(DiameterConfig, config.diameter, None, "diameter", environ)
    message = str(info.value)
    assert message.startswith("environment OCS_DIAMETER__PROT: diameter.prot: unknown key")
    assert message.endswith("did you mean 'port'?")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"OCS_REDIS__APPENDFSYNC": "sometimes"},
            "environment OCS_REDIS__APPENDFSYNC: redis.appendfsync: expected one of always,"
            " everysec, no; got 'sometimes'",
        ),
        ({"OCS_REDIS__URLL": "redis://h"}, "environment OCS_REDIS__URLL: redis.urll: unknown key"),
        ({"OCS_METRICS__PORT": "x"}, "environment OCS_METRICS__PORT: metrics.port: expected an"),
        ({"OCS_REDIS": "5"}, "environment OCS_REDIS: redis: expected a mapping; got 5"),
        ({"OCS_WORKERS": "[1"}, "environment OCS_WORKERS: not a valid YAML value"),
    ],
    ids=["enum", "unknown-key", "type", "section-scalar", "bad-yaml"],
)
def test_environment_errors_name_the_variable(environ: dict[str, str], expected: str) -> None:
    """A bad override is reported against its variable, not the file."""
    assert expected in error_of(None, environ)


def test_file_errors_still_name_the_file_beside_env(tmp_path: Path) -> None:
    """With overrides present, an error in the file's own key still names the file."""
    path = write(tmp_path, {"workers": 0})
    message = error_of(path, {"OCS_LOGGING__LEVEL": "debug"})
    assert message.startswith(f"{path}: workers:")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: int = 1
    mode: str = "a"


def test_validate_section_ok() -> None:
    """A front end's raw section validates into its own model."""
    assert validate_section(_Section, {"port": 2}, None, "radius").port == 2
    assert validate_section(_Section, None, None, "radius").port == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"prot": 3},
            "/etc/ocs.yaml: radius.prot: unknown key (expected one of port, mode);"
            " did you mean 'port'?",
        ),
        ({"port": "x"}, "/etc/ocs.yaml: radius.port: expected an integer; got 'x'"),
        ("oops", "/etc/ocs.yaml: radius: expected a mapping; got 'oops'"),
    ],
    ids=["unknown-key", "type", "not-mapping"],
)
def test_validate_section_errors(raw: Any, expected: str) -> None:
    """validate_section errors: same format, prefixed with the section's key path."""
    with pytest.raises(ConfigError) as info:
        validate_section(_Section, raw, Path("/etc/ocs.yaml"), "radius")
    assert str(info.value) == expected
