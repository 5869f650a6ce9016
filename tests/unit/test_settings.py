from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.settings import load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CITEQA_DATA_DIR")
    s = load_settings()
    assert s.collection == "default" and s.llm == "extractive" and s.chroma is None and s.k == 5
    assert s.data_dir.name == "citeqa"
    assert s.chunk_size <= 256


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CITEQA_COLLECTION", "from-env")
    monkeypatch.setenv("CITEQA_K", "7")
    s = load_settings(collection="from-flag", k=None)
    assert s.collection == "from-flag" and s.k == 7
    assert s.collection_dir == s.data_dir / "collections" / "from-flag"


def test_chroma_host_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITEQA_CHROMA", "127.0.0.1:8123")
    assert load_settings().chroma_host_port == ("127.0.0.1", 8123)
    monkeypatch.setenv("CITEQA_CHROMA", "")
    assert load_settings().chroma is None


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"k": 0}, "bad setting k (--k / CITEQA_K)"),
        ({"collection": "a/b"}, "collection"),
        ({"collection": "x"}, "collection"),
        ({"chroma": "localhost"}, "chroma"),
        ({"chroma": "host:99999"}, "chroma"),
        ({"embedder": "bert"}, "embedder"),
        ({"llm": "gpt"}, "llm"),
        ({"llm": "openai:"}, "llm"),
        ({"chunk_size": 512}, "chunk_size"),
        ({"chunk_size": 100, "chunk_overlap": 100}, "chunk_overlap"),
        ({"max_file_mb": 0}, "max_file_mb"),
    ],
)
def test_bad_values_name_the_setting(flags: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(**flags)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def test_bad_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITEQA_K", "many")
    with pytest.raises(ConfigError, match="CITEQA_K"):
        load_settings()


def test_every_setting_is_read_by_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The variables modules used to read themselves are Settings fields, passed down from there."""
    from rag.embeddings import model_cache_dir
    from rag.llamacpp import llamacpp_threads

    for var in ("CITEQA_CACHE_DIR", "CITEQA_LLAMACPP_THREADS", "CITEQA_AUTH"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert (s.cache_dir, s.llamacpp_threads, s.auth) == (None, None, None)
    assert model_cache_dir(s.cache_dir).name == "citeqa" and llamacpp_threads(s.llamacpp_threads) >= 1
    monkeypatch.setenv("CITEQA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CITEQA_LLAMACPP_THREADS", "3")
    monkeypatch.setenv("CITEQA_AUTH", "ann:pw")
    s = load_settings()
    assert s.cache_dir == tmp_path / "cache" and model_cache_dir(s.cache_dir) == tmp_path / "cache"
    assert s.llamacpp_threads == 3 and llamacpp_threads(s.llamacpp_threads) == 3
    assert s.auth is not None and s.auth.get_secret_value() == "ann:pw" and "ann:pw" not in repr(s)
    for unset in ("", "0", "-2", "two", " 3", "³"):  # as before: anything but a whole number >= 1 is the default
        monkeypatch.setenv("CITEQA_LLAMACPP_THREADS", unset)
        assert load_settings().llamacpp_threads is None, unset
    monkeypatch.setenv("CITEQA_CACHE_DIR", "")
    monkeypatch.setenv("CITEQA_AUTH", "")
    assert load_settings().cache_dir is None and load_settings().auth is None


def test_config_errors_carry_the_setting_the_value_and_why() -> None:
    from ui.engine import ui_message

    with pytest.raises(ConfigError) as err:
        load_settings(k=0)
    e = err.value
    assert str(e) == "bad setting k (--k / CITEQA_K) = 0: must be between 1 and 100"
    assert (e.setting, e.value, e.why) == ("k", 0, "must be between 1 and 100")
    assert ui_message(e) == "k (passages to retrieve) 0 is not valid: must be between 1 and 100"
    with pytest.raises(ConfigError) as err:
        load_settings(collection="a: b")  # a value with ': ' in it (the line cannot be split back reliably)
    assert err.value.value == "a: b"
    assert ui_message(err.value).startswith("Collection name 'a: b' is not valid: must be 3-128 characters")
    assert ui_message(ConfigError("answer backend 'x' is not offered")) == "answer backend 'x' is not offered"


def test_each_default_is_defined_once() -> None:
    import inspect

    import rag.llm_spec
    import rag.settings
    from ingest.chunking import chunk_document, chunk_stream
    from ingest.runner import Ingestor
    from rag.settings import Settings

    size, overlap = Settings.model_fields["chunk_size"].default, Settings.model_fields["chunk_overlap"].default
    for fn, names in ((chunk_document, ("max_tokens", "overlap_tokens")), (chunk_stream, ("max_tokens",
                      "overlap_tokens")), (Ingestor.__init__, ("chunk_size", "chunk_overlap"))):
        params = inspect.signature(fn).parameters
        assert (params[names[0]].default, params[names[1]].default) == (size, overlap), fn
    assert rag.settings.HOSTPORT_RE is rag.llm_spec.HOSTPORT_RE
    assert load_settings(chroma="[::1]:8000").chroma_host_port == ("::1", 8000)


def test_verify_setting_takes_off_or_local_and_a_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.defaults import VERIFY_THRESHOLD

    s = load_settings()
    assert s.verify == "off" and s.verify_threshold == VERIFY_THRESHOLD
    monkeypatch.setenv("CITEQA_VERIFY", "Local")
    assert load_settings().verify == "local"
    assert load_settings(verify="off").verify == "off", "the flag wins over the environment"
    assert load_settings(verify="Claims").verify == "claims"
    with pytest.raises(ConfigError, match="verify.*off, local .* or claims"):
        load_settings(verify="nli")
    with pytest.raises(ConfigError, match="verify_threshold"):
        load_settings(verify_threshold=1.5)


def test_a_chat_remembers_the_answer_even_when_it_is_not_printed_twice(capsys: pytest.CaptureFixture[str]) -> None:
    """A streamed answer equal to the checked one is printed once; the conversation still holds its text."""
    from rag.types import Answer
    from ui.cli import _chat_turn

    class Streaming:
        def stream(self, question, k=None, history=()):  # type: ignore[no-untyped-def]
            yield "It opened in 1961 [1]."
            yield Answer(question, "It opened in 1961 [1].", None, False)

    final = _chat_turn(Streaming(), "When did it open?", None, [], stream=True)
    assert final is not None and final.answer == "It opened in 1961 [1]."
    assert capsys.readouterr().out.count("It opened in 1961") == 1
