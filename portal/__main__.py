"""``python -m portal``: serve the portal on 127.0.0.1 (port KOUIKI_PORT, default 8000)."""

from __future__ import annotations

import uvicorn

from kouiki.errors import friendly_errors
from portal.app import create_app
from portal.settings import DEFAULT_HOST, listen_port
from service.limits import Limits, uvicorn_options


def main() -> None:
    """Serve until interrupted, on the loopback address only (a reverse proxy publishes it). Request heads are
    capped in size, count and time as the upload service's are (service.limits: 431 / 408, never read whole)."""
    with friendly_errors("kouiki-portal"):   # configuration errors as one line, no traceback
        uvicorn.run(create_app(), host=DEFAULT_HOST, port=listen_port(), log_level="info", proxy_headers=False,
                    **uvicorn_options(Limits.from_env()))


if __name__ == "__main__":
    main()
