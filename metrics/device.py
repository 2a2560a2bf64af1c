"""Device choice: the one place the project turns a ``--device`` / ``device:`` setting into a device.

``resolve_device("auto")`` is ``"cuda"`` when torch sees a GPU and ``"cpu"`` otherwise; any other
value (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...) is returned unchanged once torch has accepted it
as a device string and, for a GPU, sees that device, so a typo or a CPU-only torch fails here,
naming the value, rather than as a traceback deep inside a model.
"""

from __future__ import annotations

import hashlib

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
    "cpu_flags": ...}``.

    ``cpu`` is the first ``model name`` of ``/proc/cpuinfo`` (Linux; ``platform.processor()``
    elsewhere, "" when neither says); ``cpu_capability`` is the vector instruction set torch's CPU
    kernels dispatch to (``torch.backends.cpu.get_cpu_capability()``: DEFAULT, AVX2, AVX512, ...;
    lowered by ``ATEN_CPU_CAPABILITY``); ``cpu_flags`` is the first 12 hex digits of the SHA-256 of
    the first ``flags`` line's sorted flags (virtual machines often show one model name, "AMD EPYC",
    for CPU generations whose instruction sets, and so BLAS kernels, differ; "" where there is no
    such line). Two CPUs with other instruction sets or BLAS kernels round
    differently, so the same seeded training ends in other weights: numbers of models trained in a
    run are comparable across machines only within their seed-to-seed spread.
    """
    name, flags = "", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key = line.partition(":")[0].strip().lower()
                if key == "model name" and not name:
                    name = line.partition(":")[2].strip()
                elif key == "flags" and not flags:
                    listed = " ".join(sorted(set(line.partition(":")[2].split())))
                    flags = hashlib.sha256(listed.encode()).hexdigest()[:12]
                if name and flags:
                    break
    except OSError:
        pass
    if not name:
        import platform
        name = platform.processor()
    return {"cpu": name, "cpu_capability": str(torch.backends.cpu.get_cpu_capability()), "cpu_flags": flags}
