"""Evaluation of co-speech gesture videos: FGD, Diversity, BAS and FVD under one versioned protocol.

Standalone: imports nothing else of the project. Entry points:
- ``python -m metrics compute --real DIR --fake DIR`` (``metrics.evaluate.evaluate`` in Python);
- ``metrics.frechet_distance``, ``metrics.beats``, ``metrics.fgd.FGD``, ``metrics.diversity.Diversity``,
  ``metrics.fvd.FVD``, ``metrics.stats.GaussianStats``: the pieces;
- ``metrics.protocol.Protocol``: every constant that changes a number (see ``PROTOCOL.md``).
"""

from metrics.frechet import frechet_distance
from metrics.protocol import PROTOCOL_VERSION, Protocol, get_protocol
from metrics.stats import GaussianStats

__all__ = ["PROTOCOL_VERSION", "GaussianStats", "Protocol", "frechet_distance", "get_protocol"]
