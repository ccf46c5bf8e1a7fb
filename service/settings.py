"""The upload service's settings: a view on :class:`kouiki.settings.Settings` (the same ``KOUIKI_HOME`` as the
pipeline; the service's own variables are ``settings.service`` in the one settings table)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kouiki.settings import Paths, Settings, default

DEFAULT_HOST = "127.0.0.1"   # the loopback address only: a reverse proxy with TLS publishes the service


@dataclass(frozen=True)
class ServiceSettings:
    """Where the service keeps its state and how much it accepts."""

    home: Path
    members_file: Path
    max_upload_bytes: int = int(default("KOUIKI_MAX_UPLOAD_MB") * 1_000_000)
    validation_workers: int = default("KOUIKI_SERVICE_WORKERS")   # uploads read and validated at the same time

    @property
    def paths(self) -> Paths:
        return Paths(self.home).ensure()

    @classmethod
    def from_env(cls) -> ServiceSettings:
        """KOUIKI_HOME, KOUIKI_MEMBERS, KOUIKI_MAX_UPLOAD_MB, KOUIKI_SERVICE_WORKERS, through ``Settings``."""
        settings = Settings.from_env()
        return cls(home=settings.home, members_file=settings.members,
                   max_upload_bytes=int(settings.service.max_upload_mb * 1_000_000),
                   validation_workers=settings.service.workers)


def listen_port() -> int:
    """KOUIKI_SERVICE_PORT (default 8100)."""
    return Settings.from_env().service.port
