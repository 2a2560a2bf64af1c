"""Random draws for a batch from one generator, or from one generator per sample.

With a list of generators (``per_sample_generators``), sample i's draws come from generator i
alone, so a sample's noise, diffusion timestep and condition dropout do not depend on which other
samples share its batch or which process trains on it: data-parallel training then computes the
same losses as one process with the same global batch (``imac.training.windows.GlobalBatches``).

With a ``BatchShard`` (one generator, a global batch size and a block of rows), the draws are those
that generator makes for the whole global batch, of which the block's rows are kept: the trainers
that draw a batch from one generator (the bench's keypoint motion model) then compute the losses of
one process on each process of a data-parallel launch (``metrics.training``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BatchShard:
    """Rows [start, stop) of what ``generator`` draws for a batch of ``size`` samples."""

    generator: torch.Generator
    size: int
    start: int
    stop: int

    def rows(self, batch: int) -> slice:
        if batch != self.stop - self.start:
            raise ValueError(f"rows {self.start}..{self.stop} of a batch of {self.size} for a batch of {batch}")
        return slice(self.start, self.stop)


Generators = torch.Generator | Sequence[torch.Generator] | BatchShard | None


def per_sample_generators(seeds: torch.Tensor, device: torch.device | str) -> list[torch.Generator]:
    """One generator per seed of ``seeds`` (B,) int64, on ``device`` (CPU generators for a CPU)."""
    device = torch.device(device)
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds.tolist()]


def _each(generator: Generators, batch: int):
    if generator is None or isinstance(generator, (torch.Generator, BatchShard)):
        return None
    generators = list(generator)
    if len(generators) != batch:
        raise ValueError(f"{len(generators)} generators for a batch of {batch}")
    return generators


def randn(shape: tuple[int, ...], generator: Generators, device, dtype=torch.float32) -> torch.Tensor:
    """Standard normal (B, ...) draws; sample i from generator i when a list is given."""
    if isinstance(generator, BatchShard):
        rows = generator.rows(shape[0])
        return torch.randn((generator.size, *shape[1:]), device=device, dtype=dtype, generator=generator.generator)[rows]
    each = _each(generator, shape[0])
    if each is None:
        return torch.randn(shape, device=device, dtype=dtype, generator=generator)
    return torch.stack([torch.randn(shape[1:], device=device, dtype=dtype, generator=g) for g in each])


def rand(batch: int, generator: Generators, device) -> torch.Tensor:
    """Uniform [0, 1) draws, one per sample (B,)."""
    if isinstance(generator, BatchShard):
        return torch.rand(generator.size, device=device, generator=generator.generator)[generator.rows(batch)]
    each = _each(generator, batch)
    if each is None:
        return torch.rand(batch, device=device, generator=generator)
    return torch.cat([torch.rand(1, device=device, generator=g) for g in each])


def randint(high: int, batch: int, generator: Generators, device) -> torch.Tensor:
    """Integers in [0, high), one per sample (B,)."""
    if isinstance(generator, BatchShard):
        rows = generator.rows(batch)
        return torch.randint(0, high, (generator.size,), device=device, generator=generator.generator)[rows]
    each = _each(generator, batch)
    if each is None:
        return torch.randint(0, high, (batch,), device=device, generator=generator)
    return torch.cat([torch.randint(0, high, (1,), device=device, generator=g) for g in each])


def repeat_each(generator: Generators, times: int) -> Generators:
    """Each sample's generator ``times`` times in a row (for a batch flattened as (B * times, ...))."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, BatchShard):
        return BatchShard(generator.generator, generator.size * times, generator.start * times, generator.stop * times)
    return [g for g in generator for _ in range(times)]
