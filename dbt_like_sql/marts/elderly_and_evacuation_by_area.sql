-- materialized: table
-- description: EBPM例: 町丁別の高齢者人口と指定緊急避難場所 / evidence example: for each area (町丁) of the cities that sent 地域・年齢別人口, residents aged 65+ and the designated evacuation sites located in that area, most elderly residents first. Sites are matched on 所在地_町字 = 地域名 (full-width digits folded); a site serves neighbouring areas too, so 0 means "none located in the area", not "no shelter". Sites is NULL where the city has no evacuation data giving 所在地_町字.
WITH areas AS (
    SELECT
        _city_code,
        "地方公共団体名",
        "調査年月日",
        "地域コード",
        "地域名",
        "総人口",
        "65-69歳の男性" + "65-69歳の女性" + "70-74歳の男性" + "70-74歳の女性" + "75-79歳の男性" + "75-79歳の女性"
            + "80-84歳の男性" + "80-84歳の女性" + "85歳以上の男性" + "85歳以上の女性" AS aged_65_plus
    FROM conformed.population
    QUALIFY "調査年月日" = max("調査年月日") OVER (PARTITION BY _city_code)
),
sites AS (
    SELECT
        _city_code,
        translate("所在地_町字", '０１２３４５６７８９', '0123456789') AS area_name,
        count(*) AS n,
        list("名称" ORDER BY "名称") AS names
    FROM conformed.evacuation_space
    WHERE "所在地_町字" IS NOT NULL
    GROUP BY ALL
),
cities_with_area_names AS (
    SELECT DISTINCT _city_code FROM conformed.evacuation_space WHERE "所在地_町字" IS NOT NULL
)
SELECT
    a._city_code AS city_code,
    a."地方公共団体名" AS city_name,
    a."調査年月日" AS survey_date,
    a."地域コード" AS area_code,
    a."地域名" AS area_name,
    a."総人口" AS population,
    a.aged_65_plus,
    round(a.aged_65_plus / nullif(a."総人口", 0), 4) AS share_65_plus,
    CASE WHEN c._city_code IS NOT NULL THEN coalesce(s.n, 0) END AS evacuation_spaces_in_area,
    s.names AS evacuation_space_names
FROM areas AS a
LEFT JOIN cities_with_area_names AS c ON c._city_code = a._city_code
LEFT JOIN sites AS s ON s._city_code = a._city_code AND s.area_name = a."地域名"
ORDER BY city_code, aged_65_plus DESC NULLS LAST, area_code
