-- materialized: view
-- description: AED設置箇所一覧 (全構成市・型付き) / AED locations of every member city, typed (lake → staging). Legacy layouts were mapped to the current one at intake.
-- Numbers become DOUBLE; times stay hh:mm text and codes stay text, as the standard publishes them.
SELECT * REPLACE (
    TRY_CAST("緯度" AS DOUBLE) AS "緯度",
    TRY_CAST("経度" AS DOUBLE) AS "経度",
    TRY_CAST("高度の値" AS DOUBLE) AS "高度の値"
)
FROM lake.aed
