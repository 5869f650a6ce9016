"""Two guards in front of the Gradio app, as one ASGI middleware (`launch(app_kwargs={"middleware": ...})`).

**Host check** (DNS rebinding). A page on ``evil.example`` whose name the attacker later points at 127.0.0.1 can
make the victim's browser send requests to the local server, with ``Host: evil.example``, and read the answers:
the server is then anyone's. A request is answered only when its Host header names the server: a loopback
name or address, the address it binds, any IP address when it binds all of them (``0.0.0.0``: an address
typed as such cannot be re-pointed), or a name the operator allows (``--allowed-host`` / CITEQA_ALLOWED_HOSTS;
``*.example.org`` for a domain, ``*`` for any). Anything else gets 400 and one line saying how to allow it.

**Login throttle** (``--auth``). After ``max_failures`` failed logins from one client address within
``window`` seconds, further logins from it are refused with 429 for ``lockout`` seconds, the right password
included, so a password cannot be guessed at the speed of the network.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("localhost",)
MAX_FAILURES = 5  # failed logins from one address ...
FAILURE_WINDOW_S = 60.0  # ... within this many seconds ...
LOCKOUT_S = 120.0  # ... refuse its logins for this long
_MAX_TRACKED = 10_000  # client addresses remembered at most (the oldest are forgotten first)


def split_host(header: str) -> str | None:
    """The host part of a Host header value, lower-cased, without port, brackets or a trailing dot (None when
    it is not a well-formed host)."""
    h = header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        if end < 0 or (h[end + 1 :] and not h[end + 1 :].startswith(":")):
            return None
        return h[1:end] or None
    if h.count(":") > 1:
        return None
    h = h.partition(":")[0].rstrip(".")
    return h or None


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class HostPolicy:
    """Which Host headers a server bound to ``bind`` answers."""

    def __init__(self, bind: str, extra: Iterable[str] = ()) -> None:
        bound = split_host(bind) or bind.strip("[]").lower()
        bound_ip = _ip(bound)
        self.any_ip = bound_ip is not None and bound_ip.is_unspecified  # 0.0.0.0 / ::
        self.names = {*LOOPBACK_NAMES, bound}
        self.suffixes: list[str] = []
        self.anything = False
        for raw in extra:
            h = raw.strip().lower()
            if h == "*":
                self.anything = True
            elif h.startswith("*."):
                self.suffixes.append(h[1:])  # ".example.org"
            elif h:
                self.names.add(split_host(h) or h)

    def allows(self, header: str | None) -> bool:
        if self.anything:
            return True
        host = split_host(header or "")
        if host is None:
            return False
        if host in self.names or host.endswith(".localhost") or any(host.endswith(s) for s in self.suffixes):
            return True
        ip = _ip(host)
        return ip is not None and (ip.is_loopback or self.any_ip)


class LoginThrottle:
    """Failed logins per client address; ``clock`` is injectable so the tests need not wait."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = FAILURE_WINDOW_S,
                 lockout: float = LOCKOUT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}

    def wait(self, client: str) -> float:
        """Seconds until ``client`` may try again (0 when it may now)."""
        until = self._locked.get(client)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._locked[client]
            return 0.0
        return left

    def failed(self, client: str) -> None:
        now = self.clock()
        times = self._failures.setdefault(client, deque())
        times.append(now)
        while times and times[0] < now - self.window:
            times.popleft()
        if len(times) >= self.max_failures:
            self._locked[client] = now + self.lockout
            times.clear()
        if len(self._failures) > _MAX_TRACKED:
            for key in list(self._failures)[: len(self._failures) - _MAX_TRACKED]:
                del self._failures[key]

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _plain(send: Send, status: int, text: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = (text + "\n").encode("utf-8")
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class ServerGuard:
    """The ASGI middleware: the host check for every request, the throttle for ``POST /login``."""

    def __init__(self, app: ASGIApp, *, hosts: HostPolicy, throttle: LoginThrottle | None = None) -> None:
        self.app = app
        self.hosts = hosts
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if not self.hosts.allows(host):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            shown = (host or "").strip()[:100] or "(none)"
            await _plain(send, 400, f"citeqa: this server does not answer to Host '{shown}': if that is its name, "
                         f"start it with --allowed-host {split_host(shown) or 'NAME'} (or CITEQA_ALLOWED_HOSTS)")
            return
        path = str(scope.get("path", ""))
        if self.throttle is None or scope["type"] != "http" or scope.get("method") != "POST" \
                or not path.rstrip("/").endswith("/login"):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        left = self.throttle.wait(client)
        if left > 0:
            await _plain(send, 429, f"citeqa: too many failed logins from {client}: try again in {left:.0f} s",
                         [(b"retry-after", str(int(left) + 1).encode())])
            return
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, receive, watch)
        if status and status[0] == 200:
            self.throttle.succeeded(client)
        elif status and 400 <= status[0] < 500:
            self.throttle.failed(client)
