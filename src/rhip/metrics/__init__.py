"""rhip.metrics — platform figures (平台运行指标) for the operator's overview and the index.

Reads other contexts' tables with set-based SQL aggregates; writes nothing. Figures whose source
context is not installed yet (audit views, recognition decisions) come back as ``None`` rather
than a made-up number.
"""

from rhip.metrics.figures import (
    DailyCount,
    DistrictRow,
    Overview,
    QualityRow,
    TypeRow,
    institution_daily,
    overview,
)
from rhip.metrics.indicators import PlatformIndicators, platform_indicators

__all__ = [
    "DailyCount",
    "DistrictRow",
    "Overview",
    "PlatformIndicators",
    "QualityRow",
    "TypeRow",
    "institution_daily",
    "overview",
    "platform_indicators",
]
