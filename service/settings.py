"""Settings of the upload service, from the environment (the same ``KOUIKI_HOME`` as the pipeline)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kouiki.settings import Paths, kouiki_home, members_file

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8100
DEFAULT_MAX_UPLOAD_MB = 200.0
DEFAULT_VALIDATION_WORKERS = 2


@dataclass(frozen=True)
class ServiceSettings:
    """Where the service keeps its state and how much it accepts."""

    home: Path
    members_file: Path
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1_000_000)
    validation_workers: int = DEFAULT_VALIDATION_WORKERS   # uploads read and validated at the same time

    @property
    def paths(self) -> Paths:
        return Paths(self.home).ensure()

    @classmethod
    def from_env(cls) -> ServiceSettings:
        """KOUIKI_HOME, KOUIKI_MEMBERS, KOUIKI_MAX_UPLOAD_MB (default 200), KOUIKI_SERVICE_WORKERS (default 2)."""
        return cls(
            home=kouiki_home(),
            members_file=members_file(),
            max_upload_bytes=int(positive_number("KOUIKI_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB) * 1_000_000),
            validation_workers=int(positive_number("KOUIKI_SERVICE_WORKERS", DEFAULT_VALIDATION_WORKERS)),
        )


def listen_port() -> int:
    """KOUIKI_SERVICE_PORT, default 8100."""
    return int(positive_number("KOUIKI_SERVICE_PORT", DEFAULT_PORT))


def positive_number(name: str, default: float) -> float:
    """The environment variable ``name`` as a number > 0, ``default`` when unset; a ConfigError (one line) else."""
    from kouiki.errors import ConfigError

    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: 数値を指定してください / must be a number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r}: 0 より大きい値を指定してください / must be greater than 0")
    return value
