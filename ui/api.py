"""The HTTP APIs of ``citeqa serve``, beside the Gradio UI on the same port: an OpenAI-compatible chat endpoint
(``/v1/models``, ``/v1/chat/completions``, plain and streamed) and citeqa's REST API (``/api/...``, ui/rest.py),
documented at ``/docs``.

It is a FastAPI app of its own, put in front of Gradio's by ``ApiMount`` (one ASGI middleware in the Gradio
app's stack, behind the Host check): Gradio keeps its own launch, queue, login and uploads, and this app its
own error objects and OpenAPI schema. Every error is an OpenAI error object; a body over the limit is refused
while it is received (``BodyLimit``), before it is parsed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Generator
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.asker import check_question
from rag.errors import CiteqaError, QuestionError
from rag.settings import Settings
from rag.types import Answer, Turn
from ui import openai_shapes as shapes
from ui.api_context import Api, ApiError, api_of, caller, from_citeqa
from ui.engine import Engine
from ui.guard import ASGIApp, Message, Receive, Scope, Send
from ui.keys import ApiKey, KeyRing

log = logging.getLogger("citeqa.api")
PREFIXES = ("/v1", "/api", "/docs", "/openapi.json")
ASKS_AT_ONCE = 4  # questions the HTTP APIs answer in parallel (beside the UI's)
UPLOAD_OVERHEAD = 1 << 20  # multipart framing allowed beyond the per-file limit
_UNION_TAGS = ("str", "int", "float", "bool", "none", "list", "dict")


def _param(loc: tuple[Any, ...]) -> str | None:
    """``messages[0].content`` from pydantic's location (without the union member it tried, e.g. ``str``)."""
    out = ""
    for p in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(p, str) and (p in _UNION_TAGS or "[" in p):
            break
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or None


def validation_error(err: RequestValidationError) -> ApiError:
    first = err.errors()[0] if err.errors() else {}
    if first.get("type") == "json_invalid":
        why = (first.get("ctx") or {}).get("error", "")
        return ApiError(400, f"the request body is not valid JSON{f' ({why})' if why else ''}")
    param = _param(tuple(first.get("loc") or ()))
    msg = str(first.get("msg", "invalid value"))
    if param is None:
        return ApiError(400, f"the request body must be a JSON object ({msg})")
    return ApiError(400, f"{param}: {msg}", param=param)


def install_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, err: ApiError) -> JSONResponse:
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return validation_error(err).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if err.status_code == 404 else "invalid_request_error"
        code = "body_too_large" if err.status_code == 413 else None
        return ApiError(err.status_code, str(err.detail), kind=kind, code=code).response()

    @app.exception_handler(CiteqaError)
    async def _citeqa(_: Request, err: CiteqaError) -> JSONResponse:
        return from_citeqa(err).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return ApiError(500, f"unexpected {type(err).__name__} (details are in the server log)",
                        kind="server_error").response()


def build_api(engine: Engine, keys: KeyRing) -> FastAPI:
    from ui.rest import router

    app = FastAPI(title="citeqa", version="1", docs_url=None, redoc_url=None, openapi_url="/openapi.json",
                  description="Answers from your documents with exact citations: an OpenAI-compatible chat endpoint "
                  "(/v1) and citeqa's REST API (/api). Send `Authorization: Bearer KEY`.")
    app.state.api = Api(engine, keys, anyio.CapacityLimiter(ASKS_AT_ONCE))
    install_errors(app)
    app.get("/v1/models", tags=["openai"])(list_models)
    app.post("/v1/chat/completions", tags=["openai"], response_model=None)(chat_completions)
    app.include_router(router, dependencies=[Depends(caller)])

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:  # offline, unlike FastAPI's Swagger page (ui/api_docs.py)
        from ui.api_docs import docs_page

        return HTMLResponse(docs_page(app.openapi(), str(request.base_url)))

    return app


def list_models(request: Request, key: ApiKey = Depends(caller)) -> dict[str, Any]:  # noqa: B008
    """Each collection is a model, `citeqa/<collection>`."""
    return {"object": "list", "data": [shapes.model_entry(c) for c in api_of(request).collections(key)]}


