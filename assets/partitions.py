"""City partitions: one partition per member city, keyed by its 全国地方公共団体コード.

Dynamic, so that a city joining the shared service becomes a partition without a code change (the member
sensor and ``kouiki run`` add partitions from the member registry).
"""

from dagster import DynamicPartitionsDefinition

MEMBER_CITIES = "member_cities"
member_cities = DynamicPartitionsDefinition(name=MEMBER_CITIES)
