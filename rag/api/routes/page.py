"""The web page at ``/``: static files shipped inside the package, under a strict CSP.

The page (rag/api/static/) is plain HTML, CSS and JavaScript: no build step, nothing fetched
from anywhere but this server.  Its Content-Security-Policy allows only its own scripts and
styles (no inline code, no other origin); it calls the API on the same origin.  The page and
its files need no API key (they hold no data); the API calls they make do.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from rag.api.paths import PathNotFoundError

STATIC = Path(__file__).resolve().parents[1] / "static"
# name -> media type: the only files served (no path from the URL ever reaches the disk)
FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
PAGE_ROUTES = ["/", "/static/{name}"]  # for the metrics' route label (not in the schema)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                        headers=HEADERS)  # fmt: skip


@router.get("/static/{name}")
async def static(name: str) -> FileResponse:
    media = FILES.get(name)
    if media is None:
        raise PathNotFoundError(f"no static file {name[:100]!r}", "the page is at /")
    return FileResponse(STATIC / name, media_type=media, headers=HEADERS)
