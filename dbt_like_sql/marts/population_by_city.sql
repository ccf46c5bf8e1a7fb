-- materialized: table
-- description: 構成市ごとの人口 (地域・年齢別人口の最新調査日の合計) / population of each member city: the sum over its areas in its 地域・年齢別人口 file, at the latest survey date. Only cities that sent that file have figures; the others are listed with NULL (nothing is estimated). Areas held back by validation are not in the sum: their count and the 総人口 they state are shown beside it.
WITH latest AS (
    SELECT *
    FROM conformed.population
    QUALIFY "調査年月日" = max("調査年月日") OVER (PARTITION BY _city_code)
),
accepted AS (
    SELECT
        _city_code,
        max("調査年月日") AS survey_date,
        count(*) AS areas,
        sum("総人口") AS population,
        sum("0-4歳の男性" + "0-4歳の女性" + "5-9歳の男性" + "5-9歳の女性" + "10-14歳の男性" + "10-14歳の女性")
            AS aged_0_14,
        sum("65-69歳の男性" + "65-69歳の女性" + "70-74歳の男性" + "70-74歳の女性" + "75-79歳の男性" + "75-79歳の女性"
            + "80-84歳の男性" + "80-84歳の女性" + "85歳以上の男性" + "85歳以上の女性") AS aged_65_plus,
        sum("世帯数") AS households
    FROM latest
    GROUP BY _city_code
),
held_back AS (
    SELECT _city_code, count(*) AS areas_quarantined, sum(TRY_CAST("総人口" AS BIGINT)) AS population_in_quarantined_areas
    FROM quarantine.population
    GROUP BY _city_code
)
SELECT
    m.code AS city_code,
    m.name AS city_name,
    a.population IS NOT NULL AS has_population,
    a.survey_date,
    a.areas,
    a.population,
    a.aged_0_14,
    a.aged_65_plus,
    round(a.aged_65_plus / nullif(a.population, 0), 4) AS share_65_plus,
    a.households,
    coalesce(h.areas_quarantined, 0) AS areas_quarantined,
    -- a city with a population file and nothing held back has 0 there; a city without the file, NULL
    CASE WHEN a.population IS NOT NULL THEN coalesce(h.population_in_quarantined_areas, 0) END
        AS population_in_quarantined_areas
FROM reference.members AS m
LEFT JOIN accepted AS a ON a._city_code = m.code
LEFT JOIN held_back AS h ON h._city_code = m.code
ORDER BY m.code