async def chat_completions(body: shapes.ChatRequest, request: Request,
                           key: ApiKey = Depends(caller)) -> Any:  # noqa: B008
    """OpenAI's chat completion: the last user message is the question, the answer keeps its [n] markers and
    `citations` holds the exact spans. With `stream: true`, server-sent `chat.completion.chunk`s."""
    api = api_of(request)
    name = api.collection(body.model.removeprefix(shapes.MODEL_PREFIX), key, param="model")
    try:
        question, history = shapes.question_and_history(body.messages)
    except ValueError as err:
        raise ApiError(400, str(err), param="messages") from None
    if not question.strip():
        raise ApiError(400, "messages: the last user message has no text: send the question as its content",
                       param="messages")
    try:
        check_question(question)  # before a stream starts: after it, the status is 200 whatever happens
    except QuestionError as err:
        raise from_citeqa(err) from None
    if body.stream:
        return StreamingResponse(_sse(api, name, body.model, question, history, body.k),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    answer = await api.run(api.ask, name, question, history, body.k)
    return shapes.completion(body.model, answer)


def _event(data: Any) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _sse(api: Api, name: str, model: str, question: str, history: list[Turn], k: int | None
               ) -> AsyncIterator[bytes]:
    """The stream: a role chunk, the text as it comes, a last chunk with finish_reason and the citations, [DONE].
    An error after the stream began is sent as an error object event (the status is already 200)."""
    cid, created = shapes.new_id(), int(time.time())
    yield _event(shapes.chunk(cid, created, model, {"role": "assistant", "content": ""}))
    parts = api.stream(name, question, history, k)
    sent: list[str] = []
    try:
        async for part in iterate_in_threadpool(parts):
            if isinstance(part, Answer):
                tail = _tail("".join(sent), part.answer)
                if tail:
                    yield _event(shapes.chunk(cid, created, model, {"content": tail}))
                yield _event(shapes.chunk(cid, created, model, {}, "stop", shapes.extras(part)))
            elif part:
                sent.append(part)
                yield _event(shapes.chunk(cid, created, model, {"content": part}))
    except CiteqaError as err:
        yield _event(shapes.error_body(from_citeqa(err).message, "invalid_request_error"))
    except Exception as err:
        log.exception("streaming an answer failed")
        yield _event(shapes.error_body(f"unexpected {type(err).__name__} (details are in the server log)",
                                       "server_error"))
    finally:  # also when the client went away: the stream's read lock is released
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_close, parts)
    yield b"data: [DONE]\n\n"


def _close(parts: Generator[Any, None, None]) -> None:
    try:
        parts.close()
    except ValueError:  # still running in the thread the client left: it ends and is collected with its lock
        log.info("a stream was left while its answer was being made")


def _tail(streamed: str, final: str) -> str:
    """What the checked answer adds to the streamed text (nothing when it differs: a streamed part cannot be
    taken back; the checked text is in the last chunk's `citeqa.answer`)."""
    return final[len(streamed):] if final.startswith(streamed) else ""


class BodyLimit:
    """Refuses a request body over the limit before it is read whole: at once by its Content-Length, else (a
    chunked body) when the bytes received pass the limit. ``upload_limit`` for multipart uploads."""

    def __init__(self, app: ASGIApp, *, limit: int, upload_limit: int) -> None:
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers") or ()}
        upload = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.upload_limit if upload else self.limit
        length = headers.get(b"content-length")
        why = (f"the request body is over the limit of {limit // 1024} KB "
               f"({'CITEQA_MAX_FILE_MB' if upload else 'CITEQA_API_MAX_BODY_KB'})")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await ApiError(413, why, code="body_too_large").response()(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # FastAPI lets an HTTPException from the body's reading through to its handler
                raise StarletteHTTPException(413, why)
            return message

        await self.app(scope, counted, send)


class ApiMount:
    """The ASGI middleware in Gradio's stack that sends the API's paths to the API app, the rest to Gradio."""

    def __init__(self, app: ASGIApp, *, api: ASGIApp) -> None:
        self.app, self.api = app, api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and any(path == p or path.startswith(p + "/") for p in PREFIXES):
            await self.api(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def api_middleware(settings: Settings, engine: Engine, keys: KeyRing) -> Any:
    """The Middleware entry for Gradio's ``launch(app_kwargs={"middleware": [...]})``."""
    from starlette.middleware import Middleware

    api = BodyLimit(build_api(engine, keys), limit=settings.api_max_body_kb * 1024,
                    upload_limit=int(settings.max_file_mb * 2**20) + UPLOAD_OVERHEAD)
    return Middleware(ApiMount, api=api)
