"""Trainings for tests/test_side_by_side.py: module-level (they are sent to spawned worker processes)."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def fit(seed: int, steps: int = 20, out: str | None = None) -> dict:
    """A few Adam steps of a small conv net on seeded noise: its weights, and the torch threads it ran on."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(16 * 24 * 24, 8))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    data, target = torch.randn(32, 3, 24, 24), torch.randn(32, 8)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(net(data), target).backward()
        optimizer.step()
    if out is not None:
        Path(out).write_text("done")
    return {"weights": [p.detach().clone() for p in net.parameters()], "threads": torch.get_num_threads()}


def fail(message: str) -> None:
    raise ValueError(message)


def die() -> None:
    os._exit(3)         # the worker process ends without a word (as when the system kills it)


def forever(pid_file: str) -> None:
    """Writes its process id, then trains on and on."""
    Path(pid_file).write_text(str(os.getpid()))
    while True:
        fit(0, steps=5)
