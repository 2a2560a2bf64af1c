"""The method registry: names -> methods that turn (reference image, audio) into a video.

Built in: ``imac`` and its ablations, ``s2g`` and ``mya`` (reimplementations), and the controls
``gt``, ``static``, ``shuffled``. External methods come from ``--generated NAME=DIR`` folders and
from command templates in a methods file (``bench.methods.command``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bench.methods.base import BenchContext, Method
from bench.methods.controls import GroundTruth, ShuffledAudio, Static
from metrics.dataset import ClipRecord

CONTROLS = ("gt", "static", "shuffled")

# The model builders import their method's module when a method is made, not at the top: the model
# methods pull in torch, diffusers and transformers (``python -X importtime``: bench.methods 3.2 s,
# bench.methods.s2g / .mya / .imac_method 22-24 s cumulative, on the busy 2-core dev machine), and
# ``bench.methods`` is imported by the CLI for commands that build no model (``known_methods``).


def _imac(name: str) -> Callable[[], Method]:
    def build() -> Method:
        from bench.methods.imac_method import IMACMethod

        return IMACMethod(name)
    return build


def _s2g() -> Method:
    from bench.methods.s2g import S2GMethod

    return S2GMethod()


def _mya() -> Method:
    from bench.methods.mya import MYAMethod

    return MYAMethod()


def _control(name: str) -> Callable[[], Method]:
    def build() -> Method:
        return {"gt": GroundTruth, "static": Static, "shuffled": ShuffledAudio}[name]()
    return build


BUILTIN: dict[str, Callable[[], Method]] = {
    **{name: _imac(name) for name in ("imac", "imac-no-ref", "imac-no-motion", "imac-no-stage1", "imac-no-slowfast")},
    "s2g": _s2g,
    "mya": _mya,
    **{name: _control(name) for name in CONTROLS},
}

# How each family finds its options in the bench config: the ablations share the ``imac`` section.
OPTION_SECTIONS = {"imac-no-ref": "imac", "imac-no-motion": "imac", "imac-no-stage1": "imac",
                   "imac-no-slowfast": "imac"}


class UnknownMethodError(ValueError):
    pass


# A method's name is its folder in a run (<out>/<name>/<identity>/<clip_id>.mp4 and work/<name>/): one
# path component that is none of the run's own folders and files.
RUN_ENTRIES = frozenset({"cache", "data", "plots", "work", "metrics.csv", "report.md", "report.tex", "results.json",
                         "run.json"})
_METHOD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def check_method_name(name: str, where: str) -> str:
    """``name`` if it can name a method's folder in a run; else ValueError naming ``where`` it came from."""
    if not _METHOD_NAME.fullmatch(name) or name in RUN_ENTRIES:
        raise ValueError(f"{where}: {name!r} cannot name a method: the name is the method's folder in the run, so "
                         "it takes letters, digits and _ - + . (not first), and none of the run's own entries "
                         f"({', '.join(sorted(RUN_ENTRIES))})")
    return name


def known_methods(external: dict[str, Callable[[], Method]] | None = None) -> list[str]:
    return list(BUILTIN) + sorted(external or {})


def make_method(name: str, external: dict[str, Callable[[], Method]] | None = None) -> Method:
    """The method called ``name``: a built-in one, or one of ``external`` (name -> factory)."""
    external = external or {}
    if name in external:
        return external[name]()
    if name in BUILTIN:
        return BUILTIN[name]()
    raise UnknownMethodError(f"unknown method {name!r}; known methods: {', '.join(known_methods(external))} "
                             "(or add one with --generated NAME=DIR or --methods-file FILE)")


__all__ = ["BUILTIN", "CONTROLS", "BenchContext", "Method", "ClipRecord", "UnknownMethodError", "check_method_name",
           "known_methods", "make_method"]
