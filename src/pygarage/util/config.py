"""garage.toml -> frozen, validated configuration.

Keys and defaults follow Garage's configuration reference; unknown keys are ignored with a
warning so that a Garage config file works unchanged.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .duration import parse_duration

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A config problem a person can fix; the message says what and where."""


# ASCII digits only (int() would read other scripts' digits too); fullmatch.
_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)(i?)b?\s*", re.IGNORECASE)
_SIZE_MAX_DIGITS = 24  # far beyond any disk; a longer number is a mistake, not a size


def parse_size(value: int | str) -> int:
    """'1M' -> 1_000_000, '1MiB' -> 1_048_576, 42 -> 42."""
    if isinstance(value, bool):
        raise ConfigError(f"invalid size: {_shown(value)}")
    if isinstance(value, int):
        return value
    m = _SIZE_RE.fullmatch(str(value))
    if m and len(m.group(1)) > _SIZE_MAX_DIGITS:
        raise ConfigError(f"invalid size: {_shown(value)}: too large")
    if not m:
        raise ConfigError(f"invalid size: {_shown(value)} (examples: 1048576, '1M', '1MiB', '10G')")
    number, unit, binary = m.groups()
    power = "kmgtp".find(unit.lower()) + 1 if unit else 0
    base = 1024 if binary else 1000
    scale = base**power
    return int(float(number) * scale) if "." in number else int(number) * scale


@dataclass(frozen=True)
class DataDir:
    path: Path
    capacity: int | None = None
    read_only: bool = False


@dataclass(frozen=True)
class S3ApiConfig:
    s3_region: str = "garage"
    api_bind_addr: str | None = None
    root_domain: str | None = None
    # False: signatures scoped to us-east-1 (what SDKs send when given no region) are
    # accepted besides s3_region. True: only s3_region (GetBucketLocation excepted, as on AWS).
    strict_region: bool = False


@dataclass(frozen=True)
class WebConfig:
    bind_addr: str
    root_domain: str
    add_host_to_metrics: bool = False
    # Index document of buckets given website access without one (admin API, CLI).
    index: str = "index.html"


@dataclass(frozen=True)
class AdminConfig:
    api_bind_addr: str | None = None
    admin_token: str | None = None
    metrics_token: str | None = None
    metrics_require_token: bool = False


@dataclass(frozen=True)
class Config:
    metadata_dir: Path
    data_dirs: tuple[DataDir, ...]
    rpc_secret: bytes
    rpc_bind_addr: str
    replication_factor: int = 1
    consistency_mode: str = "consistent"
    db_engine: str = "lmdb"
    metadata_fsync: bool = False
    data_fsync: bool = False
    block_size: int = 1024 * 1024
    block_ram_buffer_max: int = 256 * 1024 * 1024
    compression_level: int | None = 1
    lmdb_map_size: int = 1 << 40
    rpc_public_addr: str | None = None
    # Outgoing RPC connections leave from rpc_bind_addr's IP (Garage's key, default off).
    rpc_bind_outgoing: bool = False
    rpc_timeout_msec: int = 300_000
    rpc_ping_timeout_msec: int = 10_000
    bootstrap_peers: tuple[str, ...] = ()
    allow_punycode: bool = False
    disable_scrub: bool = False
    # Where `garage meta snapshot` writes (default metadata_dir/snapshots), and how often a
    # node snapshots its metadata by itself (seconds; None: never).
    metadata_snapshots_dir: Path | None = None
    metadata_auto_snapshot_interval: int | None = None
    # Front-end protection of the S3 and admin HTTP listeners (not Garage keys).
    http_max_connections: int = 4096
    http_header_timeout_msec: int = 20_000
    s3_api: S3ApiConfig = field(default_factory=S3ApiConfig)
    s3_web: WebConfig | None = None
    admin: AdminConfig = field(default_factory=AdminConfig)
    source: Path | None = None

    @property
    def data_dir(self) -> Path:
        return self.data_dirs[0].path

    @property
    def rpc_outgoing_ip(self) -> str | None:
        """The IP outgoing RPC connections leave from (rpc_bind_outgoing); None lets the
        kernel pick, as does a wildcard rpc_bind_addr (binding to it constrains nothing)."""
        if not self.rpc_bind_outgoing:
            return None
        host = split_host_port(self.rpc_bind_addr)[0]
        return None if host in ("0.0.0.0", "::") else host


