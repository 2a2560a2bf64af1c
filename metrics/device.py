"""Device choice: the one place the project turns a ``--device`` / ``device:`` setting into a device.

``resolve_device("auto")`` is ``"cuda"`` when torch sees a GPU and ``"cpu"`` otherwise; any other
value (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...) is returned unchanged once torch has accepted it
as a device string, so a typo fails here, naming the value, rather than deep inside a model.
Whether the named GPU exists is left to the first use of it.
"""

from __future__ import annotations

import torch

AUTO = "auto"


def resolve_device(name: str = AUTO) -> str:
    """``"auto"`` -> ``"cuda"`` if available else ``"cpu"``; another name is returned as given if torch knows it.

    Raises ``ValueError`` naming the value when ``torch.device(name)`` refuses it.
    """
    if name == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(name)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"device {name!r} is not a device torch understands (use auto, cpu, cuda or "
                         f"cuda:N): {error}") from error
    return name
