"""The dashboard through the ASGI app: every page renders its skeleton, every asset is local and served."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.api import create_app
from app.routes.dashboard import APP_DIR, STATIC_DIR, plotly_js_path
from app.settings import Settings
from tests.app.api_helpers import spec_dict

TEMPLATE_DIR = APP_DIR / "templates"


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'dash.db'}", **overrides)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path))) as client:
        yield client


PAGES = {
    "/": ['id="architectures"', 'id="target-n"', 'id="compare-selected"', "/static/home.js"],
    "/compare?ids=1,2&n=1e9": [
        'id="compare-plot"',
        'id="ranking"',
        "/static/plotly.min.js",
        "/static/compare.js",
    ],
    "/submit": ['id="spec-json"', 'id="spec-errors"', 'id="create"', "/static/submit.js"],
}


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_its_skeleton(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    for needle in [*PAGES[path], "/static/dashboard.js", "/static/dashboard.css", 'id="api-token"']:
        assert needle in html, needle
    assert 'data-min-widths="4"' in html and 'data-token-required="false"' in html


def test_architecture_page_and_unknown_ids(client: TestClient) -> None:
    arch = client.post("/v1/architectures", json=spec_dict("page-arch")).json()
    page = client.get(f"/architectures/{arch['id']}")
    assert page.status_code == 200
    for needle in [
        "page-arch",
        f'data-architecture-id="{arch["id"]}"',
        'id="runs"',
        'id="sweep-form"',
        'id="fit-report"',
        'id="loss-plot"',
        'id="residual-plot"',
        "/static/architecture.js",
    ]:
        assert needle in page.text, needle
    for unknown in ["999", "abc", "0", "99999999999", "-1"]:
        missing = client.get(f"/architectures/{unknown}")
        assert missing.status_code == 404, unknown
        assert missing.headers["content-type"].startswith("text/html")
        assert 'id="not-found"' in missing.text and f"No architecture with id {unknown}." in missing.text


def test_plotly_is_served_from_the_wheel_with_long_caching(client: TestClient) -> None:
    response = client.get("/static/plotly.min.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert "immutable" in response.headers["cache-control"]
    assert response.content == plotly_js_path().read_bytes()


def test_every_asset_is_local_and_served(client: TestClient) -> None:
    arch = client.post("/v1/architectures", json=spec_dict("assets")).json()
    for path in [*PAGES, f"/architectures/{arch['id']}"]:
        urls = re.findall(r'(?:src|href)="([^"]+)"', client.get(path).text)
        for url in urls:
            assert url.startswith(("/", "data:", "?")) and not url.startswith("//"), (path, url)
            if url.startswith("/static/"):
                assert client.get(url).status_code == 200, url
    # No CDN, font service or other host named anywhere in what the browser runs.
    for source in [*STATIC_DIR.iterdir(), *TEMPLATE_DIR.glob("*.html")]:
        assert not re.search(r"https?://", source.read_text()), source


def test_submit_page_examples_are_valid_specs(client: TestClient) -> None:
    html = client.get("/submit").text
    embedded = re.search(r'<script id="examples" type="application/json">(.*?)</script>', html, re.S)
    assert embedded is not None
    examples = json.loads(embedded.group(1))
    assert examples
    for name, text in examples.items():
        assert client.post("/v1/architectures/validate", json=json.loads(text)).status_code == 200, name


def test_pages_say_when_a_token_is_required(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, api_token=SecretStr("s3cret")))) as client:
        html = client.get("/").text
    assert 'data-token-required="true"' in html and "required to write" in html