_KNOWN_TOP = {
    "metadata_dir", "data_dir", "rpc_secret", "rpc_secret_file", "rpc_bind_addr",
    "replication_factor", "replication_mode", "consistency_mode", "db_engine", "metadata_fsync",
    "data_fsync", "block_size", "block_ram_buffer_max", "compression_level", "lmdb_map_size",
    "rpc_public_addr", "rpc_timeout_msec", "rpc_ping_timeout_msec", "bootstrap_peers",
    "allow_punycode", "disable_scrub", "s3_api", "s3_web", "admin", "k2v_api",
    "allow_world_readable_secrets", "metadata_snapshots_dir", "metadata_auto_snapshot_interval",
    "use_local_tz", "rpc_bind_outgoing", "rpc_public_addr_subnet", "consul_discovery",
    "kubernetes_discovery", "sled_cache_capacity", "sled_flush_every_ms",
    "http_max_connections", "http_header_timeout_msec",
}

_LEGACY_REPLICATION = {"none": (1, "consistent"), "1": (1, "consistent"),
                       "2": (2, "consistent"), "2-dangerous": (2, "dangerous"),
                       "3": (3, "consistent"), "3-degraded": (3, "degraded"),
                       "3-dangerous": (3, "dangerous")}


def _data_dir_entry(d: Any) -> DataDir:
    """One `{path, capacity}` or `{path, read_only = true}` item of a data_dir list."""
    if not isinstance(d, dict) or not isinstance(d.get("path"), str):
        raise ConfigError("data_dir: each item must be { path = \"...\", capacity = \"...\" } "
                          "or { path = \"...\", read_only = true }")
    read_only = d.get("read_only", False)
    if not isinstance(read_only, bool):
        raise ConfigError(f"data_dir {d['path']}: read_only must be true or false")
    cap = d.get("capacity")
    if read_only == (cap is not None):
        raise ConfigError(f"data_dir {d['path']}: give a capacity, or read_only = true "
                          "(not both)")
    capacity = None if cap is None else parse_size(cap)
    if capacity is not None and capacity <= 0:
        raise ConfigError(f"data_dir {d['path']}: the capacity must not be zero")
    return DataDir(Path(d["path"]), capacity, read_only)


def _read_secret_file(path: str, allow_world_readable: bool) -> str:
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError as e:
        raise ConfigError(f"cannot read secret file {path}: {e.strerror}") from None
    if not allow_world_readable and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"secret file {path} must not be readable by group or others "
                          "(chmod 600, or set allow_world_readable_secrets = true)")
    return p.read_text().strip()


def _secret(raw: dict[str, Any], name: str, env: str, allow_wr: bool) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    if os.environ.get(env + "_FILE"):
        return _read_secret_file(os.environ[env + "_FILE"], allow_wr)
    if raw.get(name):
        return str(raw[name])
    if raw.get(name + "_file"):
        return _read_secret_file(str(raw[name + "_file"]), allow_wr)
    return None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path} (use -c or GARAGE_CONFIG_FILE)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    return config_from_dict(raw, source=path)


# Garage keys pygarage does not implement: refused rather than silently ignored.
_UNSUPPORTED = {
    "consul_discovery": "Consul discovery is not supported: list peers in bootstrap_peers "
                        "or use `garage node connect`",
    "kubernetes_discovery": "Kubernetes discovery is not supported: list peers in "
                            "bootstrap_peers or use `garage node connect`",
    "rpc_public_addr_subnet": "rpc_public_addr_subnet is not supported: set rpc_public_addr",
    "k2v_api": "the K2V API is not implemented in pygarage yet: remove the [k2v_api] section",
}


