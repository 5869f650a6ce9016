"""What the HTTP APIs' routes share (ui/api.py's /v1, ui/rest.py's /api): the error they answer with, the one
translation of citeqa's errors, who the caller is (its key) and which collection a request may use."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse

from rag.errors import BusyError, CiteqaError, ConfigError, FileError, NotFoundError, QuestionError
from rag.settings import Settings
from rag.types import Answer, Turn
from ui import openai_shapes as shapes
from ui.engine import EVAL_COLLECTION, Engine, validated
from ui.keys import ApiKey, KeyRing


class ApiError(Exception):
    """An error the HTTP APIs answer with an OpenAI error object."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(shapes.error_body(self.message, self.kind, self.param, self.code), self.status,
                            headers=headers)


FORBIDDEN = ApiError(403, "this API key may not use the collection (model) it asked for", kind="permission_error",
                     code="collection_not_allowed")


def from_citeqa(err: CiteqaError, param: str | None = None) -> ApiError:
    """The one translation of citeqa's errors for the HTTP APIs."""
    if isinstance(err, QuestionError):
        return ApiError(400, str(err), param=param or "messages")
    if isinstance(err, ConfigError):
        return ApiError(400, str(err), param=err.setting)
    if isinstance(err, FileError):
        return ApiError(400, str(err), param="files")
    if isinstance(err, NotFoundError):
        return ApiError(404, str(err), code="not_found")
    if isinstance(err, BusyError):
        return ApiError(429, str(err), kind="rate_limit_error")
    return ApiError(503, str(err), kind="server_error")


@dataclass
class Api:
    """What the routes share: the UI's engine (one Citeqa per collection, its locks) and the keys."""

    engine: Engine
    keys: KeyRing
    limiter: anyio.CapacityLimiter

    @property
    def settings(self) -> Settings:
        return self.engine.settings

    def collections(self, key: ApiKey) -> list[str]:
        """The collections a key may use: those of the data directory, and in Chroma server mode the server's."""
        return [c for c in self.engine.collections() if key.allows(c)]

    def collection(self, name: str | None, key: ApiKey, *, param: str = "collection", create: bool = False) -> str:
        """The collection a request names (the server's own when None), checked against the key first, so a
        limited key learns nothing of collections it may not use."""
        name = name or self.settings.collection
        if not key.allows(name):
            raise FORBIDDEN
        try:
            name = validated(self.settings, collection=name).collection
        except ConfigError as err:
            raise ApiError(400, f"{param}: {err.why or err}", param=param) from None
        if create and not self.engine.exists(name) and EVAL_COLLECTION.match(name):
            raise ApiError(400, f"{param}: names like eval-0123456789ab are kept for evaluation runs", param=param)
        if not create and name not in self.collections(key):
            raise ApiError(404, f"there is no collection '{name}': GET /v1/models or /api/collections lists them",
                           param=param, code="model_not_found" if param == "model" else "not_found")
        if not self.engine.exists(name):  # a new one (an upload), or one only the Chroma server holds so far
            self.engine.settings_for(name).collection_dir.mkdir(parents=True, exist_ok=True)
        return name

    def qa(self, name: str) -> Any:
        self.engine.embedder()  # one embedder for every collection
        return self.engine.qa(name)

    def ask(self, name: str, question: str, history: list[Turn], k: int | None, source: str | None = None) -> Answer:
        qa = self.qa(name)
        with self.engine.lock(name).read():
            return qa.ask(question, k=k, history=history, source=source)

    def stream(self, name: str, question: str, history: list[Turn], k: int | None
               ) -> Generator[str | Answer, None, None]:
        qa = self.qa(name)
        with self.engine.lock(name).read():  # released when the stream ends or is closed (client gone)
            yield from qa.stream(question, k=k, history=history)

    async def run(self, fn: Any, *args: Any) -> Any:
        """Blocking work (an answer, an ingest) off the event loop, ASKS_AT_ONCE at a time."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)


def api_of(request: Request) -> Api:
    return request.app.state.api


def caller(request: Request) -> ApiKey:
    """The key of the request (a dependency of every route): 401 without one or with a wrong one."""
    api = api_of(request)
    header = request.headers.get("authorization")
    key = api.keys.find(header)
    if key is not None:
        return key
    if not api.keys.keys:
        raise ApiError(401, "this server's HTTP APIs need an API key (it is reachable from other machines, or "
                       "has a login): start it with CITEQA_API_KEYS or CITEQA_API_KEYS_FILE", code="invalid_api_key")
    if not header:
        raise ApiError(401, "no API key: send the header Authorization: Bearer KEY", code="invalid_api_key")
    raise ApiError(401, "incorrect API key provided", code="invalid_api_key")
