"""Loading the networks of a model folder that may come from elsewhere, bounded in what it allocates.

``from_pretrained`` of diffusers and transformers builds the network from ``config.json`` at full size
before it reads a weight, so a damaged or crafted config (one width of 200,000) asks for hundreds of
gigabytes. ``load_pretrained`` first builds the network on the meta device (shapes only) and refuses
a config that describes more parameters than the folder's weight files can hold
(``metrics.io.bounded.check_model_fits_weights``), naming the folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

from metrics.io.bounded import check_model_fits_weights, check_safetensors

T = TypeVar("T")


# What from_pretrained also passes on to reading the config (where it is, and never downloading).
CONFIG_KWARGS = ("local_files_only", "subfolder", "revision", "cache_dir", "token")


def load_pretrained(cls: type[T], folder: str | os.PathLike, **kwargs: Any) -> T:
    """``cls.from_pretrained(folder, **kwargs)`` once the folder's config is checked against its weights.

    ``cls``: a diffusers ``ModelMixin`` (``load_config`` / ``from_config``) or a transformers
    ``PreTrainedModel`` (``config_class``); ``kwargs`` such as ``local_files_only`` and ``subfolder``
    apply to reading the config too. Raises ``FileNotFoundError`` naming a local folder that is missing
    or has no ``config.json``, ``metrics.io.bounded.BoundedReadError`` (a ValueError) naming the folder for
    a config larger than its weights or a safetensors file cut short (``check_safetensors``); the
    loaders' own errors otherwise.
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
    if hasattr(cls, "load_config") and hasattr(cls, "from_config"):        # diffusers
        config = cls.load_config(folder, **config_kwargs)
        check_model_fits_weights(lambda: cls.from_config(config), weights)
    elif hasattr(cls, "config_class"):                                       # transformers
        config = cls.config_class.from_pretrained(folder, **config_kwargs)
        check_model_fits_weights(lambda: cls(config), weights)
    else:
        raise TypeError(f"load_pretrained: {cls.__name__} is neither a diffusers nor a transformers model class")
    return cls.from_pretrained(folder, **kwargs)
