"""The dashboard in real headless Chromium (Debian's `chromium`, driven by Playwright).

One uvicorn server on a free loopback port serves a fresh SQLite database seeded with two architectures
whose proxy runs finished (through the real queue) and one still waiting for its runs; it requires an API
token for writes, which the pages send from their token field. Every page must load with no console
error and no request leaving 127.0.0.1; screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr

from app.api import create_app
from app.db import make_engine
from app.settings import Settings
from tests.app.api_helpers import finish_runs, spec_dict
from tests.app.live_server import live_server
from tests.db_fixtures import require_service

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TIMEOUT_MS = 30_000
TOKEN = "dashboard-test-token"

try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Route, sync_playwright
except ImportError:  # pragma: no cover - playwright is a dev dependency
    sync_playwright = None  # type: ignore[assignment]


@dataclass
class Site:
    url: str
    ids: dict[str, int]  # architecture name → id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The real app under uvicorn in a thread, seeded through its own API and queue."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'dashboard.db'}"
    app = create_app(Settings(_env_file=None, database_url=db_url, api_token=SecretStr(TOKEN)))
    with live_server(app) as url:
        yield _seed(url, db_url)


def _seed(url: str, db_url: str) -> Site:
    engine = make_engine(db_url)
    ids = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        # Two fitted designs with different laws (swiglu's is lower), then one whose runs are only queued.
        for name, overrides, law in [
            ("gelu-base", {}, {"a": 60.0}),
            ("swiglu-rope", {"activation": "swiglu", "positions": "rope"}, {"a": 52.0}),
            ("waiting-relu2", {"activation": "relu2"}, None),
        ]:
            arch = api.post("/v1/architectures", json=spec_dict(name, **overrides)).json()
            ids[name] = arch["id"]
            sweep = api.post(f"/v1/architectures/{arch['id']}/sweeps", json={"seeds": [0, 1]})
            assert sweep.status_code == 202, sweep.text
            if law is not None:
                finish_runs(engine, arch["id"], **law)
    engine.dispose()
    return Site(url=url, ids=ids)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None or sync_playwright is None:
        require_service("browser tests need Debian's chromium (apt-get install chromium) and playwright")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@dataclass
class Watched:
    page: Page
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)


@pytest.fixture
def watched(browser: Browser, site: Site) -> Iterator[Watched]:
    """A fresh page that records console errors and aborts (and records) any request off loopback."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(f"{message.text} ({message.location.get('url')})")

    def on_request(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            watched.outside.append(url)
            route.abort()

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
    context.route("**/*", on_request)
    yield watched
    context.close()
    assert watched.outside == [], f"requests left localhost: {watched.outside}"
    assert watched.errors == [], f"console errors: {watched.errors}"


def _open(watched: Watched, site: Site, path: str) -> Page:
    page = watched.page
    response = page.goto(site.url + path)
    assert response is not None and response.ok, path
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator(".notice.error").count() == 0, page.locator(".notice.error").all_inner_texts()
    return page


def _screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def test_home_ranks_every_architecture(watched: Watched, site: Site) -> None:
    page = _open(watched, site, "/")
    rows = page.locator("#architectures tbody tr")
    assert rows.count() >= 3  # other tests of this module may have submitted more
    ranked = [rows.nth(i).get_attribute("data-architecture-id") for i in range(3)]
    assert ranked == [str(site.ids[n]) for n in ("swiglu-rope", "gelu-base", "waiting-relu2")]
    assert "10 done · 0 running · 0 queued" in rows.nth(0).inner_text()
    assert "0 of 4 proxy widths finished" in rows.nth(2).inner_text()
    at_1b = rows.nth(0).locator("td.num").nth(1).inner_text()
    page.fill("#target-n", "10B")
    page.click("#target-form button[type=submit]")
    page.wait_for_selector('#architectures tbody[data-n="10000000000"]')
    assert "n=10000000000" in page.url
    assert float(rows.nth(0).locator("td.num").nth(1).inner_text()) < float(at_1b)  # loss falls with N
    _screenshot(page, "home")


def test_compare_plot_holds_the_expected_traces(watched: Watched, site: Site) -> None:
    gelu, swiglu = site.ids["gelu-base"], site.ids["swiglu-rope"]
    page = _open(watched, site, f"/compare?ids={gelu},{swiglu}&n=1e9")
    names = page.evaluate("document.getElementById('compare-plot').data.map(t => t.name)")
    expected = [
        f"{name} · {kind}"
        for name in ("gelu-base", "swiglu-rope")
        for kind in ("90% band", "fit", "proxies", "at N")
    ]
    assert names == expected
    plot = page.evaluate(
        """() => { const p = document.getElementById('compare-plot');
                   return { xaxis: p.layout.xaxis.type,
                            proxies: p.data.filter(t => t.name.endsWith('proxies')).map(t => t.x.length),
                            spread: p.data[2].error_y.array.some(v => v > 0),
                            target: p.data.filter(t => t.name.endsWith('at N')).map(t => t.x[0]),
                            bandEnd: Math.max(...p.data[0].x) }; }"""
    )
    assert plot["xaxis"] == "log"
    assert plot["proxies"] == [5, 5] and plot["spread"]  # five widths, two seeds each
    assert plot["target"] == [1e9, 1e9] and plot["bandEnd"] == pytest.approx(1e9)
    ranking = page.locator("#ranking tbody tr")
    assert ranking.count() == 2
    assert ranking.nth(0).get_attribute("data-architecture-id") == str(swiglu)
    shares = [float(ranking.nth(i).locator("td").nth(4).inner_text().rstrip("%")) for i in range(2)]
    assert sum(shares) == pytest.approx(100, abs=1)
    _screenshot(page, "compare")


def test_compare_without_ids_offers_a_picker(watched: Watched, site: Site) -> None:
    page = _open(watched, site, "/compare")
    assert page.locator("#picker input[type=checkbox]").count() >= 3
    assert "Pick the architectures" in page.locator("#messages").inner_text()
    page.check(f"#picker input[value='{site.ids['gelu-base']}']")
    page.check(f"#picker input[value='{site.ids['swiglu-rope']}']")
    page.fill("#target-n", "3e9")
    page.click("#compare-form button[type=submit]")
    page.wait_for_url(f"**/compare?ids={site.ids['gelu-base']},{site.ids['swiglu-rope']}&n=3000000000")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#ranking tbody tr").count() == 2


def test_architecture_page_shows_runs_curves_and_fit(watched: Watched, site: Site) -> None:
    page = _open(watched, site, f"/architectures/{site.ids['gelu-base']}")
    assert page.locator("#runs tbody tr").count() == 10
    assert page.locator("#runs .badge.succeeded").count() == 10
    assert page.evaluate("document.getElementById('loss-plot').data.length") == 10
    assert page.evaluate("document.getElementById('residual-plot').data[0].x.length") == 10
    assert page.locator("#fit-report").inner_text().strip()
    assert '"name": "gelu-base"' in page.locator("#spec").inner_text()
    assert page.locator("#sweep-submit").inner_text() == "Extend sweep"
    _screenshot(page, "architecture")


def test_waiting_architecture_says_why_and_extends_its_sweep(watched: Watched, site: Site) -> None:
    page = _open(watched, site, f"/architectures/{site.ids['waiting-relu2']}")
    assert "Not fitted yet: 0 of 4 proxy widths finished" in page.locator("#fit-status").inner_text()
    assert page.locator("#runs .badge.queued").count() == 10
    page.fill("#sweep-widths", "32, 64")
    page.fill("#sweep-seeds", "7")
    page.click("#sweep-submit")  # no token yet: the server refuses, the page says what to do
    page.wait_for_selector("#sweep-status .notice.error")
    assert "API token" in page.locator("#sweep-status").inner_text()
    watched.errors[:] = [e for e in watched.errors if "status of 401" not in e]
    page.fill("#api-token", TOKEN)
    page.click("#sweep-submit")
    page.wait_for_selector("#sweep-status .notice.ok")
    assert "2 run(s)" in page.locator("#sweep-status").inner_text()
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 12")
    _screenshot(page, "architecture-waiting")


def test_unknown_architecture_is_a_404_page(watched: Watched, site: Site) -> None:
    response = watched.page.goto(f"{site.url}/architectures/999999")
    assert response is not None and response.status == 404
    assert "No architecture with id 999999." in watched.page.locator("#not-found").inner_text()
    watched.errors[:] = [e for e in watched.errors if "status of 404" not in e]  # the page's own status


def test_submit_shows_errors_inline_then_creates_and_launches(watched: Watched, site: Site) -> None:
    page = _open(watched, site, "/submit")
    page.wait_for_selector("#proxy-sizes tbody tr")
    page.fill("#spec-json", '{"name": "broken", "n_layers": 0, "head_dim": 16, "proxy_widths": [32, 40]}')
    page.click("#validate")
    page.wait_for_selector("#spec-errors li")
    assert "n_layers: Input should be greater than or equal to 1" in page.locator("#spec-errors").inner_text()
    # Validated as it is typed, with no button press.
    page.fill("#spec-json", '{"name": "broken", "head_dim": 16, "proxy_widths": [32, 40]}')
    page.wait_for_function("document.querySelector('#spec-errors').textContent.includes('head size 16')")
    page.fill("#spec-json", '{"name": "broken",')
    page.wait_for_function("document.querySelector('#spec-errors').textContent.includes('line 1')")
    _screenshot(page, "submit-errors")
    # The API answered 422 as designed; Chromium logs any 4xx fetch as a console error.
    watched.errors[:] = [e for e in watched.errors if "status of 422" not in e]

    page.fill("#api-token", TOKEN)  # kept in localStorage for the architecture page it opens next
    spec = '{"name": "from-the-form", "n_layers": 3, "head_dim": 16, "proxy_widths": [32, 48, 64, 96]}'
    page.fill("#spec-json", spec)
    page.click("#create")
    page.wait_for_url("**/architectures/*")
    page.wait_for_selector("body[data-ready=true]")
    created = httpx.get(f"{site.url}/v1/architectures", params={"name": "from-the-form"}).json()["items"]
    assert len(created) == 1 and created[0]["spec"]["n_layers"] == 3
    assert created[0]["runs"]["queued"] == 4
    assert page.url.endswith(f"/architectures/{created[0]['id']}")
    assert page.locator("#runs tbody tr").count() == 4
    _screenshot(page, "submitted")
