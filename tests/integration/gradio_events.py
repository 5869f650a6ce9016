"""Drive the UI's events over HTTP as the browser does (and as an attacker could): read /config, find an event by
its component's elem_id, post its inputs to the queue with a session hash, read the result stream.

Events the app marks ``api_visibility="private"`` are not callable through gradio_client, but the browser calls
every event this way, so anyone who can reach the server can too; these helpers are how the tests send what a
page never would."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Result:
    success: bool
    data: list[Any]  # the outputs of the last message (the final value of a streamed event)
    error: str  # Gradio's error text when not successful
    messages: list[dict[str, Any]]
    finished: float  # time.monotonic() when it completed


class Events:
    def __init__(self, url: str, timeout: float = 300) -> None:
        self.http = httpx.Client(base_url=url, timeout=timeout)
        self.config = self.http.get("config").raise_for_status().json()
        self.elem = {c["id"]: c.get("props", {}).get("elem_id") for c in self.config["components"]}

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Events:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def new_session() -> str:
        return uuid.uuid4().hex[:11]

    def dependency(self, elem_id: str, event: str) -> dict[str, Any]:
        for d in self.config["dependencies"]:
            if any(ev == event and self.elem.get(t) == elem_id for t, ev in d["targets"]):
                return d
        raise KeyError(f"no {event} event on #{elem_id}")

    def component_props(self, elem_id: str) -> dict[str, Any]:
        return next(c["props"] for c in self.config["components"] if c.get("props", {}).get("elem_id") == elem_id)

    def upload(self, path: Path) -> dict[str, Any]:
        """POST a file to /gradio_api/upload; returns the FileData a page would send for it."""
        files = [("files", (path.name, path.read_bytes(), "application/octet-stream"))]
        served = self.http.post("gradio_api/upload", files=files).raise_for_status().json()
        return file_data(served[0], path.name)

    def submit(self, elem_id: str, event: str, data: list[Any], session: str) -> str:
        """Queue one event in ``session`` (stateful inputs, gr.State, are sent as None); returns its event id."""
        dep = self.dependency(elem_id, event)
        target = next(t for t, ev in dep["targets"] if ev == event and self.elem.get(t) == elem_id)
        r = self.http.post("gradio_api/queue/join", json={
            "data": data, "fn_index": dep["id"], "trigger_id": target, "session_hash": session,
            "event_data": None,
        }).raise_for_status()
        return str(r.json()["event_id"])

    def collect(self, session: str, event_ids: list[str]) -> dict[str, Result]:
        """Read the session's result stream until every one of ``event_ids`` has completed."""
        done: dict[str, Result] = {}
        seen: dict[str, list[dict[str, Any]]] = {e: [] for e in event_ids}
        with self.http.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                eid = msg.get("event_id")
                if eid in seen:
                    seen[eid].append(msg)
                    if msg.get("msg") == "process_completed":
                        out = msg.get("output") or {}
                        done[eid] = Result(bool(msg.get("success")), out.get("data") or [],
                                           str(out.get("error") or ""), seen[eid], time.monotonic())
                if len(done) == len(event_ids):
                    return done
        raise AssertionError(f"events never completed: {set(event_ids) - set(done)}")

    def call(self, elem_id: str, event: str, data: list[Any], session: str) -> Result:
        """Run one event in ``session`` and wait for it."""
        eid = self.submit(elem_id, event, data, session)
        return self.collect(session, [eid])[eid]


def file_data(path: str, name: str) -> dict[str, Any]:
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def text_of(value: Any) -> str:
    """Every string inside an event's output, joined (for 'does this text appear anywhere' checks)."""
    return json.dumps(value, ensure_ascii=False)
