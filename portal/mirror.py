"""The portal's copy of the releases at ``<KOUIKI_LAKE_URL>/releases`` (when that is set).

The portal reads its releases from the home's ``releases/`` folder (``portal.store``). With the URL set, that
folder is a working copy of the URL's releases: taken once before the portal serves (a portal on a machine with
an empty ``KOUIKI_HOME`` serves the same files, byte for byte), then every :data:`INTERVAL_S` seconds in a
background thread, so a release published from another machine appears without a restart. Each release is
checked against its metadata.json before it is renamed into place and ``latest.json`` moves last
(``publish.remote``), so a request never sees half a release; an object that does not match is refused and
logged, one line naming it. A failure to reach the URL is logged and the portal goes on serving what it has.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from publish.remote import Pulled, pull_releases

log = logging.getLogger(__name__)
INTERVAL_S = 30.0      # a listing and one small GET per dataset each time: cheap, and new releases are rare


class ReleaseMirror:
    """Keeps ``local`` (the home's releases folder) in step with ``remote`` (``Paths.remote_releases``)."""

    def __init__(self, remote: str, local: Path, interval_s: float = INTERVAL_S) -> None:
        self.remote, self.local, self.interval_s = remote, local, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pull(self) -> Pulled:
        """Take what the URL has and the home lacks; never raises (the portal keeps serving what it has)."""
        try:
            result = pull_releases(self.remote, self.local)
        except Exception as exc:   # a network or credentials failure: say so, serve the copy
            log.warning("portal: %s: 公開データを取得できません / cannot read the releases: %s", self.remote,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return Pulled()
        for line in result.pulled:
            log.info("portal: %s", line)
        for line in result.problems:
            log.error("portal: %s", line)
        return result

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kouiki-release-mirror", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.pull()
