-- materialized: table
-- description: 品質の推移 (構成市×データセット×アップロード) / quality trend: one row per processed upload of each member city and dataset, in the order received, with the share of valid rows and its change since the previous upload.
WITH uploads AS (
    -- an upload reprocessed later (e.g. after the lake was rebuilt) counts once: its newest validation
    SELECT *
    FROM history.uploads
    QUALIFY row_number() OVER (PARTITION BY upload_id ORDER BY validated_at DESC) = 1
),
numbered AS (
    SELECT
        u.*,
        row_number() OVER w AS upload_no,
        count(*) OVER (PARTITION BY u._city_code, u.dataset_id) AS uploads_total,
        lag(u.pass_rate) OVER w AS previous_share_valid
    FROM uploads AS u
    WINDOW w AS (PARTITION BY u._city_code, u.dataset_id ORDER BY u.received_at, u.validated_at, u.upload_id)
)
SELECT
    n._city_code AS city_code,
    coalesce(m.name, g.city, g.prefecture) AS city_name,
    n.dataset_id,
    n.upload_no,
    n.upload_no = n.uploads_total AS is_latest,
    n.upload_id,
    n.file,
    n.received_at,
    n.validated_at,
    n.rows,
    n.rows_accepted,
    n.rows_quarantined,
    n.pass_rate AS share_valid,
    n.pass_rate - n.previous_share_valid AS share_valid_change,
    n.decision,
    n.errors_by_code,
    coalesce(list_sum(map_values(CAST(json(n.errors_by_code) AS MAP(VARCHAR, BIGINT)))), 0) AS findings
FROM numbered AS n
LEFT JOIN reference.members AS m ON m.code = n._city_code
LEFT JOIN reference.local_governments AS g ON g.code = n._city_code
ORDER BY city_code, dataset_id, upload_no
