-- materialized: view
-- description: 指定緊急避難場所一覧 (全構成市・型付き) / designated emergency evacuation sites of every member city, typed (lake → staging).
-- Numbers become DOUBLE; the 災害種別 flags stay '1' or empty, as the standard publishes them.
SELECT * REPLACE (
    TRY_CAST("緯度" AS DOUBLE) AS "緯度",
    TRY_CAST("経度" AS DOUBLE) AS "経度",
    TRY_CAST("標高" AS DOUBLE) AS "標高"
)
FROM lake.evacuation_space
