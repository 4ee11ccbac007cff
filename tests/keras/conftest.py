"""Setup for the TensorFlow/Keras trainer tests: quiet TensorFlow, skip without it.

Test modules here need basenames unique across the whole test tree (tests/ has no
__init__.py).
"""

from __future__ import annotations

import os

import pytest

# Before TensorFlow's first import: keep its C++ start-up chatter out of test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

pytest.importorskip("tensorflow", reason="the keras trainer tests need TensorFlow installed")
