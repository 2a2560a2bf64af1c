"""Device choice: the one place the project turns a ``--device`` / ``device:`` setting into a device.

``resolve_device("auto")`` is ``"cuda"`` when torch sees a GPU and ``"cpu"`` otherwise; any other
value (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...) is returned unchanged once torch has accepted it
as a device string and, for a GPU, sees that device, so a typo or a CPU-only torch fails here,
naming the value, rather than as a traceback deep inside a model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

AUTO = "auto"


def resolve_device(name: str = AUTO) -> str:
    """``"auto"`` -> ``"cuda"`` if available else ``"cpu"``; another name is returned as given if torch knows it.

    Raises ``ValueError`` naming the value when ``torch.device(name)`` refuses it, or when it names a
    CUDA (or MPS) device that torch does not see.
    """
    if name == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"device {name!r} is not a device torch understands (use auto, cpu, cuda or "
                         f"cuda:N): {error}") from error
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {name!r}: torch {torch.__version__} sees no CUDA GPU (a CPU build, no driver "
                             "or CUDA_VISIBLE_DEVICES empty); use cpu or auto")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r}: torch sees {count} CUDA GPU(s), numbered 0-{count - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r}: torch sees no MPS device; use cpu or auto")
    return name


def processor() -> dict[str, str]:
    """What the CPU arithmetic of a run depended on: ``{"cpu": model name, "cpu_capability": ...,
    "cpu_id": ...}``.

    ``cpu`` is the first ``model name`` of ``/proc/cpuinfo`` (Linux; ``platform.processor()``
    elsewhere, "" when neither says); ``cpu_capability`` is the vector instruction set torch's CPU
    kernels dispatch to (``torch.backends.cpu.get_cpu_capability()``: DEFAULT, AVX2, AVX512, ...;
    lowered by ``ATEN_CPU_CAPABILITY``); ``cpu_id`` is the first 12 hex digits of the SHA-256 of
    ``cpu_identity_text()`` (the flags, family, model, stepping and cache sizes; "" where Linux's
    files are missing), since virtual machines often show one model name, "AMD EPYC", for CPUs whose
    instruction sets or caches, and so BLAS kernels and their blocking, differ. Two CPUs with other
    instruction sets or BLAS kernels round differently, so the same seeded training ends in other
    weights: numbers of models trained in a run are comparable across machines only within their
    seed-to-seed spread.
    """
    fields = _cpuinfo_fields()
    name = fields.get("model name", "")
    if not name:
        import platform
        name = platform.processor()
    text = cpu_identity_text(fields, _cache_sizes())
    digest = hashlib.sha256(text.encode()).hexdigest()[:12] if fields.get("flags") else ""
    return {"cpu": name, "cpu_capability": str(torch.backends.cpu.get_cpu_capability()), "cpu_id": digest}


def cpu_identity_text(fields: dict[str, str], caches: dict[str, int]) -> str:
    """The CPU facts that choose kernels, one per line: sorted flags, family, model, stepping, and the
    size in bytes of each cache of the first CPU (``{"L1d": 32768, ...}``)."""
    return "\n".join([f"flags: {' '.join(sorted(set(fields.get('flags', '').split())))}",
                      *(f"{key}: {fields.get(key, '')}" for key in ("cpu family", "model", "stepping")),
                      f"caches: {', '.join(f'{name} {size}' for name, size in sorted(caches.items()))}"])


def _cpuinfo_fields() -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` (keys lower-case); {} elsewhere."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    if fields:
                        break               # the end of the first processor's block
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def _cache_sizes() -> dict[str, int]:
    """The first CPU's caches from sysfs as ``{"L1d": bytes, "L1i": ..., "L2": ..., "L3": ...}``."""
    sizes: dict[str, int] = {}
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        number = int(size[:-1]) * units[size[-1]] if size[-1:] in units else int(size or 0)
        sizes[f"L{level}{suffix}"] = number
    return sizes
