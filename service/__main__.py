"""``python -m service``: serve the upload service on 127.0.0.1 (port KOUIKI_SERVICE_PORT, default 8100)."""

from __future__ import annotations

import uvicorn

from service.app import create_app
from service.settings import DEFAULT_HOST, listen_port


def main() -> None:
    """Serve until interrupted, on the loopback address only (a reverse proxy with TLS publishes it)."""
    uvicorn.run(create_app(), host=DEFAULT_HOST, port=listen_port(), log_level="info", proxy_headers=False)


if __name__ == "__main__":
    main()
