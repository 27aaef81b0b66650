"""Config parsing: defaults, sizes, legacy keys, errors a person can act on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pygarage.util.config import ConfigError, config_from_dict, load_config, parse_size

BASE = {"metadata_dir": "/m", "data_dir": "/d", "rpc_bind_addr": "[::]:3901",
        "rpc_secret": "11" * 32, "replication_factor": 1}


def test_sizes() -> None:
    assert parse_size("1M") == 1_000_000
    assert parse_size("1MiB") == 1 << 20
    assert parse_size("10G") == 10 * 10**9
    assert parse_size(42) == 42
    assert parse_size(" 2 MiB ") == 2 << 20
    assert parse_size("12345678901234567890") == 12345678901234567890  # exact, not a float
    with pytest.raises(ConfigError):
        parse_size("lots")
    # Other scripts' digits (int() reads them), a final newline kept by a quoted TOML value,
    # 5,000 digits (was an OverflowError: a traceback at startup), a float overflow.
    for bad in ("\u0663", "\u0661G", "1\u0660M", "9" * 5000, "1" * 400 + ".5", "1e400", "1M\nx"):
        with pytest.raises(ConfigError):
            parse_size(bad)


def test_defaults_and_sections() -> None:
    c = config_from_dict(dict(BASE, s3_api={"s3_region": "eu", "api_bind_addr": "[::]:3900"},
                              compression_level="none", block_size="256KiB"))
    assert c.db_engine == "lmdb" and c.compression_level is None
    assert c.block_size == 256 * 1024 and c.s3_api.s3_region == "eu"


def test_legacy_replication_mode() -> None:
    raw = dict(BASE)
    del raw["replication_factor"]
    raw["replication_mode"] = "none"
    assert config_from_dict(raw).replication_factor == 1


@pytest.mark.parametrize("bad, msg", [({"rpc_secret": "abc"}, "64 hex"),
                                      ({"db_engine": "sled"}, "db_engine"),
                                      ({"compression_level": 99}, "compression_level")])
def test_errors(bad: dict[str, object], msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        config_from_dict(dict(BASE, **bad))


def test_missing_file_and_world_readable_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    secret = tmp_path / "secret"
    secret.write_text("22" * 32)
    os.chmod(secret, 0o644)
    raw = dict(BASE)
    del raw["rpc_secret"]
    raw["rpc_secret_file"] = str(secret)
    with pytest.raises(ConfigError, match="readable"):
        config_from_dict(raw)
    os.chmod(secret, 0o600)
    assert config_from_dict(raw).rpc_secret == bytes.fromhex("22" * 32)


def test_k2v_api_section_is_refused_not_ignored() -> None:
    """A [k2v_api] section would configure an endpoint pygarage does not serve: refused at
    start with the reason, never accepted and left listening nowhere."""
    base = {"metadata_dir": "/tmp/m", "data_dir": "/tmp/d", "replication_factor": 1,
            "rpc_secret": "ab" * 32, "rpc_bind_addr": "127.0.0.1:3901"}
    config_from_dict(base)
    with pytest.raises(ConfigError, match="K2V"):
        config_from_dict(dict(base, k2v_api={"api_bind_addr": "127.0.0.1:3904"}))


def test_use_local_tz_true_is_refused() -> None:
    base = {"metadata_dir": "/tmp/m", "data_dir": "/tmp/d", "replication_factor": 1,
            "rpc_secret": "ab" * 32, "rpc_bind_addr": "127.0.0.1:3901"}
    config_from_dict(dict(base, use_local_tz=False))
    with pytest.raises(ConfigError, match="use_local_tz"):
        config_from_dict(dict(base, use_local_tz=True))


def test_unknown_and_sled_keys_are_each_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="pygarage.util.config"):
        config_from_dict(dict(BASE, metadata_dir_typo="/x", sled_cache_capacity="1G"))
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs.count("config: unknown key 'metadata_dir_typo' ignored") == 1
    assert msgs.count("config: sled_cache_capacity ignored: sled is not a db engine "
                      "of pygarage") == 1
    assert len(msgs) == 2, msgs


# Each key with values of the wrong type or out of range: a ConfigError naming the key (a
# person can fix it), never a traceback at startup and never a silent reading such as
# bool("false") == True.
WRONG = ["", "false", "9" * 5000, -1, 2**64, 1.5, float("inf"), float("nan"), [], {}, None]


@pytest.mark.parametrize(("section", "key", "good"), [
    ("", "replication_factor", 3), ("", "compression_level", 3), ("", "rpc_timeout_msec", 1000),
    ("", "rpc_ping_timeout_msec", 1000), ("", "metadata_fsync", True), ("", "data_fsync", True),
    ("", "allow_punycode", True), ("", "disable_scrub", True),
    ("", "allow_world_readable_secrets", True), ("", "metadata_dir", "/meta"),
    ("", "rpc_bind_addr", "[::]:3901"), ("", "rpc_public_addr", "10.0.0.1:3901"),
    ("", "db_engine", "sqlite"), ("", "consistency_mode", "degraded"),
    ("s3_api", "s3_region", "eu"), ("s3_api", "api_bind_addr", "[::]:3900"),
    ("s3_api", "root_domain", ".s3"), ("s3_api", "strict_region", True),
    ("s3_web", "root_domain", ".web"), ("s3_web", "add_host_to_metrics", True),
    ("s3_web", "bind_addr", "[::]:3902"),
    ("admin", "api_bind_addr", "[::]:3903"), ("admin", "metrics_require_token", True),
])
def test_wrong_types_are_config_errors(section: str, key: str, good: object) -> None:
    def config(value: object) -> dict[str, object]:
        raw: dict[str, object] = dict(BASE, s3_web={"bind_addr": "[::]:3902"})
        if section:
            raw[section] = dict(raw.get(section) or {}, **{key: value})  # type: ignore[arg-type]
        else:
            raw[key] = value
        return raw

    config_from_dict(config(good))
    for bad in WRONG:
        if bad is None and key not in ("metadata_dir", "rpc_bind_addr"):
            continue  # absent: the default
        if isinstance(bad, str) and not isinstance(good, bool | int) and bad != "":
            continue  # any string is a string
        if bad == "" and key in ("s3_region", "root_domain"):
            continue  # a string (an empty root domain: no vhost-style buckets)
        if key == "compression_level" and bad == -1:
            continue  # a valid level (zstd's fast levels are negative)
        with pytest.raises(ConfigError, match=key) as e:
            config_from_dict(config(bad))
        assert len(str(e.value)) < 300  # one readable line, even for 5,000 digits
