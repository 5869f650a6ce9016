"""Small hardening fixes of issue 12, each pinned by a fast test: dotted numbers in the support check, setting
validation (collection names, the data directory, allowed hosts), upload names and leftovers, the user's own
message in the chat, non-text questions, the Host check and the login throttle."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rag.asker import QuestionError, check_question
from rag.errors import ConfigError
from rag.settings import default_data_dir, load_settings
from rag.support import SupportChecker, numbers
from ui import render, uploads
from ui.guard import HostPolicy, LoginThrottle, split_host


# -- finding 8: versions, addresses and dotted dates in a passage ---------------------------------------------
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Upgrade to Python 3.11.7 today.", {"3.11.7"}),
        ("The gateway is 10.0.0.1 on port 8080.", {"10.0.0.1", "8080"}),
        ("Signed on 2021.01.02 by 2,000 people.", {"2021.01.02", "2000"}),
        ("Serial 123456789012345678901234567890, version 1.2.3.4.5", {"123456789012345678901234567890", "1.2.3.4.5"}),
        ("It costs 3.5 million and weighs 2.25 tonnes.", {"3500000", "2.25"}),
    ],
)
def test_dotted_numbers_are_one_literal_token(text: str, want: set[str]) -> None:
    assert numbers(text) == want


def test_support_check_over_a_passage_with_versions_and_addresses_decides_without_error() -> None:
    passage = "Release 3.11.7 of the server runs on 10.0.0.1 since 2021.01.02 and serves 400 clients."
    checker = SupportChecker()
    assert checker.check("The server runs on 10.0.0.1 since 2021.01.02 [1].", [passage]).supported
    # a different version or address is a different literal: not supported
    assert not checker.check("Release 3.11.8 of the server serves 400 clients.", [passage]).supported
    assert not checker.check("The server of release 3.11.7 runs on 10.0.0.2.", [passage]).supported
    assert not checker.check("Serial " + "9" * 400 + " runs the server.", [passage]).supported  # no overflow


# -- finding 10: settings -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["abc\n", "abc\r\n", "abc\n\n", "\nabc"])
def test_collection_name_with_a_line_break_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"bad setting collection \(--collection / CITEQA_COLLECTION\)"):
        load_settings(collection=name)


def test_empty_data_dir_is_the_default_and_tilde_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CITEQA_DATA_DIR", "")
    assert load_settings().data_dir == default_data_dir() != Path(".")
    monkeypatch.setenv("CITEQA_DATA_DIR", "   ")
    assert load_settings().data_dir == default_data_dir()
    monkeypatch.setenv("CITEQA_DATA_DIR", "~/citeqa-here")
    assert load_settings().data_dir == tmp_path / "citeqa-here"
    assert load_settings(data_dir=Path("~/flag")).data_dir == tmp_path / "flag"


def test_a_data_dir_that_is_a_file_or_under_one_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    afile = tmp_path / "notes.txt"
    afile.write_text("x", encoding="utf-8")
    for bad, why in ((afile, "it is a file, not a folder"), (afile / "sub", f"{afile} is a file, not a folder")):
        with pytest.raises(ConfigError) as info:
            load_settings(data_dir=bad)
        msg = str(info.value)
        assert "\n" not in msg and "--data-dir / CITEQA_DATA_DIR" in msg and why in msg, msg
    assert not (afile.parent / "sub").exists()


def test_an_unwritable_data_dir_is_one_line(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes anywhere: an unwritable folder cannot be made here")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for bad in (locked, locked / "data"):
            with pytest.raises(ConfigError, match="not writable"):
                load_settings(data_dir=bad)
    finally:
        locked.chmod(0o700)


def test_allowed_hosts_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITEQA_ALLOWED_HOSTS", " Docs.Example.org, *.corp.example ,10.1.2.3")
    assert load_settings().allowed_hosts == ("docs.example.org", "*.corp.example", "10.1.2.3")
    monkeypatch.setenv("CITEQA_ALLOWED_HOSTS", "evil.example/path")
    with pytest.raises(ConfigError, match="CITEQA_ALLOWED_HOSTS"):
        load_settings()


def test_ingest_limits_must_be_positive() -> None:
    for name in ("max_text_chars", "max_ingest_seconds"):
        with pytest.raises(ConfigError, match=f"CITEQA_{name.upper()}"):
            load_settings(**{name: 0})


# -- finding 10: uploads --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "want"), [("..txt", "upload.txt"), (".txt", "upload.txt"), ("...md", "upload.md"),
                                           (". .pdf", "upload.pdf"), ("notes..txt", "notes.txt")])
def test_upload_names_made_of_dots_keep_their_extension(raw: str, want: str, tmp_path: Path) -> None:
    assert uploads.safe_name(raw) == want
    src = tmp_path / "src"
    src.write_text("hello", encoding="utf-8")
    assert uploads.check(src, raw, 1.0) is None
    placed = uploads.place(src, raw, tmp_path / "up", set())
    assert placed.dest.name == want and placed.dest.suffix in uploads.SUFFIXES


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_leftovers_of_an_interrupted_upload_are_undone(tmp_path: Path) -> None:
    """What a SIGKILL during an upload leaves: an earlier file moved aside (.replaced-*), its replacement in
    place but never ingested, a half-copied file (.incoming-*), an upload that never got into the collection."""
    folder = tmp_path / "up"
    folder.mkdir()
    src_old, src_new = tmp_path / "old.txt", tmp_path / "new.txt"
    src_old.write_text("the old text", encoding="utf-8")
    src_new.write_text("the new text", encoding="utf-8")
    first = uploads.place(src_old, "report.txt", folder, set())
    first.commit()
    held = {str(first.dest): _sha(first.dest)}
    second = uploads.place(src_new, "report.txt", folder, set())  # killed here: never committed
    assert second.backup is not None and second.backup.exists()
    (folder / f"{uploads.INCOMING_PREFIX}{'0' * 32}-half.txt").write_text("ha", encoding="utf-8")
    (folder / "orphan.txt").write_text("never ingested", encoding="utf-8")

    done = uploads.clean_leftovers(folder, held)
    assert len(done) == 3
    assert sorted(p.name for p in folder.iterdir()) == ["report.txt"]
    assert (folder / "report.txt").read_text(encoding="utf-8") == "the old text"  # what the collection holds

    # the replacement did get ingested before the kill: it stays, the old copy goes
    third = uploads.place(src_new, "report.txt", folder, set())
    held = {str(third.dest): _sha(third.dest)}
    uploads.clean_leftovers(folder, held)
    assert sorted(p.name for p in folder.iterdir()) == ["report.txt"]
    assert (folder / "report.txt").read_text(encoding="utf-8") == "the new text"


# -- finding 10: the user's own message, non-text questions ----------------------------------------------------
def test_markdown_in_ones_own_question_loads_no_image_and_makes_no_link() -> None:
    from markdown_it import MarkdownIt

    q = "Who? ![x](https://evil.example/pixel.png) [click](https://evil.example) <img src=https://evil.example/a>"
    html = MarkdownIt("commonmark").render(render.user_html(q))
    assert "<img" not in html and "<a " not in html and "evil.example" in html
    html = MarkdownIt("commonmark").render(render.user_html("line one\n\n![x](https://evil.example/p.png)"))
    assert "<img" not in html
    # the rating line under the chat is a Markdown component that quotes the question: escaped there
    html = MarkdownIt("commonmark").render(f"Rating **answer 1**: “{render.markdown_literal(q)}”")
    assert "<img" not in html and "<a " not in html and "![x](https://evil.example/pixel.png)" in html


@pytest.mark.parametrize("bad", [42, 3.5, ["How many troops?"], {"q": "How many troops?"}, True])
def test_a_question_that_is_not_text_is_one_line_saying_so(bad: object) -> None:
    with pytest.raises(QuestionError, match=r"^the question must be text, not \w+: send the question as a string$"):
        check_question(bad)  # type: ignore[arg-type]


# -- finding 6: Host check and login throttle ------------------------------------------------------------------
def test_split_host() -> None:
    assert split_host("Example.ORG:7860") == "example.org"
    assert split_host("[::1]:7860") == "::1" and split_host("localhost.") == "localhost"
    assert split_host("a:b:c") is None and split_host("") is None and split_host("[::1]x") is None


def test_host_policy_on_loopback_allows_loopback_names_only() -> None:
    p = HostPolicy("127.0.0.1")
    for ok in ("127.0.0.1:7860", "localhost:7860", "LOCALHOST", "[::1]:7860", "127.1.2.3", "app.localhost:7860"):
        assert p.allows(ok), ok
    for bad in ("evil.example", "evil.example:7860", "127.0.0.1.evil.example", "192.168.1.5:7860", "", None,
                "localhost.evil.example"):
        assert not p.allows(bad), bad


def test_host_policy_for_a_bound_name_wildcard_and_allowed_hosts() -> None:
    assert HostPolicy("docs.lan").allows("docs.lan:7860") and not HostPolicy("docs.lan").allows("other.lan")
    wild = HostPolicy("0.0.0.0", ["docs.example.org", "*.corp.example"])
    assert wild.allows("192.168.1.5:7860") and wild.allows("[fe80::1]:7860")  # an address cannot be re-pointed
    assert wild.allows("docs.example.org") and wild.allows("a.b.corp.example") and not wild.allows("corp.example.evil")
    assert not wild.allows("evil.example")
    assert HostPolicy("127.0.0.1", ["*"]).allows("anything.example")


def test_login_throttle_locks_an_address_after_five_failures_in_a_minute() -> None:
    now = [0.0]
    t = LoginThrottle(max_failures=5, window=60, lockout=120, clock=lambda: now[0])
    for _ in range(4):
        t.failed("1.2.3.4")
        now[0] += 10
    assert t.wait("1.2.3.4") == 0
    t.failed("1.2.3.4")
    assert t.wait("1.2.3.4") == pytest.approx(120) and t.wait("5.6.7.8") == 0  # per address
    now[0] += 121
    assert t.wait("1.2.3.4") == 0
    for _ in range(4):  # failures spread wider than the window never lock
        t.failed("9.9.9.9")
        now[0] += 61
    t.failed("9.9.9.9")
    assert t.wait("9.9.9.9") == 0
    t.succeeded("9.9.9.9")


def test_a_generated_answer_over_a_passage_with_versions_is_checked_not_failed() -> None:
    """Before, every generated answer over such a passage failed with "unexpected ValueError" (the support
    check parsed 3.11.7 as a float)."""
    from rag.generative import GenerativeAnswerer
    from rag.types import Chunk, Hit
    from tests.unit.test_generative import BowEmbedder, StubExtractive, fake

    text = "The build server runs Python 3.11.7 at 10.0.0.1. It was set up on 2021.01.02 by the platform team."
    hit = Hit(chunk=Chunk(id="c0", source="/docs/ops.txt", text=text, start=0, end=len(text)), score=0.9,
              dense_score=0.9, rank=1)
    model = fake("The build server runs Python 3.11.7 at 10.0.0.1 [1]. It runs Python 3.12.1 since 2021 [1].")
    ans = GenerativeAnswerer(model, BowEmbedder(), name="fake:llm", support_checker=SupportChecker(),
                             extractive=StubExtractive()).answer("What runs the build server?", [hit])
    assert not ans.abstained and ans.citations
    assert [s.startswith("It runs Python 3.12.1") for s in ans.unsupported_sentences] == [True]


def test_markers_become_pending_chips_while_the_answer_streams() -> None:
    html_out = render.streaming_html("Opened in 1961 [1]. Minus 71 [2][3] <b>x</b> [4")
    assert html_out.count('class="cite-chip cq-chip-pending"') == 3, "one chip per complete marker"
    assert ">1</span>" in html_out and ">3</span>" in html_out and "[4" in html_out, "a half-typed marker waits"
    assert "<b>" not in html_out and "&lt;b&gt;" in html_out, "the streamed text is escaped"
    assert "cq-t" not in html_out, "pending chips are not clickable until the answer is checked"
