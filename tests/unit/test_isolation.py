"""The child-process plugin (tests/isolation.py): a test that crashes the interpreter fails alone, with a readable
message, and the run goes on and reports everything else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.isolation import child_outcome

CRASHING = '''
import os
import sys

import pytest


@pytest.mark.isolated
def test_native_crash():
    print("loading the native library", flush=True)
    print("about to call into native code", file=sys.stderr, flush=True)
    os.abort()  # what a segfault in llama.cpp does to the interpreter


@pytest.mark.isolated
def test_isolated_passes():
    assert os.environ.get("CITEQA_ISOLATED_CHILD") == "1"


@pytest.mark.isolated
def test_isolated_fails():
    assert 1 + 1 == 3, "arithmetic broke"


@pytest.mark.isolated
def test_isolated_skips():
    pytest.skip("no model here")


def test_after_the_crash():
    assert True
'''


def test_a_crash_in_an_isolated_test_fails_that_test_alone(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.isolation"]\n', encoding="utf-8")
    (tmp_path / "test_crashing.py").write_text(CRASHING, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("CITEQA_ISOLATED_CHILD", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # failures, not a crash of the run (that would be -6 / 134)
    assert "2 failed, 2 passed, 1 skipped" in out, out
    # the crash: named by its signal, with the child's last lines
    assert "FAILED test_crashing.py::test_native_crash" in out
    assert "SIGABRT" in out and "about to call into native code" in out, out
    # an ordinary failure in the child keeps its own message; the skip keeps its reason
    assert "FAILED test_crashing.py::test_isolated_fails" in out and "arithmetic broke" in out
    assert "no model here" in out
    assert "PASSED test_crashing.py::test_isolated_passes" in out
    assert "PASSED test_crashing.py::test_after_the_crash" in out


def test_child_outcome_without_a_report_names_the_signal(tmp_path: Path) -> None:
    outcome, reason, detail = child_outcome(-11, tmp_path / "missing.xml", "line 1\nggml_backend_amx_mul_mat\n")
    assert outcome == "failed" and reason is not None and "SIGSEGV" in reason
    assert "ggml_backend_amx_mul_mat" in detail
    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite><testcase name="t"><skipped message="why"/></testcase></testsuite>'
                   "</testsuites>", encoding="utf-8")
    assert child_outcome(0, xml, "")[:2] == ("skipped", "why")
