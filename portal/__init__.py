"""The public portal: dataset list, dataset pages, downloads and a CKAN-compatible Action API.

It reads only published releases (``$KOUIKI_HOME/releases``, written by ``publish.release``) and, for the
quality summary, the counts of ``lake/findings``. It never opens ``warehouse.duckdb`` (the pipeline holds its
write lock) and never serves anything outside the files a release's ``metadata.json`` lists.

Run it with ``python -m portal`` (127.0.0.1, port ``KOUIKI_PORT`` or 8000).
"""

from portal.app import create_app

__all__ = ["create_app"]
