-- materialized: table
-- description: 地域全体の指定緊急避難場所一覧 / region-wide designated emergency evacuation sites
SELECT
    s.* EXCLUDE (_row) REPLACE (
            coalesce(s."全国地方公共団体コード", s._city_code) AS "全国地方公共団体コード",
            coalesce(s."地方公共団体名", g.prefecture || g.city) AS "地方公共団体名",
            coalesce(s."所在地_全国地方公共団体コード", s._city_code) AS "所在地_全国地方公共団体コード"
    )
FROM staging.evacuation_space AS s
LEFT JOIN reference.local_governments AS g ON g.code = s._city_code
ORDER BY s._city_code, s._source_line
