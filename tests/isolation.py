"""A pytest plugin: tests marked ``isolated`` run in a child pytest process of their own.

Native code (llama.cpp above all) can take the interpreter down with a segmentation fault or an abort, and with it
the whole test run, so that nothing after it is reported. An isolated test runs as ``python -m pytest NODEID`` in
a child; its outcome (passed, failed, skipped) is read back from the child's JUnit XML and reported as the test's
own. When the child dies instead, that one test fails with the signal and the child's last lines, and the run
goes on.

Fixtures of an isolated test are built in the child (a module-scoped fixture is built once per isolated test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

CHILD_ENV = "CITEQA_ISOLATED_CHILD"
TAIL_LINES = 25
DEFAULT_TIMEOUT = 600.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "isolated: run in a child process, so a crash in native code fails this test alone"
    )


def _timeout(item: pytest.Item) -> float:
    mark = item.get_closest_marker("timeout")
    if mark and mark.args:
        return float(mark.args[0]) + 30
    try:
        ini = float(item.config.getini("timeout") or 0)
    except (ValueError, KeyError):
        ini = 0.0
    return (ini or DEFAULT_TIMEOUT) + 30


def _tail(text: str, n: int = TAIL_LINES) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


def _crash_lines(output: str) -> str:
    """The child's last lines before it died, then the innermost frames of the Python traceback that
    faulthandler printed (most recent call first), if it printed one."""
    before, sep, dump = output.partition("Fatal Python error:")
    text = _tail(before, TAIL_LINES)
    if sep:
        lines = dump.splitlines()
        frames = [ln for ln in lines if ln.strip().startswith("File ")][:6]
        text += "\n--- faulthandler ---\nFatal Python error:" + lines[0] + "\n" + "\n".join(frames)
    return text


def _died(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the child process was killed by {name}"
    return f"the child process exited with {returncode} without reporting the test"


def child_outcome(returncode: int, xml_path: Path, output: str) -> tuple[str, str | None, str]:
    """(outcome, reason, detail): what the child's JUnit XML says of its one test, or a failure naming how the
    child died, with its last lines, when it has nothing to say."""
    case = None
    if xml_path.is_file() and xml_path.stat().st_size:
        try:
            case = ET.parse(xml_path).getroot().find(".//testcase")
        except ET.ParseError:
            case = None
    if case is None:
        return "failed", _died(returncode), f"{_died(returncode)}; its last lines:\n{_crash_lines(output)}"
    for tag in ("failure", "error"):
        el = case.find(tag)
        if el is not None:
            message = el.get("message") or tag
            return "failed", message, f"{message}\n\n{(el.text or '').strip()}"
    el = case.find("skipped")
    if el is not None:
        reason = el.get("message") or "skipped in the child process"
        return "skipped", reason, reason
    return "passed", None, ""


def run_in_child(item: pytest.Item) -> tuple[str, str | None, str, str, float]:
    """Run ``item`` alone in a child pytest; (outcome, reason, detail, child output, seconds)."""
    root = Path(str(item.config.rootpath))
    with tempfile.TemporaryDirectory(prefix="citeqa-isolated-") as tmp:
        xml_path = Path(tmp) / "result.xml"
        cmd = [
            # -s: what the test prints reaches the pipe as it happens, so a crash cannot swallow it
            sys.executable, "-m", "pytest", item.nodeid, "-q", "-s", "-p", "no:cacheprovider", "--no-header",
            f"--junitxml={xml_path}", "-o", "junit_family=xunit2", "-o", "junit_logging=no",
            f"--rootdir={root}",
        ]
        env = {**os.environ, CHILD_ENV: "1", "PYTHONFAULTHANDLER": "1"}
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, errors="replace", timeout=_timeout(item))
            rc, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"") + (exc.stderr or b"")
            output = out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out)
            seconds = time.perf_counter() - t0
            return "failed", "timeout", f"the child process ran past {_timeout(item):g} s:\n{_tail(output)}", \
                output, seconds
        seconds = time.perf_counter() - t0
        outcome, reason, detail = child_outcome(rc, xml_path, output)
        return outcome, reason, detail, output, seconds


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if item.get_closest_marker("isolated") is None or os.environ.get(CHILD_ENV):
        return None
    hook = item.ihook
    hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    outcome, reason, detail, output, seconds = run_in_child(item)
    keywords = {k: 1 for k in item.keywords}
    sections = [("Captured output of the child process", _tail(output, 200))] if outcome == "failed" else []

    def report(when: str, result: str, longrepr: object = None, duration: float = 0.0) -> None:
        rep = pytest.TestReport(item.nodeid, item.location, keywords, result, longrepr, when,
                                sections=sections if when == "call" else [], duration=duration)
        hook.pytest_runtest_logreport(report=rep)

    if outcome == "skipped":
        path, lineno, _ = item.location
        report("setup", "skipped", (str(path), (lineno or 0) + 1, f"Skipped: {reason}"), seconds)
    else:
        report("setup", "passed")
        report("call", outcome, f"[isolated] {detail}" if outcome == "failed" else None, seconds)
    report("teardown", "passed")
    hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
