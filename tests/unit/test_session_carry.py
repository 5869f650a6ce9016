"""ui/session.py: the conversation the browser carries (issue 16), so that a replica that never saw a tab goes on
with its conversation; what the browser sends is checked, and anything malformed starts a fresh one."""

from __future__ import annotations

from rag.types import Answer
from ui.session import CARRIED_CHARS, Exchange, Session


def talked() -> Session:
    s = Session("docs", 5, True, "extractive")
    s.exchanges = [Exchange("When was it built?", "docs", Answer("When was it built?", "In 1857 [1].", "1857", False)),
                   Exchange("And the lamp?", "docs", None, error="backend down")]
    s.messages = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                  {"role": "user", "content": "q2"}, {"role": "assistant", "content": "failed"}]
    return s


def test_a_carried_conversation_is_taken_up_by_a_fresh_session() -> None:
    old = talked()
    shown = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in old.messages]
    new = Session("docs", 5, True, "extractive")
    assert new.resume(old.carried(), shown)
    assert new.messages == old.messages
    assert [(t.question, t.answer) for t in new.history()] == [("When was it built?", "In 1857 [1].")]
    assert new.exchanges[1].answer is None and new.carried() == old.carried()


def test_a_session_with_its_own_conversation_keeps_it() -> None:
    mine = talked()
    assert not mine.resume([{"question": "other", "collection": "docs", "answer": "x"}],
                           [{"role": "user", "content": "other"}, {"role": "assistant", "content": "x"}])
    assert mine.exchanges[0].question == "When was it built?"


def test_anything_malformed_starts_a_fresh_conversation() -> None:
    pair = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    ok = [{"question": "q", "collection": "docs", "answer": "a"}]
    for carried, shown in [
        ("not a list", pair), (ok, "not a list"), ([], pair), ([{"question": 3, "collection": "docs"}], pair),
        ([{"question": "q", "collection": None, "answer": "a"}], pair), (ok, pair[:1]),
        (ok, [{"role": "system", "content": "q"}, pair[1]]), (ok, [{"role": "user", "content": {"x": 1}}, pair[1]]),
        (["q"], pair),
    ]:
        s = Session("docs", 5, True, "extractive")
        assert not s.resume(carried, shown), (carried, shown)
        assert s.exchanges == [] and s.messages == []


def test_carried_text_is_bounded() -> None:
    s = Session("docs", 5, True, "extractive")
    huge = "x" * (CARRIED_CHARS * 3)
    assert s.resume([{"question": huge, "collection": "docs", "answer": huge}],
                    [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    assert len(s.exchanges[0].question) == CARRIED_CHARS and len(s.history()[0].answer) == CARRIED_CHARS


def test_a_carried_answer_shows_no_sources_and_cannot_be_rated() -> None:
    from ui.chat import ChatUI

    new = Session("docs", 5, True, "extractive")
    assert new.resume(talked().carried(), talked().messages)
    ui = ChatUI(engine=None)  # type: ignore[arg-type]  # neither call may reach the engine
    assert "before this conversation moved" in ui.sources_for(new, 0)
    assert ui.vote("up", "", new, turn=0)[-1] is new and new.exchanges[0].vote is None
