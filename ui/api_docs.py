"""``/docs``: the HTTP APIs' reference as one self-contained HTML page rendered from the OpenAPI schema.

FastAPI's own Swagger page loads its scripts from a CDN: offline it is blank, and online it tells a third party
that the page was opened (the UI loads nothing from outside, see ui/app.py). The schema itself is at
``/openapi.json`` for tools that read it (Swagger editors, client generators)."""

from __future__ import annotations

import html
import json
from typing import Any

USAGE = """\
from openai import OpenAI
client = OpenAI(base_url="{base}v1", api_key="YOUR-KEY")
r = client.chat.completions.create(model="citeqa/default", messages=[{{"role": "user", "content": "..."}}])
print(r.choices[0].message.content)     # the answer with its [n] markers
print(r.model_extra["citations"])       # n, source, page, start, end, text, supported"""

STYLE = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1e293b}"
         "code,pre{background:#f1f5f9;border-radius:4px}pre{padding:.8rem;overflow:auto}"
         ".m{display:inline-block;min-width:4.5rem;font-weight:700}h2{margin-top:2rem}"
         "section{border-top:1px solid #e2e8f0;padding:.6rem 0}")


def _schema_name(op: dict[str, Any]) -> str | None:
    content = (op.get("requestBody") or {}).get("content") or {}
    for kind, body in content.items():
        ref = (body.get("schema") or {}).get("$ref", "")
        return f"{kind}: {ref.rsplit('/', 1)[-1] or 'see the schema'}"
    return None


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    parts = [f'<section><div><span class="m">{method.upper()}</span><code>{html.escape(path)}</code></div>']
    if op.get("description") or op.get("summary"):
        parts.append(f"<p>{html.escape(op.get('description') or op.get('summary', ''))}</p>")
    params = [f"<code>{html.escape(p['name'])}</code> ({p.get('in')})" for p in op.get("parameters") or ()]
    if params:
        parts.append(f"<p>Parameters: {', '.join(params)}</p>")
    body = _schema_name(op)
    if body:
        parts.append(f"<p>Body: <code>{html.escape(body)}</code></p>")
    return "".join(parts) + "</section>"


def _schemas(schema: dict[str, Any]) -> str:
    out = []
    for name, s in sorted(((schema.get("components") or {}).get("schemas") or {}).items()):
        if name.startswith(("HTTPValidationError", "ValidationError")):
            continue
        props = ", ".join(f"<code>{html.escape(p)}</code>{'*' if p in (s.get('required') or ()) else ''}"
                          for p in (s.get("properties") or {}))
        out.append(f"<section><b>{html.escape(name)}</b>: {props or html.escape(json.dumps(s)[:200])}</section>")
    return "".join(out)


def docs_page(schema: dict[str, Any], base: str) -> str:
    info = schema.get("info") or {}
    ops = "".join(_operation(path, method, op) for path, item in (schema.get("paths") or {}).items()
                  for method, op in item.items() if isinstance(op, dict))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(info.get('title', 'API'))} API"
            f"</title><style>{STYLE}</style></head><body><h1>citeqa HTTP APIs</h1>"
            f"<p>{html.escape(info.get('description', ''))}</p><p>Errors are OpenAI error objects: "
            "<code>{\"error\": {\"message\", \"type\", \"param\", \"code\"}}</code>. The machine-readable schema: "
            f"<a href='{html.escape(base)}openapi.json'>openapi.json</a>.</p>"
            f"<h2>From Python</h2><pre>{html.escape(USAGE.format(base=base))}</pre>"
            f"<h2>Routes</h2>{ops}<h2>Bodies</h2><p>* = required</p>{_schemas(schema)}</body></html>")
