-- materialized: view
-- description: AED設置箇所一覧, every member city, typed (lake → staging). Legacy layouts were mapped to the current one at intake.
SELECT * REPLACE (TRY_CAST("緯度" AS DOUBLE) AS "緯度", TRY_CAST("経度" AS DOUBLE) AS "経度")
FROM lake.aed
