"""Kinds of dataset (themes) for the list's filter, CKAN groups and DCAT themes.

The standard (自治体標準オープンデータセット) numbers its datasets but does not group them, so the portal
groups them the way municipal catalogues usually do. A dataset not listed here falls under "other".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Theme:
    id: str
    ja: str
    en: str
    datasets: frozenset[str]

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.ja


THEMES: tuple[Theme, ...] = (
    Theme("safety", "防災・安全", "Disaster prevention and safety",
          frozenset({"evacuation_space", "aed", "fire_hydrant"})),
    Theme("health", "医療・福祉", "Health and welfare", frozenset({"hospital", "care_service"})),
    Theme("children", "子育て・教育", "Children and education",
          frozenset({"preschool", "school_district", "school_lunch_menu"})),
    Theme("tourism", "観光・文化", "Tourism and culture",
          frozenset({"tourism", "cultural_property", "event"})),
    Theme("living", "くらし・施設", "Living and public facilities",
          frozenset({"public_facility", "public_toilet", "public_wireless_lan", "food_business"})),
    Theme("administration", "行政・統計", "Administration and statistics",
          frozenset({"population", "open_data_list", "support_program"})),
)
OTHER = Theme("other", "その他", "Other", frozenset())


def theme_of(dataset_id: str) -> Theme:
    return next((t for t in THEMES if dataset_id in t.datasets), OTHER)


def theme_by_id(theme_id: str) -> Theme | None:
    return next((t for t in (*THEMES, OTHER) if t.id == theme_id), None)
