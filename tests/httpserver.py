"""A real HTTP server on loopback for tests: register routes, point the code at `server.url(...)`, read back requests.

    from tests.httpserver import HTTPTestServer, Response, http_server_fixture  # noqa: F401  (the fixture)

    def test_something(http_server: HTTPTestServer) -> None:
        http_server.route("/feed.rss", b"<rss>...</rss>", headers={"Content-Type": "application/rss+xml"})
        http_server.route("/boom", status=500)
        http_server.route("/dynamic", handler=lambda request: Response(200, b"hi " + request.path.encode()))
        http_server.feed("/cond.rss", body, etag='"v1"')          # answers 304 to a matching If-None-Match
        http_server.hang("/slow")                                  # answers nothing for 30 s
        http_server.stream("/huge", 60 * 1024 * 1024)               # 60 MB made on the fly, chunked
        http_server.redirect("/old", "/feed.rss")
        ... code under test GETs http_server.url("/feed.rss") ...
        assert http_server.requests[0].headers.get("User-Agent") == "..."
        assert http_server.paths() == ["/feed.rss"]

Routes match the request path with its query string first ("/api?date=2026-11-30"), then without it ("/api").
Unknown paths answer 404. Every request is recorded (also those that hang or 404) in `server.requests`, in arrival
order, as `Request(method, path, headers, body)`; `headers` is case-insensitive. A handler that raises answers 500
and the exception is kept in `server.errors`. The server speaks HTTP/1.1 (keep-alive; chunked bodies when no
Content-Length is given) and is bound to 127.0.0.1 on a port the OS picks.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Body = bytes | str | Iterable[bytes]
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(frozen=True)
class Request:
    """One request as the server got it."""

    method: str
    path: str  # as sent, with the query string: "/api/daily_papers?date=2026-11-30"
    headers: Message  # case-insensitive: request.headers.get("If-None-Match") -> str | None
    body: bytes = b""

    @property
    def route(self) -> str:
        """The path without its query string."""
        return self.path.partition("?")[0]


@dataclass
class Response:
    """What a route answers.

    `body` is bytes (sent with a Content-Length) or an iterable of bytes chunks (sent chunked unless `headers` has a
    Content-Length, then written as-is). An iterable is consumed by one request, so build it inside a handler.
    `delay` waits before answering anything; `chunk_delay` waits before each body chunk. Both end early when the
    server shuts down.
    """

    status: int = 200
    body: Body = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0


Handler = Callable[[Request], Response]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: HTTPTestServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (timeouts, size caps) is expected here; anything else is recorded.
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | TimeoutError):
            self.owner.errors.append(exc if isinstance(exc, BaseException) else RuntimeError("unknown error"))


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _QuietServer
    timeout = 15  # an idle or stalled connection is dropped after this long

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        owner = self.server.owner
        length = self.headers.get("Content-Length", "")
        body = self.rfile.read(int(length)) if length.isdigit() else b""
        request = Request(self.command, self.path, self.headers, body)
        owner._record(request)
        try:
            response = owner._answer(request)
        except Exception as exc:
            owner.errors.append(exc)
            response = Response(500, f"handler failed: {exc!r}".encode())
        try:
            self._send(response)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _send(self, response: Response) -> None:
        stopping = self.server.owner._stopping
        if response.delay and stopping.wait(response.delay):
            self.close_connection = True
            return
        self.send_response(response.status)
        headers = {name.lower(): (name, value) for name, value in response.headers.items()}
        for name, value in headers.values():
            self.send_header(name, value)
        body = response.body.encode() if isinstance(response.body, str) else response.body
        no_body = self.command == "HEAD" or response.status in _NO_BODY_STATUSES or 100 <= response.status < 200
        if isinstance(body, bytes | bytearray):
            self._send_whole(response, bytes(body), "content-length" in headers, no_body)
        else:
            self._send_chunks(response, body, "content-length" not in headers and not no_body, no_body)

    def _send_whole(self, response: Response, body: bytes, has_length: bool, no_body: bool) -> None:
        if not has_length and response.status not in _NO_BODY_STATUSES:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not no_body:
            self.wfile.write(body)

    def _send_chunks(self, response: Response, body: Iterable[bytes], chunked: bool, no_body: bool) -> None:
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if no_body:
            return
        stopping = self.server.owner._stopping
        for chunk in body:
            if response.chunk_delay and stopping.wait(response.chunk_delay):
                self.close_connection = True
                return
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class HTTPTestServer:
    """A threaded HTTP server on 127.0.0.1 with routes registered by the test. See the module docstring."""

    def __init__(self) -> None:
        self._routes: dict[str, Handler] = {}
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.errors: list[BaseException] = []
        self._httpd = _QuietServer(("127.0.0.1", 0), _RequestHandler)
        self._httpd.owner = self
        self.host = "127.0.0.1"
        self.port = int(self._httpd.server_address[1])
        self.base_url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http-server", daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> HTTPTestServer:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; requests still sleeping in `delay`/`hang` are cut short."""
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HTTPTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- routes ----------------------------------------------------------------------------------------------------

    def url(self, path: str = "/") -> str:
        """The absolute URL of a path on this server: url("/feed") -> "http://127.0.0.1:PORT/feed"."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def route(
        self,
        path: str,
        body: Body = b"",
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        handler: Handler | None = None,
    ) -> None:
        """Answer `path` with a fixed response, or with whatever `handler(request)` returns. Replaces any route."""
        if handler is None:
            if not isinstance(body, bytes | str):
                raise TypeError("a fixed route needs bytes or str; use handler= for a body made per request")
            fixed = Response(status, body, dict(headers or {}), delay)
            handler = lambda _request: fixed  # noqa: E731
        with self._lock:
            self._routes[path] = handler

    def responses(self, path: str, *responses: Response) -> None:
        """Answer `path` with these responses in turn; the last one repeats."""
        if not responses:
            raise ValueError("give at least one response")
        queue = list(responses)

        def handler(_request: Request) -> Response:
            with self._lock:
                return queue.pop(0) if len(queue) > 1 else queue[0]

        self.route(path, handler=handler)

    def feed(
        self,
        path: str,
        body: bytes | str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        content_type: str | None = None,
    ) -> None:
        """Serve a document with validators, answering 304 to a matching conditional GET.

        As RFC 9110 says: If-None-Match is checked against `etag` when sent (weak comparison, `*` matches);
        otherwise If-Modified-Since is compared with `last_modified` as dates.
        """
        payload = body.encode() if isinstance(body, str) else body
        validators = {"ETag": etag, "Last-Modified": last_modified}
        headers = {name: value for name, value in validators.items() if value is not None}
        if content_type:
            headers["Content-Type"] = content_type

        def handler(request: Request) -> Response:
            if _not_modified(request, etag, last_modified):
                return Response(304, b"", {k: v for k, v in headers.items() if k != "Content-Type"})
            return Response(200, payload, dict(headers))

        self.route(path, handler=handler)

    def hang(self, path: str, seconds: float = 30.0) -> None:
        """Accept the request and answer nothing for `seconds` (then a 200 with an empty body)."""
        self.route(path, delay=seconds)

    def stream(
        self,
        path: str,
        size: int,
        *,
        chunk_size: int = 64 * 1024,
        content_length: bool = False,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer with `size` bytes generated chunk by chunk (never held in memory), chunked unless `content_length`."""
        block = b"x" * chunk_size

        def chunks() -> Iterator[bytes]:
            left = size
            while left > 0:
                piece = block if left >= chunk_size else block[:left]
                left -= len(piece)
                yield piece

        extra = dict(headers or {})
        if content_length:
            extra["Content-Length"] = str(size)
        self.route(path, handler=lambda _request: Response(status, chunks(), dict(extra)))

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Answer with a redirect to `location` (a path on this server or an absolute URL)."""
        self.route(path, status=status, headers={"Location": location})

    def clear(self) -> None:
        """Forget every route and every recorded request."""
        with self._lock:
            self._routes.clear()
            self._requests.clear()

    # -- what happened -----------------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def paths(self) -> list[str]:
        """The path (with query string) of every request so far."""
        return [request.path for request in self.requests]

    def requests_to(self, path: str) -> list[Request]:
        """The requests for `path`: matched with the query string if `path` has one, else without it."""
        return [r for r in self.requests if (r.path if "?" in path else r.route) == path]

    # -- internals ---------------------------------------------------------------------------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _answer(self, request: Request) -> Response:
        with self._lock:
            handler = self._routes.get(request.path) or self._routes.get(request.route)
        if handler is None:
            return Response(404, f"no route for {request.path}".encode(), {"Content-Type": "text/plain"})
        return handler(request)


def _not_modified(request: Request, etag: str | None, last_modified: str | None) -> bool:
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        if etag is None:
            return False
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or etag.removeprefix("W/") in tags
    if_modified_since = request.headers.get("If-Modified-Since")
    if if_modified_since is None or last_modified is None:
        return False
    try:
        return parsedate_to_datetime(last_modified) <= parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False


@pytest.fixture(name="http_server")
def http_server_fixture() -> Iterator[HTTPTestServer]:
    """The `http_server` fixture: a started loopback HTTP server, shut down after the test."""
    server = HTTPTestServer().start()
    try:
        yield server
    finally:
        server.close()


# Import either name into a test module to get the `http_server` fixture. Importing `http_server_fixture` keeps ruff
# from reporting F811 on every test parameter named `http_server`.
http_server = http_server_fixture
