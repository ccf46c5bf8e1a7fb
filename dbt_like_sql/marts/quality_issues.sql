-- materialized: table
-- description: 構成市への修正依頼リスト (データセット×項目×エラーコード) / what each member city should fix: failing cells of the data now in the lake, by dataset, column and error code, with example values and the fix hint the city sees in its report.
SELECT
    f._city_code AS city_code,
    coalesce(m.name, g.city, g.prefecture) AS city_name,
    f.dataset_id,
    f.upload_id,
    f."column" AS column_name,
    f.error_code,
    f.severity,
    count(*) AS cells,
    count(DISTINCT f.source_line) AS rows,
    min(f.source_line) AS first_line,
    list_sort(list(DISTINCT coalesce(f.raw_value, '')))[1:3] AS example_values,
    arg_min(f.hint_ja, f.source_line) AS hint_ja,
    arg_min(f.hint_en, f.source_line) AS hint_en
FROM findings.all_datasets AS f
LEFT JOIN reference.members AS m ON m.code = f._city_code
LEFT JOIN reference.local_governments AS g ON g.code = f._city_code
GROUP BY ALL
ORDER BY city_code, dataset_id, cells DESC, column_name, error_code
