"""Synthetic data (合成数据) for demos, tests and benchmarks: the model city, residents, noise."""

from rhip.synth.city import City, build_city
from rhip.synth.service import SynthSummary, synthesize

__all__ = ["City", "SynthSummary", "build_city", "synthesize"]
