"""The browser dashboard: HTML pages whose JavaScript reads the same /v1 endpoints as the notebook client.

The server renders only the page skeletons (and a 404 for an unknown architecture); every number on a
page comes from the public API, so what a researcher sees is what a notebook gets. Plotly.js is served
from the plotly wheel and everything else from app/static: no request leaves the server.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app.deps import SessionDep, SettingsDep
from app.models import Architecture
from app.schemas import MAX_ID

router = APIRouter(tags=["dashboard"], include_in_schema=False)

APP_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = APP_DIR / "static"
TEMPLATES = Jinja2Templates(directory=APP_DIR / "templates")
EXAMPLE_SPECS_DIR = APP_DIR.parent / "examples" / "specs"

# Shown in the submit form when no example spec files ship next to the package (an installed wheel).
FALLBACK_EXAMPLE = {
    "name": "swiglu-rope",
    "n_layers": 2,
    "head_dim": 16,
    "activation": "swiglu",
    "norm": "rmsnorm",
    "positions": "rope",
    "context_length": 128,
    "training": {"lr": 0.01, "steps": 300, "batch_tokens": 2048},
    "proxy_widths": [32, 48, 64, 96, 128],
}
DEFAULT_TARGET_N = 1e9
# A year: the URL carries a version, so a new plotly (or a new file of ours) is a new URL.
LONG_CACHE = "public, max-age=31536000, immutable"


def static_files() -> StaticFiles:
    """The dashboard's own JS and CSS, mounted at /static by the app factory."""
    return StaticFiles(directory=STATIC_DIR)


def plotly_js_path() -> Path:
    """plotly.min.js from the installed plotly wheel (the same file plotly's offline mode embeds)."""
    path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall the `plotly` package (pip install plotly)")
    return path


@cache
def asset_version() -> str:
    """A short hash of our static files and plotly.js, appended to asset URLs to bust browser caches."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(str(plotly_js_path().stat().st_size).encode())
    return digest.hexdigest()[:12]


def example_specs() -> dict[str, str]:
    """Example specs for the submit form, by file stem: examples/specs/*.json when it ships, else one."""
    examples = {}
    if EXAMPLE_SPECS_DIR.is_dir():
        for path in sorted(EXAMPLE_SPECS_DIR.glob("*.json")):
            try:
                examples[path.stem] = json.dumps(json.loads(path.read_text()), indent=2)
            except (OSError, ValueError):
                continue  # a broken example must not break the page; the API tests cover the files
    return examples or {"swiglu-rope": json.dumps(FALLBACK_EXAMPLE, indent=2)}


def _page(
    request: Request,
    template: str,
    settings: SettingsDep,
    status_code: int = status.HTTP_200_OK,
    **context: Any,
) -> HTMLResponse:
    context.update(
        page=template.removesuffix(".html"),
        version=asset_version(),
        min_widths=settings.min_runs_for_fit,
        token_required=settings.api_token is not None,
    )
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, settings: SettingsDep) -> HTMLResponse:
    """Every architecture, its runs, and its predicted loss at a target N, ranked."""
    return _page(request, "home.html", settings, default_n=DEFAULT_TARGET_N)


@router.get("/compare", response_class=HTMLResponse)
def compare(request: Request, settings: SettingsDep) -> HTMLResponse:
    """Scaling curves of the selected architectures (`?ids=1,2&n=1e9`) and their ranked table."""
    return _page(request, "compare.html", settings, default_n=DEFAULT_TARGET_N)


@router.get("/architectures/{architecture_id}", response_class=HTMLResponse)
def architecture(
    architecture_id: str, request: Request, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """One architecture: spec, runs with live progress, loss curves, fit report, sweep launcher."""
    # ASCII digits only: str.isdigit() is true for '²' (int() fails) and '٣' (int() reads 3); and few
    # of them, as int() refuses more than 4,300 digits.
    plain = architecture_id.isascii() and architecture_id.isdigit() and len(architecture_id) <= 10
    ident = int(architecture_id) if plain else 0
    arch = session.get(Architecture, ident) if 1 <= ident <= MAX_ID else None
    if arch is None:
        return _page(
            request,
            "not_found.html",
            settings,
            status_code=status.HTTP_404_NOT_FOUND,
            message=f"No architecture with id {architecture_id}.",
        )
    return _page(request, "architecture.html", settings, arch=arch, default_n=DEFAULT_TARGET_N)


@router.get("/submit", response_class=HTMLResponse)
def submit(request: Request, settings: SettingsDep) -> HTMLResponse:
    """Paste or edit a spec, validate it, create it and launch its sweep."""
    examples = example_specs()
    return _page(request, "submit.html", settings, examples=examples, example=next(iter(examples.values())))


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    """Plotly.js from the plotly wheel, so the dashboard works with no internet."""
    return FileResponse(plotly_js_path(), media_type="text/javascript", headers={"Cache-Control": LONG_CACHE})
