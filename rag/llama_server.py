"""``python -m rag.llama_server ARGS``: llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``,
same arguments), made safe on Intel CPUs with AMX.

llama.cpp built with its AMX kernels crashes on the first decode on Sapphire Rapids (SIGSEGV in
``ggml_backend_amx_mul_mat``), and ``llama_cpp.server`` has no switch for llama.cpp's extra buffer types. This
launcher loads the models with them off where ``rag.cpu.llamacpp_extra_buffers`` says so (the
``llamacpp_extra_buffers`` setting: ``auto``, or ``CITEQA_LLAMACPP_EXTRA_BUFFERS=on|off``), prints one line
saying which, then runs the server unchanged.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from rag.cpu import llamacpp_extra_buffers
    from rag.errors import ConfigError
    from rag.settings import load_settings

    try:
        setting = load_settings().llamacpp_extra_buffers
    except ConfigError as err:
        sys.exit(f"citeqa: {err}")
    try:
        import llama_cpp.llama_cpp as native
        from llama_cpp.server.__main__ import main as server_main
    except ImportError:
        sys.exit("citeqa: the llama.cpp server needs llama-cpp-python[server]: pip install 'citeqa[llamacpp]'")
    use_extra = llamacpp_extra_buffers(setting)
    print(f"citeqa: llama.cpp extra buffer types {'on' if use_extra else 'off'} (setting {setting})", flush=True)
    if not use_extra:
        from rag.llamacpp import without_extra_buffers

        native.llama_model_default_params = without_extra_buffers(native.llama_model_default_params)
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    server_main()


if __name__ == "__main__":
    main()