def config_from_dict(raw: dict[str, Any], source: Path | None = None) -> Config:
    for k in raw:
        if k in _UNSUPPORTED:
            raise ConfigError(f"{k}: {_UNSUPPORTED[k]}")
        if k in ("sled_cache_capacity", "sled_flush_every_ms"):
            log.warning("config: %s ignored: sled is not a db engine of pygarage", k)
        elif k not in _KNOWN_TOP:
            log.warning("config: unknown key %r ignored", k)
    if raw.get("use_local_tz"):
        raise ConfigError("use_local_tz = true is not supported: lifecycle days are counted "
                          "in UTC (remove the key or set it to false)")
    allow_wr = _bool(raw, "allow_world_readable_secrets", False) or bool(
        os.environ.get("GARAGE_ALLOW_WORLD_READABLE_SECRETS"))

    rf, mode = 1, _str(raw, "consistency_mode", "consistent")
    if "replication_factor" in raw:
        rf = _int_in(raw, "replication_factor", 1, 1, 100)
    elif "replication_mode" in raw:
        legacy = _LEGACY_REPLICATION.get(str(raw["replication_mode"]))
        if legacy is None:
            raise ConfigError(f"invalid replication_mode: {_shown(raw['replication_mode'])}")
        rf, mode = legacy
    else:
        raise ConfigError("missing required config key: replication_factor")
    if mode not in ("consistent", "degraded", "dangerous"):
        raise ConfigError(f"invalid consistency_mode: {_shown(mode)}")

    secret_hex = _secret(raw, "rpc_secret", "GARAGE_RPC_SECRET", allow_wr)
    if not secret_hex:
        raise ConfigError("rpc_secret (or rpc_secret_file) is required")
    try:
        secret = bytes.fromhex(secret_hex)
    except ValueError:
        secret = b""
    if len(secret) != 32:
        raise ConfigError("rpc_secret must be 32 bytes written as 64 hex digits "
                          "(generate one with: openssl rand -hex 32)")

    dd = _required(raw, "data_dir")
    if isinstance(dd, str):
        data_dirs: tuple[DataDir, ...] = (DataDir(Path(dd)),)
    else:
        if not isinstance(dd, list) or not dd:
            raise ConfigError("data_dir: a path, or a non-empty list of directories")
        data_dirs = tuple(_data_dir_entry(d) for d in dd)
        if len({d.path for d in data_dirs}) < len(data_dirs):
            raise ConfigError("data_dir: a directory is listed twice")
        if not any(not d.read_only for d in data_dirs):
            raise ConfigError("data_dir: at least one directory must be writable")

    engine = _str(raw, "db_engine", "lmdb")
    if engine not in ("lmdb", "sqlite"):
        raise ConfigError(f"db_engine must be 'lmdb' or 'sqlite', not {_shown(engine)}")

    level_raw = raw.get("compression_level", 1)
    level: int | None
    if level_raw == "none":
        level = None
    elif isinstance(level_raw, int) and not isinstance(level_raw, bool) \
            and -99 <= level_raw <= 22:
        level = level_raw
    else:
        raise ConfigError("compression_level must be an integer between -99 and 22, or "
                          f"'none', not {_shown(level_raw)}")

    ram_buffer_max = parse_size(raw.get("block_ram_buffer_max", "256MiB"))
    if ram_buffer_max < 1024:
        raise ConfigError("block_ram_buffer_max must be at least 1 KiB (e.g. '256MiB')")

    block_size = parse_size(raw.get("block_size", 1024 * 1024))
    if not 1024 <= block_size <= 1 << 30:
        raise ConfigError("block_size must be between 1 KiB and 1 GiB")

    bind_outgoing = raw.get("rpc_bind_outgoing", False)
    if not isinstance(bind_outgoing, bool):
        raise ConfigError("rpc_bind_outgoing must be true or false")

    snap_dir = raw.get("metadata_snapshots_dir")
    if snap_dir is not None and not (isinstance(snap_dir, str) and snap_dir):
        raise ConfigError("metadata_snapshots_dir must be a directory path")
    auto_snap = _auto_snapshot_interval(raw.get("metadata_auto_snapshot_interval"))

    max_conns = _int_in(raw, "http_max_connections", 4096, 1, 10_000_000)
    header_timeout = _int_in(raw, "http_header_timeout_msec", 20_000, 100, 3_600_000)

    s3raw = raw.get("s3_api")
    if s3raw is None:
        # Old single-section configs put s3_region at top level (quick start of Garage 0.x).
        s3raw = {k: raw[k] for k in ("s3_region", "api_bind_addr", "root_domain") if k in raw}
    if not isinstance(s3raw, dict):
        raise ConfigError("[s3_api] must be a section")
    s3 = S3ApiConfig(s3_region=_str(s3raw, "s3_region", "garage", "s3_api."),
                     api_bind_addr=_opt_addr(s3raw, "api_bind_addr", "s3_api."),
                     root_domain=_opt_str(s3raw, "root_domain", "s3_api."),
                     strict_region=_bool(s3raw, "strict_region", False, "s3_api."))
    web = None
    if raw.get("s3_web"):
        w = raw["s3_web"]
        if not isinstance(w, dict) or "bind_addr" not in w:
            raise ConfigError("[s3_web] must be a section with bind_addr")
        index = w.get("index", "index.html")
        if not isinstance(index, str) or not index or "/" in index:
            raise ConfigError("s3_web.index must be a file name without '/'")
        web = WebConfig(bind_addr=_opt_addr(w, "bind_addr", "s3_web.") or "",
                        root_domain=_str(w, "root_domain", "", "s3_web."),
                        add_host_to_metrics=_bool(w, "add_host_to_metrics", False, "s3_web."),
                        index=index)
    adm = raw.get("admin", {})
    if not isinstance(adm, dict):
        raise ConfigError("[admin] must be a section")
    admin = AdminConfig(
        api_bind_addr=_opt_addr(adm, "api_bind_addr", "admin."),
        admin_token=_secret(adm, "admin_token", "GARAGE_ADMIN_TOKEN", allow_wr),
        metrics_token=_secret(adm, "metrics_token", "GARAGE_METRICS_TOKEN", allow_wr),
        metrics_require_token=_bool(adm, "metrics_require_token", False, "admin."))

    return Config(
        metadata_dir=Path(_required_str(raw, "metadata_dir")),
        data_dirs=data_dirs,
        rpc_secret=secret,
        rpc_bind_addr=_required_str(raw, "rpc_bind_addr"),
        replication_factor=rf,
        consistency_mode=mode,
        db_engine=engine,
        metadata_fsync=_bool(raw, "metadata_fsync", False),
        data_fsync=_bool(raw, "data_fsync", False),
        block_size=block_size,
        block_ram_buffer_max=ram_buffer_max,
        compression_level=level,
        lmdb_map_size=parse_size(raw.get("lmdb_map_size", 1 << 40)),
        rpc_public_addr=_opt_addr(raw, "rpc_public_addr"),
        rpc_bind_outgoing=bind_outgoing,
        rpc_timeout_msec=_int_in(raw, "rpc_timeout_msec", 300_000, 100, 86_400_000),
        rpc_ping_timeout_msec=_int_in(raw, "rpc_ping_timeout_msec", 10_000, 100, 3_600_000),
        bootstrap_peers=_bootstrap_peers(raw.get("bootstrap_peers", [])),
        allow_punycode=_bool(raw, "allow_punycode", False),
        disable_scrub=_bool(raw, "disable_scrub", False),
        metadata_snapshots_dir=Path(snap_dir) if snap_dir else None,
        metadata_auto_snapshot_interval=auto_snap,
        http_max_connections=max_conns,
        http_header_timeout_msec=header_timeout,
        s3_api=s3,
        s3_web=web,
        admin=admin,
        source=source,
    )


