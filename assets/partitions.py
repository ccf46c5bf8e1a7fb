"""City partitions: one partition per member city, keyed by its 全国地方公共団体コード.

Dynamic, so that a city joining the shared service becomes a partition without a code change (the member
sensor and ``kouiki run`` add partitions from the member registry).
"""

import warnings

from dagster import BetaWarning, DynamicPartitionsDefinition

# City assets use a single-run backfill policy (many cities in one run); Dagster marks the parameter beta.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*backfill_policy.*")

MEMBER_CITIES = "member_cities"
member_cities = DynamicPartitionsDefinition(name=MEMBER_CITIES)
