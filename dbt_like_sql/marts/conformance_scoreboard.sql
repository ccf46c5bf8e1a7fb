-- materialized: table
-- description: 適合状況スコアボード (構成市×データセット) / conformance scoreboard: every member city × every dataset of the region, whether the city has sent a file, its last upload, rows, share of valid rows, findings by error code, errors (rows withheld) and warnings (rows published) counted apart, the trend over uploads and the main thing to fix. Cities that have sent nothing still appear (has_file = false); 'declared' says whether the member registry (config/members.yaml) expects the dataset from the city.
WITH region_datasets AS (
    -- the datasets the region collects: those some member is registered for, and those someone has sent
    SELECT DISTINCT unnest(datasets) AS dataset_id FROM reference.members
    UNION
    SELECT DISTINCT dataset_id FROM marts.conformance_trend
),
grid AS (
    SELECT m.code AS city_code, m.name AS city_name, d.dataset_id, list_contains(m.datasets, d.dataset_id) AS declared
    FROM reference.members AS m
    CROSS JOIN region_datasets AS d
    -- a city's own dataset (own_<code>_<slug>, intake/own.py) is that city's alone
    WHERE NOT starts_with(d.dataset_id, 'own_') OR starts_with(d.dataset_id, 'own_' || m.code || '_')
),
per_city AS (
    SELECT
        city_code,
        dataset_id,
        count(*) AS uploads,
        list(round(share_valid, 4) ORDER BY upload_no) AS share_valid_trend,
        -- the lake keeps the newest upload that was not rejected (a rejected one leaves the previous data)
        arg_max(rows_accepted, upload_no) FILTER (WHERE decision <> 'reject') AS rows_in_lake
    FROM marts.conformance_trend
    GROUP BY ALL
),
issues AS (
    -- a finding without a severity (written before severities existed) is an error
    SELECT *, CASE WHEN coalesce(severity, 'error') = 'error' THEN 'error' ELSE 'warning' END AS kind
    FROM marts.quality_issues
),
severities AS (
    -- failing cells of the city's data now in the lake: errors withhold their rows, warnings are published
    SELECT
        city_code,
        dataset_id,
        upload_id,
        coalesce(sum(cells) FILTER (WHERE kind = 'error'), 0) AS errors,
        coalesce(sum(cells) FILTER (WHERE kind = 'warning'), 0) AS warnings
    FROM issues
    GROUP BY ALL
),
top_issues AS (
    -- per kind, the finding with the most cells of each upload in the lake (ties: by column, then code)
    SELECT
        city_code,
        dataset_id,
        upload_id,
        kind,
        column_name || ': ' || error_code || ' × ' || cells
            || CASE WHEN count(*) OVER p > 1 THEN ' (他 ' || (count(*) OVER p - 1) || ' 件 / +'
                    || (count(*) OVER p - 1) || ' more)' ELSE '' END AS issue
    FROM issues
    WINDOW p AS (PARTITION BY city_code, dataset_id, upload_id, kind)
    QUALIFY row_number() OVER (PARTITION BY city_code, dataset_id, upload_id, kind
                               ORDER BY cells DESC, column_name, error_code) = 1
)
SELECT
    g.city_code || '/' || g.dataset_id AS city_dataset,
    g.city_code,
    g.city_name,
    g.dataset_id,
    d.name_ja AS dataset_name_ja,
    d.name_en AS dataset_name_en,
    g.declared,
    l.upload_id IS NOT NULL AS has_file,
    coalesce(p.uploads, 0) AS uploads,
    l.upload_id AS last_upload_id,
    l.file AS last_file,
    l.received_at AS last_received_at,
    l.decision AS last_decision,
    l.rows,
    l.rows_accepted,
    l.rows_quarantined,
    l.share_valid,
    l.share_valid_change,
    l.findings,
    l.errors_by_code,
    CASE WHEN l.upload_id IS NOT NULL AND l.decision <> 'reject' THEN coalesce(s.errors, 0) END AS errors,
    CASE WHEN l.upload_id IS NOT NULL AND l.decision <> 'reject' THEN coalesce(s.warnings, 0) END AS warnings,
    t.issue AS top_issue,
    w.issue AS top_warning,
    p.share_valid_trend,
    coalesce(p.rows_in_lake, 0) AS rows_in_lake,
    CASE
        WHEN l.upload_id IS NULL AND g.declared THEN 'missing'
        WHEN l.upload_id IS NULL THEN 'not_declared'
        ELSE l.decision
    END AS status,
    CASE
        WHEN starts_with(g.dataset_id, 'own_') AND l.decision IN ('accept', 'quarantine')
            THEN '独自形式（標準未対応） / own layout, not yet standard'
        WHEN l.upload_id IS NULL AND g.declared THEN '未提出 / no file yet'
        WHEN l.upload_id IS NULL THEN '対象外 / not expected from this city'
        WHEN l.decision = 'accept' THEN '受理 / accepted'
        WHEN l.decision = 'quarantine' THEN '一部保留 / accepted, some rows held back'
        WHEN l.decision = 'reject' THEN '差戻し / rejected (previous data kept)'
        ELSE l.decision
    END AS status_label
FROM grid AS g
LEFT JOIN reference.datasets AS d ON d.id = g.dataset_id
LEFT JOIN marts.conformance_trend AS l
    ON l.city_code = g.city_code AND l.dataset_id = g.dataset_id AND l.is_latest
LEFT JOIN per_city AS p ON p.city_code = g.city_code AND p.dataset_id = g.dataset_id
LEFT JOIN severities AS s ON s.city_code = g.city_code AND s.dataset_id = g.dataset_id AND s.upload_id = l.upload_id
LEFT JOIN top_issues AS t
    ON t.city_code = g.city_code AND t.dataset_id = g.dataset_id AND t.upload_id = l.upload_id AND t.kind = 'error'
LEFT JOIN top_issues AS w
    ON w.city_code = g.city_code AND w.dataset_id = g.dataset_id AND w.upload_id = l.upload_id AND w.kind = 'warning'
ORDER BY g.city_code, g.dataset_id
