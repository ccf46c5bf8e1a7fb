-- materialized: table
-- description: EBPM例: 人口1万人あたりのAED・指定緊急避難場所 (構成市別) / evidence example: AEDs and designated evacuation sites per 10,000 residents, by member city. Counts are the published (conformed) rows; the population is the city's own 地域・年齢別人口 (marts.population_by_city). A city without a population file gets a NULL rate, and a city without an AED or evacuation file a NULL count: a missing file is not zero, and no figure is estimated.
WITH aed AS (
    SELECT _city_code, count(*) AS n FROM conformed.aed GROUP BY _city_code
),
aed_held_back AS (
    SELECT _city_code, count(*) AS n FROM quarantine.aed GROUP BY _city_code
),
evacuation AS (
    SELECT _city_code, count(*) AS n FROM conformed.evacuation_space GROUP BY _city_code
),
evacuation_held_back AS (
    SELECT _city_code, count(*) AS n FROM quarantine.evacuation_space GROUP BY _city_code
)
SELECT
    p.city_code,
    p.city_name,
    p.population,
    p.survey_date AS population_survey_date,
    a.n AS aeds,
    aq.n AS aeds_quarantined,
    round(10000.0 * a.n / nullif(p.population, 0), 2) AS aeds_per_10k_residents,
    e.n AS evacuation_spaces,
    eq.n AS evacuation_spaces_quarantined,
    round(10000.0 * e.n / nullif(p.population, 0), 2) AS evacuation_spaces_per_10k_residents,
    CASE
        WHEN p.population IS NULL THEN '人口データ (地域・年齢別人口) 未提出のため率なし / no population file: no rate'
        WHEN a.n IS NULL AND e.n IS NULL THEN 'AED・避難場所のデータなし / no AED or evacuation-site data'
        WHEN a.n IS NULL THEN 'AEDデータなし / no AED data'
        WHEN e.n IS NULL THEN '避難場所データなし / no evacuation-site data'
        ELSE ''
    END AS note
FROM marts.population_by_city AS p
LEFT JOIN aed AS a ON a._city_code = p.city_code
LEFT JOIN aed_held_back AS aq ON aq._city_code = p.city_code
LEFT JOIN evacuation AS e ON e._city_code = p.city_code
LEFT JOIN evacuation_held_back AS eq ON eq._city_code = p.city_code
ORDER BY p.city_code
