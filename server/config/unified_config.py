"""Unified server configuration.

Loads ``unified_config.yaml`` next to this module and applies overrides from the
environment (``config.env`` is sourced by the systemd unit on the VM). The
release fallback below is kept in sync with the workspace ``VERSION`` file by
``cargo xtask bump``; do not edit it by hand.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

logger = logging.getLogger(__name__)

CONFIG_PATH = Path(
    os.getenv("NEXY_CONFIG_PATH", Path(__file__).with_name("unified_config.yaml"))
)
SERVER_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class GrpcConfig:
    host: str = "0.0.0.0"
    port: int = 50051
    max_workers: int = 16
    max_message_mb: int = 32


@dataclass
class HttpConfig:
    host: str = "0.0.0.0"
    port: int = 8080


@dataclass
class UpdatesConfig:
    enabled: bool = True
    port: int = 8081
    manifest_path: Path = SERVER_ROOT / "updates" / "manifests" / "manifest.json"
    default_version: str = ""
    default_build: str = ""


@dataclass
class GeminiConfig:
    api_key: Optional[str] = None
    model: str = "gemini-2.0-flash"
    live_model: str = "gemini-2.0-flash-live-001"
    temperature: float = 0.7

    @property
    def is_configured(self) -> bool:
        return bool(self.api_key) and self.api_key != "YOUR_GEMINI_API_KEY_HERE"


@dataclass
class UnifiedConfig:
    version: str
    build: str
    environment: str = "production"
    log_level: str = "INFO"
    grpc: GrpcConfig = field(default_factory=GrpcConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    updates: UpdatesConfig = field(default_factory=UpdatesConfig)
    gemini: GeminiConfig = field(default_factory=GeminiConfig)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)


def _read_yaml(path: Path) -> Dict[str, Any]:
    try:
        with path.open("r", encoding="utf-8") as fh:
            return yaml.safe_load(fh) or {}
    except FileNotFoundError:
        logger.warning("Config %s not found, using built-in defaults", path)
        return {}


def _env_int(name: str, default: int) -> int:
    value = os.getenv(name)
    return int(value) if value not in (None, "") else default


def _server_version() -> str:
    # config.env wins; the literal fallback mirrors VERSION.
    return os.getenv('SERVER_VERSION', '2.0.0.4')


def load_config(path: Path = CONFIG_PATH) -> UnifiedConfig:
    raw = _read_yaml(path)
    server = raw.get("server", {})
    grpc_raw = raw.get("grpc", {})
    http_raw = raw.get("http", {})
    updates_raw = raw.get("updates", {})
    gemini_raw = raw.get("gemini", {})

    version = _server_version()
    # The build follows the version unless config.env sets it.
    build = os.getenv('SERVER_BUILD') or version
    if server.get("version") and server["version"] != version:
        logger.warning(
            "Release drift: yaml says %s, running as %s", server["version"], version
        )

    manifest = Path(
        os.getenv(
            "UPDATE_MANIFEST_PATH",
            SERVER_ROOT.parent
            / updates_raw.get("manifests_dir", "server/updates/manifests")
            / updates_raw.get("manifest_file", "manifest.json"),
        )
    )

    return UnifiedConfig(
        version=version,
        build=build,
        environment=os.getenv("NEXY_ENV", server.get("environment", "production")),
        log_level=os.getenv("LOG_LEVEL", raw.get("logging", {}).get("level", "INFO")),
        grpc=GrpcConfig(
            host=os.getenv("GRPC_HOST", grpc_raw.get("host", "0.0.0.0")),
            port=_env_int("GRPC_PORT", grpc_raw.get("port", 50051)),
            max_workers=_env_int("GRPC_MAX_WORKERS", grpc_raw.get("max_workers", 16)),
            max_message_mb=grpc_raw.get("max_message_mb", 32),
        ),
        http=HttpConfig(
            host=http_raw.get("host", "0.0.0.0"),
            port=_env_int("HTTP_PORT", http_raw.get("port", 8080)),
        ),
        updates=UpdatesConfig(
            enabled=updates_raw.get("enabled", True),
            port=_env_int("UPDATE_SERVER_PORT", updates_raw.get("port", 8081)),
            manifest_path=manifest,
            default_version=updates_raw.get("default_version", version),
            default_build=updates_raw.get("default_build", build),
        ),
        gemini=GeminiConfig(
            api_key=os.getenv("GEMINI_API_KEY"),
            model=os.getenv("GEMINI_MODEL", gemini_raw.get("model", "gemini-2.0-flash")),
            live_model=gemini_raw.get("live_model", "gemini-2.0-flash-live-001"),
            temperature=float(gemini_raw.get("temperature", 0.7)),
        ),
        raw=raw,
    )


_config: Optional[UnifiedConfig] = None


def get_config() -> UnifiedConfig:
    """Return the process-wide configuration, loading it on first use."""
    global _config
    if _config is None:
        _config = load_config()
        if not _config.gemini.is_configured:
            logger.error("GEMINI_API_KEY is missing or still the placeholder")
    return _config
