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
