"""The agent app (clients/agent-ui, built by Vite into its dist/) served at `/`.

The app's own paths (`/`, `/calls/ID`, `/orders/N`, ...) all return its
index.html and the app routes in the browser; hashed build assets under
`/assets/` are cached for good, index.html never. Files are read per request,
so a rebuild shows up without restarting the gateway; when the app has not
been built, `/` says how to build it (HTTP 503) instead of a bare 404.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from callpilot.gateway.keys import SETTINGS

# Paths the agent app routes itself (see clients/agent-ui/src/router.ts).
APP_ROUTES = (
    "/",
    "/calls",
    "/calls/{id}",
    "/floor",
    "/insights",
    "/orders/{id}",
    "/policies/{id}",
    "/articles/{id}",
    "/customers/{id}",
    "/tickets/{id}",
)
ROOT_FILE_PATTERN = r"/{name:[A-Za-z0-9_.\-]+\.(?:svg|ico|png|txt|webmanifest)}"

# The built app loads only its own scripts, styles and the grpc-web API.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
INDEX_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ASSET_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
}

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Callpilot: agent app not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>The agent app is not built</h1>
<p>The gateway serves the agent app from <code>{static_dir}</code>, which has no
<code>index.html</code>. Build it with <code>make run</code> (which builds everything), or with
<code>npm ci &amp;&amp; npm run build</code> at the repository root, or point
<code>CALLPILOT_STATIC_DIR</code> at a built copy.</p>
<p>grpc-web (<code>POST /callpilot.v1.*/*</code>) works without it.</p>
</body></html>
"""


def setup(app: web.Application) -> None:
    """Register the agent app's routes (last: after the APIs' routes)."""
    for path in APP_ROUTES:
        app.router.add_get(path, _index)
    app.router.add_get("/assets/{path:.+}", _asset)
    app.router.add_get(ROOT_FILE_PATTERN, _root_file)


def _static_dir(request: web.Request) -> Path:
    return request.app[SETTINGS].static_dir


def _inside(base: Path, relative: str) -> Path | None:
    """`base/relative` if it is a file inside `base` (no `..` escapes), else None."""
    root = base.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


async def _index(request: web.Request) -> web.StreamResponse:
    static_dir = _static_dir(request)
    index = static_dir / "index.html"
    if not index.is_file():
        return web.Response(
            status=503,
            text=NOT_BUILT.format(static_dir=static_dir),
            content_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )
    return web.FileResponse(index, headers=INDEX_HEADERS)


async def _asset(request: web.Request) -> web.StreamResponse:
    path = _inside(_static_dir(request) / "assets", request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers=ASSET_HEADERS)


async def _root_file(request: web.Request) -> web.StreamResponse:
    path = _inside(_static_dir(request), request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})
