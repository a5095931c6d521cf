"""Hypothesis profiles: ``default`` for ``make test``, ``fuzz`` for long runs (``make fuzz``)."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("default", max_examples=300)
settings.register_profile("fuzz", max_examples=20_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
