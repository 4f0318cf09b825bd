"""Quality (质控): data-quality rules at ingest, per-institution scorecards, silent feeds."""

from rhip.quality.checks import CHECKS, QualityContext
from rhip.quality.frames import Frames
from rhip.quality.rules import Rule, default_rules, load_rules
from rhip.quality.scorecard import scorecard
from rhip.quality.service import (
    Finding,
    Findings,
    QualityRejected,
    Recording,
    check,
    check_many,
    record,
    record_many,
    recording,
    write_recording,
)
from rhip.quality.silence import FeedGap, feed_gaps, silent_feeds

__all__ = [
    "CHECKS",
    "FeedGap",
    "Finding",
    "Findings",
    "Frames",
    "QualityContext",
    "QualityRejected",
    "Recording",
    "Rule",
    "check",
    "check_many",
    "default_rules",
    "feed_gaps",
    "load_rules",
    "record",
    "record_many",
    "recording",
    "scorecard",
    "silent_feeds",
    "write_recording",
]
