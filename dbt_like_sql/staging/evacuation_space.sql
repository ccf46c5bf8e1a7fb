-- materialized: view
-- description: 指定緊急避難場所一覧, every member city, typed (lake → staging).
SELECT * REPLACE (TRY_CAST("緯度" AS DOUBLE) AS "緯度", TRY_CAST("経度" AS DOUBLE) AS "経度")
FROM lake.evacuation_space
