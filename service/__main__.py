"""``python -m service``: serve the upload service on 127.0.0.1 (port KOUIKI_SERVICE_PORT, default 8100)."""

from __future__ import annotations

import uvicorn

from kouiki.errors import friendly_errors
from service.app import create_app
from service.limits import Limits, uvicorn_options
from service.settings import DEFAULT_HOST, listen_port


def main() -> None:
    """Serve until interrupted, on the loopback address only (a reverse proxy with TLS publishes it). Request
    heads are capped in size, count and time (service.limits); configuration errors are one line."""
    with friendly_errors("kouiki-service"):
        limits = Limits.from_env()
        uvicorn.run(create_app(), host=DEFAULT_HOST, port=listen_port(), log_level="info", proxy_headers=False,
                    **uvicorn_options(limits))


if __name__ == "__main__":
    main()
