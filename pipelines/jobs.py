"""Jobs: what the office runs. ``ingest_city`` is per city partition; ``publish_region`` builds the SQL models
and the releases from whatever every city has in the lake."""

from dagster import AssetSelection, define_asset_job

from pipelines.automation import WAREHOUSE_TAG

ingest_city = define_asset_job(
    name="ingest_city",
    selection=AssetSelection.groups("intake", "lake"),   # partitioned by city: Dagster infers it from the assets
    description="一都市分: 受付 → 読込・正規化 → 検証 → レイク / one city: land → read → validate → lake",
)

publish_region = define_asset_job(
    name="publish_region",
    selection=AssetSelection.groups("staging", "conformed", "marts", "publish"),
    # queued: one run writing the DuckDB warehouse at a time. `tags`, not `run_tags`: a run launched from the UI
    # or its GraphQL API gets the job's tags only (run_tags were missing there, so two such runs wrote at once)
    tags={WAREHOUSE_TAG: "writer"},
    description="地域全体: SQLモデル → 公開 / region: SQL models → releases",
)

anonymise_personal = define_asset_job(
    name="anonymise_personal",
    selection=AssetSelection.groups("anonymise"),
    description="匿名加工: 個人情報ファイル → 加工・独立検証 → 公開（検証合格時のみ） / personal files → anonymise, "
    "verify (blocking) → releases",
)
