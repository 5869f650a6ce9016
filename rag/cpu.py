"""What the CPU can do, for the two places where it changes results or safety:

- llama.cpp built with its AMX kernels crashes (SIGSEGV in ``ggml_backend_amx_mul_mat``) on the first decode on
  Sapphire Rapids CPUs. ``llamacpp_extra_buffers`` says whether the model may be loaded with llama.cpp's extra
  buffer types (where the AMX kernels live): not on a CPU with AMX when the library was built with them.
- int8 matrix kernels round differently with and without VNNI/AMX, so int8 embeddings, rankings and eval figures
  may differ slightly from one CPU kind to another. ``fingerprint`` is what a report records so that two runs
  can be told apart (``citeqa eval compare`` warns when they differ).
"""

from __future__ import annotations

import platform
import re
from functools import lru_cache
from pathlib import Path

# The features that pick different kernels in onnxruntime's and llama.cpp's CPU code.
KERNEL_FEATURES = (
    "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
    "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve",
)
EXTRA_BUFFERS = ("auto", "on", "off")


@lru_cache(maxsize=1)
def cpu_info() -> tuple[str, frozenset[str]]:
    """(model name, feature flags) of this machine's CPU from /proc/cpuinfo; ("", {}) where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine(), frozenset()
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M)
    return (model.group(1).strip() if model else platform.machine(),
            frozenset(flags.group(1).split()) if flags else frozenset())


def has_amx(flags: frozenset[str] | None = None) -> bool:
    flags = cpu_info()[1] if flags is None else flags
    return bool({"amx_tile", "amx_int8", "amx_bf16"} & flags)


def llama_system_info() -> str:
    """llama.cpp's own line of what it was built with ("CPU : SSE3 = 1 | AVX2 = 1 | AMX_INT8 = 1 | ..."); "" when
    llama-cpp-python is not installed."""
    try:
        import llama_cpp
    except ImportError:
        return ""
    try:
        raw = llama_cpp.llama_print_system_info()
    except Exception:  # an old binding without it: treat as unknown
        return ""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def built_with_amx(system_info: str) -> bool | None:
    """Whether llama.cpp's system info says its AMX kernels are in; None when the line does not tell."""
    if not system_info:
        return None
    return bool(re.search(r"\bAMX(?:_INT8|_TILE|_BF16)?\s*=\s*1", system_info))


def llamacpp_extra_buffers(setting: str = "auto", flags: frozenset[str] | None = None,
                           system_info: str | None = None) -> bool:
    """Whether to load GGUF models with llama.cpp's extra buffer types (weight repacking: faster prompts).

    ``auto`` (the default): yes, unless the CPU has AMX and the library was built with AMX kernels (or cannot say):
    those crash on the first decode. ``on``/``off`` force it (``CITEQA_LLAMACPP_EXTRA_BUFFERS``)."""
    if setting not in EXTRA_BUFFERS:
        raise ValueError(f"must be one of {', '.join(EXTRA_BUFFERS)}, got {setting!r}")
    if setting != "auto":
        return setting == "on"
    if not has_amx(flags):
        return True
    info = llama_system_info() if system_info is None else system_info
    return built_with_amx(info) is False


def fingerprint() -> dict[str, object]:
    """What embeddings (and so rankings, answers and metrics) may depend on besides the code and settings."""
    model, flags = cpu_info()
    return {
        "cpu": model,
        "machine": platform.machine(),
        "features": sorted(f for f in KERNEL_FEATURES if f in flags),
    }