def _bootstrap_peers(v: Any) -> tuple[str, ...]:
    from .peer_addr import PeerAddrError, parse_peer  # peer_addr imports this module

    if not isinstance(v, list) or not all(isinstance(p, str) for p in v):
        raise ConfigError('bootstrap_peers must be a list of "<node id>@<host>:<port>"')
    for p in v:
        try:
            parse_peer(p)
        except PeerAddrError as e:
            raise ConfigError(f"bootstrap_peers: {e}") from None
    return tuple(v)


MIN_AUTO_SNAPSHOT_SECS = 600


def _auto_snapshot_interval(v: Any) -> int | None:
    """As Garage: a duration ("6h", "1d"), at least 10 minutes."""
    if v is None:
        return None
    try:
        secs = parse_duration(v) if isinstance(v, str) else -1
    except ValueError:
        secs = -1
    if secs < 0:
        raise ConfigError("metadata_auto_snapshot_interval must be a duration such as "
                          f"\"6h\" or \"1d\", not {_shown(v)}")
    if secs < MIN_AUTO_SNAPSHOT_SECS:
        raise ConfigError("metadata_auto_snapshot_interval is too small: at least 10 minutes")
    return secs


def _shown(v: Any) -> str:
    """A wrong value as quoted in an error: cut, so 5,000 digits make one readable line."""
    text = repr(v)
    return text if len(text) <= 60 else f"{text[:60]}... ({len(text)} characters)"


