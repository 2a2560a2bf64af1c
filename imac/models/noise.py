"""Random draws for a batch from one generator, or from one generator per sample.

With a list of generators (``per_sample_generators``), sample i's draws come from generator i
alone, so a sample's noise, diffusion timestep and condition dropout do not depend on which other
samples share its batch or which process trains on it: data-parallel training then computes the
same losses as one process with the same global batch (``imac.training.windows.GlobalBatches``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Generators = torch.Generator | Sequence[torch.Generator] | None


def per_sample_generators(seeds: torch.Tensor, device: torch.device | str) -> list[torch.Generator]:
    """One generator per seed of ``seeds`` (B,) int64, on ``device`` (CPU generators for a CPU)."""
    device = torch.device(device)
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds.tolist()]


def _each(generator: Generators, batch: int):
    if generator is None or isinstance(generator, torch.Generator):
        return None
    generators = list(generator)
    if len(generators) != batch:
        raise ValueError(f"{len(generators)} generators for a batch of {batch}")
    return generators


def randn(shape: tuple[int, ...], generator: Generators, device, dtype=torch.float32) -> torch.Tensor:
    """Standard normal (B, ...) draws; sample i from generator i when a list is given."""
    each = _each(generator, shape[0])
    if each is None:
        return torch.randn(shape, device=device, dtype=dtype, generator=generator)
    return torch.stack([torch.randn(shape[1:], device=device, dtype=dtype, generator=g) for g in each])


def rand(batch: int, generator: Generators, device) -> torch.Tensor:
    """Uniform [0, 1) draws, one per sample (B,)."""
    each = _each(generator, batch)
    if each is None:
        return torch.rand(batch, device=device, generator=generator)
    return torch.cat([torch.rand(1, device=device, generator=g) for g in each])


def randint(high: int, batch: int, generator: Generators, device) -> torch.Tensor:
    """Integers in [0, high), one per sample (B,)."""
    each = _each(generator, batch)
    if each is None:
        return torch.randint(0, high, (batch,), device=device, generator=generator)
    return torch.cat([torch.randint(0, high, (1,), device=device, generator=g) for g in each])


def repeat_each(generator: Generators, times: int) -> Generators:
    """Each sample's generator ``times`` times in a row (for a batch flattened as (B * times, ...))."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    return [g for g in generator for _ in range(times)]
