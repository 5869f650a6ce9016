"""The operator's list of answer backends (issue 12): sessions of `citeqa serve` pick a name from it and never
supply a spec, a URL, a path or a key. Forms: CITEQA_BACKENDS (name=spec;name=spec or JSON), a JSON or TOML file
(CITEQA_BACKENDS_FILE), repeated `citeqa serve --backend NAME=SPEC`."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.settings import load_settings

OLLAMA = "ollama:llama3.2@127.0.0.1:11434"
OPENAI = "openai:gemma@http://127.0.0.1:8080/v1"


@pytest.fixture(autouse=True)
def _no_backends_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CITEQA_BACKENDS", raising=False)
    monkeypatch.delenv("CITEQA_BACKENDS_FILE", raising=False)


def test_default_offer_is_extractive_and_the_servers_own_llm() -> None:
    s = load_settings()
    assert s.offered_backends == {"extractive": "extractive"} and s.default_backend == "extractive"
    s = load_settings(llm=OLLAMA)
    assert s.offered_backends == {"default": OLLAMA, "extractive": "extractive"} and s.default_backend == "default"
    assert s.llm == OLLAMA, "--llm is unchanged"


def test_environment_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITEQA_BACKENDS", f"local = {OLLAMA} ; gemma={OPENAI};")
    s = load_settings()
    assert s.backends == {"local": OLLAMA, "gemma": OPENAI}
    assert list(s.offered_backends) == ["extractive", "local", "gemma"]
    monkeypatch.setenv("CITEQA_BACKENDS", f'{{"local": "{OLLAMA}"}}')
    assert load_settings().backends == {"local": OLLAMA}
    assert load_settings(backends=[f"x={OPENAI}"]).backends == {"x": OPENAI}, "flags (repeated --backend) win"


def test_files_json_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    js = tmp_path / "backends.json"
    js.write_text(f'{{"local": "{OLLAMA}"}}', encoding="utf-8")
    toml = tmp_path / "backends.toml"
    toml.write_text(f'[backends]\ngemma = "{OPENAI}"\nlocal = "{OPENAI}"\n', encoding="utf-8")
    assert load_settings(backends_file=js).offered_backends == {"extractive": "extractive", "local": OLLAMA}
    monkeypatch.setenv("CITEQA_BACKENDS_FILE", str(toml))
    s = load_settings(backends=f"local={OLLAMA}")
    assert s.offered_backends == {"extractive": "extractive", "gemma": OPENAI, "local": OLLAMA}, "the list wins"
    assert load_settings(**s.model_dump()).offered_backends == s.offered_backends, "survives the UI's re-validation"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("local", "is not name=spec"),
        ("local=gpt-4", "must be extractive, llamacpp"),
        ("local=ollama:m@nohost", "expected host:port"),
        ("default=extractive", "is taken"),
        (f"extractive={OLLAMA}", "is taken"),
        ("a b=extractive", "backend name"),
        ("{not json", "not a JSON object"),
        ('{"a": 1}', "needs a spec string"),
    ],
)
def test_bad_entries_stop_the_server_naming_the_setting(value: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(backends=value)
    msg = str(err.value)
    assert msg.startswith("bad setting backends") and "CITEQA_BACKENDS" in msg and why in msg, msg
    assert "\n" not in msg


def test_bad_file_stops_the_server(tmp_path: Path) -> None:
    bad = tmp_path / "b.toml"
    bad.write_text('local = "bogus"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad setting backends_file .*backend 'local'"):
        load_settings(backends_file=bad)
    with pytest.raises(ConfigError, match="cannot read it"):
        load_settings(backends_file=tmp_path / "missing.json")


def test_serve_flags_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import ui.app
    from ui.cli import app

    seen = {}
    monkeypatch.setattr(ui.app, "serve", lambda s, **kw: seen.setdefault("settings", s))
    r = CliRunner().invoke(app, ["serve", "--llm", OPENAI, "--backend", f"local={OLLAMA}", "--backend",
                                 "quotes=extractive"])
    assert r.exit_code == 0, r.output
    assert seen["settings"].offered_backends == {"default": OPENAI, "extractive": "extractive", "local": OLLAMA,
                                                 "quotes": "extractive"}
