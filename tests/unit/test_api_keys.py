"""Issue 18: API keys (ui/keys.py), the API's settings, and the pure parts of the HTTP API's shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.settings import load_settings
from ui.keys import OPEN, ApiKey, KeyRing, load_keys, parse_entries
from ui.openai_shapes import ChatMessage, question_and_history

KEY_A = "a" * 20
KEY_B = "b-key_0123456789.xyz"


def test_entries_are_keys_with_optional_collections(tmp_path: Path) -> None:
    keys = parse_entries([KEY_A, f" {KEY_B} = alpha, beta ", "", "# a comment"], "test")
    assert keys == [ApiKey(KEY_A, None), ApiKey(KEY_B, frozenset({"alpha", "beta"}))]
    assert keys[0].allows("anything") and keys[1].allows("beta") and not keys[1].allows("gamma")
    f = tmp_path / "keys.txt"
    f.write_text(f"# team\n{KEY_B}=docs  # the docs team\n", encoding="utf-8")
    assert load_keys(f"{KEY_A};", f) == [ApiKey(KEY_A), ApiKey(KEY_B, frozenset({"docs"}))]


@pytest.mark.parametrize("entry", ["short", "a key with spaces in it!", f"{KEY_A}=", f"{KEY_A}=../x", f"{KEY_A}=a"])
def test_a_bad_entry_is_one_line_that_never_shows_the_key(entry: str) -> None:
    with pytest.raises(ConfigError, match=r"^bad setting api_keys \(CITEQA_API_KEYS\): entry 1 ") as exc:
        load_keys(entry, None)
    assert KEY_A not in str(exc.value)


def test_an_unreadable_keys_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CITEQA_API_KEYS_FILE"):
        load_keys(None, tmp_path / "missing.txt")


def test_the_bearer_header_finds_the_key() -> None:
    ring = KeyRing([ApiKey(KEY_A), ApiKey(KEY_B, frozenset({"alpha"}))], open_access=True)
    assert ring.required, "with keys, a key is needed even on loopback"
    assert ring.find(f"Bearer {KEY_B}") == ApiKey(KEY_B, frozenset({"alpha"}))
    assert ring.find(f"bearer  {KEY_A}") == ApiKey(KEY_A)
    for header in (None, "", KEY_A, f"Basic {KEY_A}", "Bearer ", f"Bearer {KEY_A}x"):
        assert ring.find(header) is None, header
    assert KeyRing([], open_access=True).find(None) is OPEN
    assert KeyRing([], open_access=False).find(f"Bearer {KEY_A}") is None


def test_open_access_is_loopback_without_a_login() -> None:
    from ui.app import api_keys

    s = load_settings()
    assert api_keys(s, "127.0.0.1", None).open_access
    assert not api_keys(s, "0.0.0.0", None).open_access
    assert not api_keys(s, "127.0.0.1", ("u", "p")).open_access


def test_the_settings_read_the_keys_and_mask_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITEQA_API_KEYS", f"{KEY_A};{KEY_B}=alpha")
    monkeypatch.setenv("CITEQA_API_MAX_BODY_KB", "16")
    s = load_settings()
    assert s.api_keys is not None and s.api_keys.get_secret_value().startswith(KEY_A)
    assert KEY_A not in repr(s) and s.api_max_body_kb == 16
    monkeypatch.setenv("CITEQA_API_MAX_BODY_KB", "0")
    with pytest.raises(ConfigError, match="CITEQA_API_MAX_BODY_KB"):
        load_settings()


def test_the_last_user_message_is_the_question_and_answered_ones_the_history() -> None:
    msgs = [ChatMessage(role=r, content=c) for r, c in [
        ("system", "be brief"), ("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("user", "q3"),
        ("assistant", "a3"), ("user", "now?")]]
    question, history = question_and_history(msgs)
    assert question == "now?" and [(t.question, t.answer) for t in history] == [("q1", "a1"), ("q3", "a3")]
    with pytest.raises(ValueError, match="last message must be the user's question"):
        question_and_history(msgs[:3])


def test_error_params_name_the_field() -> None:
    from ui.api import _param

    assert _param(("body", "messages", 0, "content", "str")) == "messages[0].content"
    assert _param(("body", "messages", 2, "content", "list[ContentPart]", 0, "type")) == "messages[2].content"
    assert _param(("body", "stream")) == "stream"
    assert _param(("body",)) is None


def test_bad_keys_stop_the_server_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    import ui.app

    monkeypatch.setattr(ui.app, "build_app", lambda *a, **kw: pytest.fail("built the app despite bad keys"))
    with pytest.raises(ConfigError, match="CITEQA_API_KEYS"):
        ui.app.start(load_settings(api_keys="too-short"), "127.0.0.1", 0)