def _bool(raw: dict[str, Any], key: str, default: bool, where: str = "") -> bool:
    """A TOML boolean: a string such as "false" is refused, not read as true."""
    v = raw.get(key, default)
    if not isinstance(v, bool):
        raise ConfigError(f"{where}{key} must be true or false, not {_shown(v)}")
    return v


def _opt_str(raw: dict[str, Any], key: str, where: str = "") -> str | None:
    """A TOML string, None when absent: a number or list is refused, not turned into its
    text."""
    v = raw.get(key)
    if v is not None and not isinstance(v, str):
        raise ConfigError(f"{where}{key} must be a string, not {_shown(v)}")
    return v


def _opt_addr(raw: dict[str, Any], key: str, where: str = "") -> str | None:
    """An optional address: absent means "not at all"; an empty one is refused (it would
    have silently meant the same)."""
    v = _opt_str(raw, key, where)
    if v == "":
        raise ConfigError(f"{where}{key} must be an address such as \"[::]:3900\" (remove "
                          "the key rather than leave it empty)")
    return v


def _str(raw: dict[str, Any], key: str, default: str, where: str = "") -> str:
    v = _opt_str(raw, key, where)
    return default if v is None else v


def _required(raw: dict[str, Any], key: str) -> Any:
    if key not in raw:
        raise ConfigError(f"missing required config key: {key}")
    return raw[key]


def _required_str(raw: dict[str, Any], key: str) -> str:
    _required(raw, key)
    v = _opt_str(raw, key)
    if not v:
        raise ConfigError(f"{key} must not be empty")
    return v


def _int_in(raw: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    v = raw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{key} must be an integer between {lo} and {hi}, not {_shown(v)}")
    return v


def split_host_port(addr: str) -> tuple[str, int]:
    """'[::]:3901' -> ('::', 3901); '127.0.0.1:3900' -> ('127.0.0.1', 3900)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or len(port) > 5:
        raise ConfigError(f"invalid address {_shown(addr)}: expected host:port")
    return host.strip("[]") or "0.0.0.0", int(port)
