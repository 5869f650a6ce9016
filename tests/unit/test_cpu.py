"""CPU-dependent choices: when llama.cpp may use its extra buffer types (AMX crashes on Sapphire Rapids), the
switch that turns them off, the server launcher that applies it, and the machine fingerprint reports record."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import pytest

from rag.cpu import built_with_amx, fingerprint, has_amx, llamacpp_extra_buffers
from rag.errors import ConfigError
from rag.llamacpp import extra_buffers_off, without_extra_buffers
from rag.settings import load_settings

SPR = frozenset("avx2 avx512f avx512_vnni amx_tile amx_int8 amx_bf16".split())
EPYC = frozenset("avx2 fma avx512f avx512_vnni".split())
NATIVE_SPR = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1 | REPACK = 1 |"
PORTABLE = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | OPENMP = 1 | REPACK = 1 |"


def test_extra_buffers_are_off_on_amx_cpus_with_an_amx_build() -> None:
    assert has_amx(SPR) and not has_amx(EPYC)
    assert llamacpp_extra_buffers("auto", SPR, NATIVE_SPR) is False  # the crash: AMX CPU, AMX kernels built in
    assert llamacpp_extra_buffers("auto", SPR, "") is False  # cannot tell how it was built: the safe side
    assert llamacpp_extra_buffers("auto", SPR, PORTABLE) is True  # no AMX kernels in the library: repacking is safe
    assert llamacpp_extra_buffers("auto", EPYC, NATIVE_SPR) is True  # no AMX on the CPU: never reached
    assert llamacpp_extra_buffers("off", EPYC, PORTABLE) is False
    assert llamacpp_extra_buffers("on", SPR, NATIVE_SPR) is True
    assert built_with_amx(NATIVE_SPR) is True and built_with_amx(PORTABLE) is False and built_with_amx("") is None
    with pytest.raises(ValueError):
        llamacpp_extra_buffers("maybe", EPYC, PORTABLE)


def test_the_setting_is_validated() -> None:
    assert load_settings().llamacpp_extra_buffers == "auto"
    assert load_settings(llamacpp_extra_buffers="off").llamacpp_extra_buffers == "off"
    with pytest.raises(ConfigError, match="CITEQA_LLAMACPP_EXTRA_BUFFERS"):
        load_settings(llamacpp_extra_buffers="sometimes")


@dataclass
class _Params:
    use_extra_bufts: bool = True
    n_gpu_layers: int = 0


def test_the_switch_reaches_the_model_parameters() -> None:
    native = types.SimpleNamespace(llama_model_default_params=_Params)
    assert without_extra_buffers(_Params)().use_extra_bufts is False
    with extra_buffers_off(native):
        assert native.llama_model_default_params().use_extra_bufts is False
    assert native.llama_model_default_params is _Params, "restored afterwards"
    with extra_buffers_off(native, off=False):
        assert native.llama_model_default_params().use_extra_bufts is True


def test_the_server_launcher_loads_models_without_extra_buffers(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m rag.llama_server` patches llama.cpp's default model parameters before the server builds its
    models; here the server is a stand-in that records what a model would be loaded with."""
    seen: dict[str, object] = {}
    native = types.ModuleType("llama_cpp.llama_cpp")
    native.llama_model_default_params = _Params  # type: ignore[attr-defined]
    server_main = types.ModuleType("llama_cpp.server.__main__")

    def fake_server() -> None:
        seen["argv"] = list(sys.argv[1:])
        seen["use_extra_bufts"] = native.llama_model_default_params().use_extra_bufts  # type: ignore[attr-defined]

    server_main.main = fake_server  # type: ignore[attr-defined]
    pkg = types.ModuleType("llama_cpp")
    pkg.llama_cpp = native  # type: ignore[attr-defined]
    server_pkg = types.ModuleType("llama_cpp.server")
    for name, mod in (("llama_cpp", pkg), ("llama_cpp.llama_cpp", native), ("llama_cpp.server", server_pkg),
                      ("llama_cpp.server.__main__", server_main)):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(sys, "argv", ["llama_server"])
    monkeypatch.setenv("CITEQA_LLAMACPP_EXTRA_BUFFERS", "off")
    from rag import llama_server

    llama_server.main(["--model", "m.gguf", "--port", "1"])
    assert seen == {"argv": ["--model", "m.gguf", "--port", "1"], "use_extra_bufts": False}
    assert "extra buffer types off (setting off)" in capsys.readouterr().out


def test_the_launcher_refuses_a_bad_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITEQA_LLAMACPP_EXTRA_BUFFERS", "sometimes")
    from rag import llama_server

    with pytest.raises(SystemExit, match="CITEQA_LLAMACPP_EXTRA_BUFFERS"):
        llama_server.main([])


def test_fingerprint_names_the_cpu_and_its_kernel_features() -> None:
    fp = fingerprint()
    assert fp["cpu"] and fp["machine"]
    assert isinstance(fp["features"], list) and fp["features"] == sorted(fp["features"])
