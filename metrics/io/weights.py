"""Weight files of published networks: reading a local ``torch.save`` state dict bounded in size, and
loading it strictly into a module of the published layout.

Every network the metrics load from a user's file (I3D, FID Inception-v3, LPIPS, SyncNet) goes
through here, so a hostile or wrong file is refused the same way: its size and its zip records
are checked before torch reads them (:func:`metrics.io.bounded.check_zip_archive`), it is read
with ``torch.load(weights_only=True)`` (tensors and plain values only; no code runs), and a
mismatch with the layout is one error naming the file and the layout, listing the missing,
unexpected and misshapen keys (with a hint when the keys carry DataParallel's ``module.``).

Errors are ``ValueError``; a caller with its own error class (a subclass of ``ValueError``)
passes it as ``error``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from metrics.io.bounded import BoundedReadError, check_zip_archive

# How many keys of each kind a mismatch lists before "... (N more)".
LISTED_KEYS = 12


def _listing(keys: Sequence[str], limit: int = LISTED_KEYS) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def last_line(error: BaseException) -> str:
    """The informative line of an error (torch and TorchScript put tracebacks and hints before it)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def check_weight_file(path: str | os.PathLike, max_bytes: int, what: str, hint: str = "",
                      error: type[ValueError] = ValueError) -> Path:
    """``path`` as a ``Path`` once it is a file of at most ``max_bytes`` whose zip records (if it is
    a zip, as ``torch.save`` and TorchScript write) unpack to at most ``max_bytes``.

    Raises ``FileNotFoundError`` naming ``what`` and the file (``hint``: where the file comes
    from); ``error`` naming the file when it is refused (a ``BoundedReadError`` when ``error`` is
    ``ValueError``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} weight file not found: {path}" + (f" ({hint})" if hint else ""))
    try:
        check_zip_archive(path, max_bytes)
    except BoundedReadError as refused:
        if isinstance(refused, error):
            raise
        raise error(str(refused)) from None
    return path


def read_state_dict(path: str | os.PathLike, max_bytes: int, what: str, hint: str = "",
                    error: type[ValueError] = ValueError) -> object:
    """What a local ``torch.save`` file holds (normally a state dict), read bounded: the file and its
    zip records checked first (:func:`check_weight_file`), then ``torch.load(weights_only=True,
    map_location="cpu")``, which builds tensors and plain values only (no code runs).

    Raises ``FileNotFoundError``; ``error`` naming the file and ``what`` it should be for a file
    refused or one torch cannot read that way (not a torch file, a pickle that would run code).
    """
    path = check_weight_file(path, max_bytes, what, hint, error)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as failure:  # noqa: BLE001 - torch.load raises many types for a foreign file
        raise error(f"{path}: not a state dict torch.load(weights_only=True) can read "
                    f"({type(failure).__name__}: {last_line(failure)}); expected the {what} weight file") from None


def as_state_dict(state: object, path: str | os.PathLike, layout: str,
                  error: type[ValueError] = ValueError) -> dict[str, torch.Tensor]:
    """``state`` as a dict if it maps names to tensors, else ``error`` naming the file and ``layout``."""
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                 for k, v in state.items()):
        raise error(f"{path}: not a state dict of tensors (got {type(state).__name__}); expected {layout}")
    return dict(state)


def load_state_dict_strict(model: nn.Module, state_dict: object, path: str | os.PathLike, layout: str,
                           ignore: Iterable[str] = (), error: type[ValueError] = ValueError) -> None:
    """``model.load_state_dict(state_dict, strict=True)`` with one error that names ``path`` and
    ``layout`` (the published file the keys should match) and lists the missing, unexpected and
    misshapen keys.

    ``num_batches_tracked`` buffers may be missing (published files often lack them; evaluation
    never reads them): they are loaded as zeros. Keys starting with a prefix in ``ignore`` are
    dropped first (parts of a published file the model does not use). Raises ``error``.
    """
    prefixes = tuple(ignore)
    state = {k: v for k, v in as_state_dict(state_dict, path, layout, error).items()
             if not (prefixes and k.startswith(prefixes))}
    expected = model.state_dict()
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshapen = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or misshapen:
        lines = [f"{path}: does not match the layout of {layout}:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {_listing(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
            if all(k.startswith("module.") for k in unexpected):
                lines.append("  (keys start with 'module.': strip the DataParallel prefix)")
        if misshapen:
            lines.append(f"  wrong shapes ({len(misshapen)}): {_listing(misshapen)}")
        raise error("\n".join(lines))
    model.load_state_dict(state, strict=True)
