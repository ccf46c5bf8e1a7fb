-- materialized: table
-- description: 地域全体の地域・年齢別人口 (全構成市の町丁別人口) / region-wide population by area and age: every member city's areas in the standard layout.
SELECT
    s.* EXCLUDE (_row) REPLACE (
            coalesce(s."全国地方公共団体コード", s._city_code) AS "全国地方公共団体コード",
            coalesce(s."地方公共団体名", g.prefecture || g.city) AS "地方公共団体名"
    )
FROM staging.population AS s
LEFT JOIN reference.local_governments AS g ON g.code = s._city_code
ORDER BY s._city_code, s._source_line
