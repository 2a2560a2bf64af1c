"""Evaluation of co-speech gesture videos: FGD, Diversity, BAS and FVD under one versioned protocol.

Standalone: imports nothing else of the project. Entry points:
- ``python -m metrics compute --real DIR --fake DIR`` (``metrics.evaluate.evaluate`` in Python);
- ``metrics.frechet_distance``, ``metrics.beats``, ``metrics.fgd.FGD``, ``metrics.diversity.Diversity``,
  ``metrics.fvd.FVD``, ``metrics.stats.GaussianStats``: the pieces;
- ``metrics.protocol.Protocol``: every constant that changes a number (see ``PROTOCOL.md``).

The names of ``__all__`` load on first use (PEP 562): importing the package loads nothing, so that a
command's Ctrl-C guard (``metrics.entry_point``) runs before scipy and torch load.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"PROTOCOL_VERSION": "metrics.protocol", "GaussianStats": "metrics.stats", "Protocol": "metrics.protocol",
            "frechet_distance": "metrics.frechet", "get_protocol": "metrics.protocol"}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'metrics' has no attribute {name!r}")
