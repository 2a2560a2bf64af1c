"""Loading the networks of a model folder that may come from elsewhere, bounded in what it allocates.

``from_pretrained`` of diffusers and transformers builds the network from ``config.json`` at full size
before it reads a weight, so a damaged or crafted config (one width of 200,000) asks for hundreds of
gigabytes. ``load_pretrained`` first builds the network on the meta device (shapes only) and refuses
a config that describes more parameters than the folder's weight files can hold
(``metrics.io.bounded.check_model_fits_weights``), naming the folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from metrics.io.bounded import (WEIGHT_FILE_PREFIXES, BoundedReadError, check_model_fits_weights,
                                check_safetensors, safetensors_shapes)

T = TypeVar("T")


# What from_pretrained also passes on to reading the config (where it is, and never downloading).
CONFIG_KWARGS = ("local_files_only", "subfolder", "revision", "cache_dir", "token")


def load_pretrained(cls: type[T], folder: str | os.PathLike, **kwargs: Any) -> T:
    """``cls.from_pretrained(folder, **kwargs)`` once the folder's config is checked against its weights.

    ``cls``: a diffusers ``ModelMixin`` (``load_config`` / ``from_config``) or a transformers
    ``PreTrainedModel`` (``config_class``); ``kwargs`` such as ``local_files_only`` and ``subfolder``
    apply to reading the config too. Raises ``FileNotFoundError`` naming a local folder that is missing
    or has no ``config.json``, ``metrics.io.bounded.BoundedReadError`` (a ValueError) naming the folder for
    a config larger than its weights or a safetensors file cut short (``check_safetensors``), ``ValueError``
    naming the folder or file for weights that lack a tensor of the network or hold one of another shape
    (``check_weight_shapes``; transformers' own loading report), where the loaders would fail naming
    neither or, for transformers, initialise the missing tensors at random and go on.
    """
    folder = Path(folder)
    config_kwargs = {key: kwargs[key] for key in CONFIG_KWARGS if key in kwargs}
    weights = folder / kwargs["subfolder"] if kwargs.get("subfolder") else folder
    # a local folder (or one whose parent is local: not a hub id) without its config is named here,
    # not by the hub client's "couldn't connect" message
    if weights.is_dir() or weights.parent.is_dir() and str(weights.parent) not in ("", "."):
        if not (weights / "config.json").is_file():
            raise FileNotFoundError(f"{weights}: " + ("no config.json: not a saved model folder" if weights.is_dir()
                                                      else "no such model folder"))
    if weights.is_dir():          # a weights file cut short is named with its sizes, not by the loader's message
        for path in sorted(weights.glob("*.safetensors")):
            check_safetensors(path)
    built = []
    if hasattr(cls, "load_config") and hasattr(cls, "from_config"):        # diffusers
        config = cls.load_config(folder, **config_kwargs)
        if not isinstance(config, dict):
            raise ValueError(f"{weights / 'config.json'}: a {type(config).__name__}, not a JSON object of settings")
        check_model_fits_weights(_buildable(lambda: built.append(cls.from_config(config)) or built[-1], weights),
                                 weights)
        if weights.is_dir():
            check_weight_shapes({k: tuple(v.shape) for k, v in built[-1].state_dict().items()}, weights)
        try:
            return cls.from_pretrained(folder, **kwargs)
        except (RuntimeError, ValueError) as error:       # e.g. a .bin file of another config: name the folder
            raise ValueError(f"{weights}: {str(error).strip().splitlines()[0]}") from error
    if not hasattr(cls, "config_class"):
        raise TypeError(f"load_pretrained: {cls.__name__} is neither a diffusers nor a transformers model class")
    config = cls.config_class.from_pretrained(folder, **config_kwargs)        # transformers
    check_model_fits_weights(_buildable(lambda: cls(config), weights), weights)
    with _held_records(TRANSFORMERS_LOADER_LOGGER) as held:
        try:
            model, info = cls.from_pretrained(folder, output_loading_info=True, **kwargs)
        except (RuntimeError, ValueError) as error:           # e.g. a tensor of another shape
            _release(held)                                  # its report is what the error points to
            raise ValueError(f"{weights}: {str(error).strip().splitlines()[0]}") from error
    missing = sorted(info.get("missing_keys") or ()) + sorted(str(k) for k in info.get("mismatched_keys") or ())
    if missing:       # transformers would initialise them at random and go on
        # its load report, held back, says they "were newly initialized": not shown beside a refusal
        raise ValueError(f"{weights}: {len(missing)} tensor(s) of the network not in its weights, e.g. "
                         f"{', '.join(missing[:3])}: not the weights of this config.json, or a damaged copy")
    _release(held)                    # e.g. the report of tensors the weights hold and the network lacks
    return model


# What building a network from settings of the wrong type or value raises (a width as text, a negative
# size, heads that do not divide the width, an empty list of widths): the config's fault, said as such.
BUILD_ERRORS = (TypeError, ValueError, RuntimeError, AssertionError, KeyError, IndexError, ZeroDivisionError,
                AttributeError, OSError)


def _buildable(build: Any, folder: Path) -> Any:
    """``build`` (no arguments: the network of ``folder``'s config.json), whose failure (``BUILD_ERRORS``) is a
    ``ValueError`` naming that config.json and the error's first line, not a traceback from inside torch; the
    refusal of a network larger than its weights (``BoundedReadError``) passes as it is."""
    def checked():
        try:
            return build()
        except BoundedReadError:
            raise
        except BUILD_ERRORS as error:
            said = (str(error).strip().splitlines() or [""])[0][:300]
            raise ValueError(f"{folder / 'config.json'}: no network can be built from its settings (a damaged or "
                             f"edited config: {type(error).__name__}: {said})") from None
    return checked


# The logger of transformers' from_pretrained, which logs its load report (transformers >= 5).
TRANSFORMERS_LOADER_LOGGER = "transformers.modeling_utils"


@contextmanager
def _held_records(name: str) -> Iterator[list[logging.LogRecord]]:
    """Hold back what the logger ``name`` logs inside the block; the list holds the records, for
    ``_release`` to pass on once it is known that they tell the truth."""
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        held.append(record)
        return False

    logger = logging.getLogger(name)
    logger.addFilter(hold)
    try:
        yield held
    finally:
        logger.removeFilter(hold)


def _release(held: list[logging.LogRecord]) -> None:
    for record in held:
        logging.getLogger(record.name).handle(record)


def check_weight_shapes(expected: dict[str, tuple[int, ...]], folder: str | os.PathLike) -> None:
    """Refuse a diffusers model folder whose safetensors weights lack a tensor of the network its
    config builds (``expected``: name -> shape), or hold one of another shape: the loader would stop
    with an error naming neither the file nor the tensor ("Cannot copy out of meta tensor"). Reads
    the files' headers only; a folder with no safetensors file (``.bin`` weights) is left to the loader.
    ``ValueError`` naming the file, the count and the first tensors."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob("*.safetensors") if p.name.startswith(WEIGHT_FILE_PREFIXES))
    if not files:
        return
    stored = {}
    for path in files:
        stored.update(safetensors_shapes(path))
    where = files[0] if len(files) == 1 else folder
    missing = sorted(set(expected) - set(stored))
    if missing:
        extra = len(set(stored) - set(expected))
        raise ValueError(f"{where}: {len(missing)} tensor(s) of the network its config.json builds are not in the "
                         f"weights, e.g. {', '.join(missing[:3])}" + (f" (the file has {extra} the network lacks)"
                                                                      if extra else "")
                         + ": not the weights of this config, or a damaged copy")
    other = [name for name in sorted(expected) if stored[name] != expected[name]]
    if other:
        name = other[0]
        raise ValueError(f"{where}: tensor {name} has shape {list(stored[name])}, the network its config.json builds "
                         f"needs {list(expected[name])}" + (f" ({len(other)} tensors differ)" if len(other) > 1 else "")
                         + ": config.json and the weights are of different models")
