"""The dashboard in real headless Chromium (Debian's `chromium`, driven by Playwright).

One uvicorn server on a free loopback port serves a fresh SQLite database seeded with two architectures
whose proxy runs finished (through the real queue) and one still waiting for its runs (the LR tests add
architectures whose tunings finish on a known LR basin); it requires an API token for writes, which the
pages send from their token field. Every page must load with no console error and no request leaving
127.0.0.1; screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import csv
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.orm import Session

from app import queue
from app.api import create_app
from app.db import make_engine
from app.models import Run
from app.settings import Settings
from tests.app.api_helpers import finish_runs, grid_loss, lr_basin, spec_dict
from tests.app.live_server import live_server
from tests.app.test_slice_api import total_of
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
    db_url: str  # for completing runs through the real queue, as a worker would


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
    return Site(url=url, ids=ids, db_url=db_url)


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
    posts: list[str] = []
    watched.page.on("request", lambda r: posts.append(urlsplit(r.url).path) if r.method == "POST" else None)
    page = _open(watched, site, "/")
    # Every architecture's prediction in one request, not one request per architecture.
    assert [p for p in posts if p.startswith("/v1/predictions")] == ["/v1/predictions/batch"]
    rows = page.locator("#architectures tbody tr")
    assert rows.count() >= 3  # other tests of this module may have submitted more
    ranked = [rows.nth(i).get_attribute("data-architecture-id") for i in range(3)]
    assert ranked == [str(site.ids[n]) for n in ("swiglu-rope", "gelu-base", "waiting-relu2")]
    assert "10 done · 0 running · 0 queued" in rows.nth(0).inner_text()
    assert "0 of 4 proxy sizes finished" in rows.nth(2).inner_text()
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
    # The ladder's own holdout check, with its verdict (this site's ladders follow the law).
    fit = httpx.get(f"{site.url}/v1/architectures/{site.ids['gelu-base']}/fit").json()
    check = page.locator("#holdout-check").inner_text()
    assert f"{fit['holdout']['predicted']:.4f}" in check and f"{fit['holdout']['measured']:.4f}" in check
    verdict = "inside" if fit["holdout"]["inside"] else "outside"
    assert page.locator("#holdout-check .badge").inner_text() == verdict
    assert '"name": "gelu-base"' in page.locator("#spec").inner_text()
    assert page.locator("#sweep-submit").inner_text() == "Extend sweep"
    _screenshot(page, "architecture")


def test_waiting_architecture_says_why_and_extends_its_sweep(watched: Watched, site: Site) -> None:
    page = _open(watched, site, f"/architectures/{site.ids['waiting-relu2']}")
    assert "Not fitted yet: 0 of 4 proxy sizes finished" in page.locator("#fit-status").inner_text()
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


def test_a_ladder_built_by_upscaling_marks_each_rungs_parent(watched: Watched, site: Site) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    spec = spec_dict("upscaled-ladder", n_layers=1, head_dim=8, parametrization={"base_width": 16})
    arch_id = httpx.post(f"{site.url}/v1/architectures", json=spec, headers=headers).json()["id"]
    page = _open(watched, site, f"/architectures/{arch_id}")
    page.fill("#api-token", TOKEN)
    page.fill("#sweep-widths", "16, 32, 64")
    page.fill("#sweep-seeds", "0")
    page.check("#sweep-upscale")
    page.click("#sweep-submit")
    page.wait_for_selector("#sweep-status .notice.ok")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 3")
    _finish_on_basin(site, arch_id)
    runs = httpx.get(f"{site.url}/v1/runs", params={"architecture_id": arch_id}).json()["items"]
    by_width = {r["width"]: r for r in runs}
    assert [by_width[w]["role"] for w in (16, 32, 64)] == ["run", "upscaled", "upscaled"]
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    for small, large in ((16, 32), (32, 64)):
        mark = page.locator(f"#runs tr[data-run-id='{by_width[large]['id']}'] td").first.locator("div")
        assert mark.inner_text() == f"from {by_width[small]['id']}"
        assert f"upscaled from run {by_width[small]['id']}" in (mark.get_attribute("title") or "")
    assert page.locator(f"#runs tr[data-run-id='{by_width[16]['id']}'] td").first.locator("div").count() == 0
    # The fit card counts the upscaled rungs among the finished widths (3 of the 4 a fit needs).
    assert "3 of 4 proxy sizes finished" in page.locator("#fit-status").inner_text()
    _screenshot(page, "architecture-upscaled-ladder")


def test_a_grid_over_depth_is_launched_from_the_form_and_plotted_against_depth(
    watched: Watched, site: Site
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    spec = spec_dict("depth-grid", proxy_widths=[32, 64])
    arch_id = httpx.post(f"{site.url}/v1/architectures", json=spec, headers=headers).json()["id"]
    page = _open(watched, site, f"/architectures/{arch_id}")
    page.fill("#api-token", TOKEN)
    page.fill("#sweep-widths", "32, 64")
    page.fill("#sweep-depths", "1, 2, 4")
    page.fill("#sweep-seeds", "0, 1")
    page.click("#sweep-submit")
    page.wait_for_selector("#sweep-status .notice.ok")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 12")
    engine = make_engine(site.db_url)
    finish_runs(engine, arch_id)
    engine.dispose()
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#depth-section:not([hidden])")
    traces = page.evaluate(
        "document.getElementById('depth-plot').data.map((t) => [t.name, t.x.length, t.mode])"
    )
    # Per width: its runs at each depth (two seeds each) and the fitted law at each of them.
    assert traces == [
        ["width 32", 6, "markers"],
        ["fit, width 32", 6, "lines"],
        ["width 64", 6, "markers"],
        ["fit, width 64", 6, "lines"],
    ]
    assert "Does shape matter at fixed N?" in page.locator("#shape-test").inner_text()
    assert "1: " in page.locator("#shape-test").inner_text()  # the residual at depth 1
    _screenshot(page, "architecture-depth-grid")


def test_unknown_architecture_is_a_404_page(watched: Watched, site: Site) -> None:
    response = watched.page.goto(f"{site.url}/architectures/999999")
    assert response is not None and response.status == 404
    assert "No architecture with id 999999." in watched.page.locator("#not-found").inner_text()
    watched.errors[:] = [e for e in watched.errors if "status of 404" not in e]  # the page's own status


def test_submit_shows_errors_inline_then_creates_and_launches(watched: Watched, site: Site) -> None:
    page = _open(watched, site, "/submit")
    page.wait_for_selector("#proxy-sizes tbody tr")
    # The ladder's cost: FLOPs per run and, with runs finished on this site's stand-in "cpu", time.
    cost = page.locator("#ladder-cost").inner_text()
    assert "training FLOPs per seed, about " in cost and "finished run(s) on cpu" in cost
    assert ":" in page.locator("#proxy-sizes tbody tr td").nth(4).inner_text()  # m:ss per run
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


LR_STAR = 0.01  # the minimum of the LR basin the tuned architectures' runs are completed with


def _legend(page: Page, plot_id: str) -> list[str]:
    """The names a Plotly figure shows in its legend."""
    names = f"document.getElementById('{plot_id}').data.filter(t => t.showlegend !== false).map(t => t.name)"
    return page.evaluate(names)


def _finish_on_basin(
    site: Site, arch_id: int, diverge_above: float = math.inf, horizon_exponent: float = 0.0
) -> None:
    """Complete the architecture's queued runs with losses whose LR basin bottoms out at LR_STAR (for
    runs of the spec's default 300 steps; at other lengths η* ∝ steps^horizon_exponent); runs at a
    learning rate above `diverge_above` diverge."""
    basin = lr_basin(lambda width: LR_STAR)

    def loss_of(claimed: queue.ClaimedRun, n_params: int) -> float | None:
        if claimed.lr > diverge_above:
            return None
        shift = (claimed.steps / 300) ** horizon_exponent  # the basin's minimum, moved with the horizon
        return basin(replace(claimed, lr=claimed.lr / shift), n_params)

    engine = make_engine(site.db_url)
    try:
        finish_runs(engine, arch_id, loss_of=loss_of)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def tuned(site: Site) -> dict:
    """A μP architecture (base width 32, depth 1) whose LR tuning at widths 32, 128 and 256 succeeded."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=site.url, headers=headers) as api:
        # One layer: a spec of its own (the name is not part of a spec's identity), quick to coord-check.
        spec = spec_dict("tuned-gelu", n_layers=1, parametrization={"base_width": 32})
        arch_id = api.post("/v1/architectures", json=spec).json()["id"]
        created = api.post(f"/v1/architectures/{arch_id}/tuning", json={"widths": [128, 256]})
        assert created.status_code == 202, created.text
        _finish_on_basin(site, arch_id)
        tuning = api.get(f"/v1/architectures/{arch_id}/tuning").json()
    assert tuning["status"] == "succeeded", tuning["error"]
    return tuning


def test_architecture_page_shows_the_tuned_lr_and_the_mutransfer_figure(
    watched: Watched, site: Site, tuned: dict
) -> None:
    page = _open(watched, site, f"/architectures/{tuned['architecture_id']}")
    lr_star = f"{tuned['lr_star']:.3g}"
    status = page.locator("#tuning-status .notice.ok").inner_text()
    assert f"η* = {lr_star} [{tuned['lower']:.3g}, {tuned['upper']:.3g}] (90 %)" in status
    assert f"new sweeps train at {tuned['ladder_lr']:.3g}" in status
    assert f"Trains at η* = {tuned['ladder_lr']:.3g}" in page.locator("#sweep-lr").inner_text()
    verdict = page.locator("#tuning-transfer .verdict[data-axis=width]")
    assert verdict.locator(".badge.ok").inner_text() == "transfers"
    assert "across width 32, 128, 256" in verdict.inner_text()
    assert tuned["transfer"]["width"]["reason"] in verdict.inner_text()
    plot = page.evaluate(
        """() => { const p = document.getElementById('lr-width-plot');
                   return { legend: p.data.filter(t => t.showlegend !== false).map(t => t.name),
                            stars: p.data.filter(t => t.name.endsWith('η*')).map(t => t.x[0]),
                            points: p.data[0].x.length, spread: p.data[0].error_y.array.some(v => v > 0),
                            xaxis: p.layout.xaxis.type, lines: p.layout.shapes.length }; }"""
    )
    assert plot["legend"] == ["width 32", "width 128", "width 256"]
    assert plot["stars"] == pytest.approx([c["lr_star"] for c in tuned["per_width"]])
    assert plot["points"] == 5 and plot["spread"]  # the ×√2 grid, two seeds per point
    assert plot["xaxis"] == "log" and plot["lines"] == 3
    assert page.locator("#lr-depth-plot").is_hidden()  # width-only μP: no depth transfer
    assert page.locator("#lr-stars tbody tr").count() == 3
    page.check("#lr-relative")  # each basin above its own best: the shapes side by side
    page.wait_for_function(
        "document.getElementById('lr-width-plot').layout.yaxis.title.text.includes('above')"
    )
    lows = page.evaluate(
        """document.getElementById('lr-width-plot').data
               .filter(t => t.showlegend !== false).map(t => Math.min(...t.y))"""
    )
    assert lows == [0, 0, 0]
    rows = page.locator("#runs tbody tr")
    assert rows.count() == 30  # 3 widths × 5 LRs × 2 seeds, with their LR and depth
    assert {rows.nth(i).locator("td").nth(3).inner_text() for i in range(30)} == {
        f"{LR_STAR * 2 ** (k / 2):.3g}" for k in range(-2, 3)
    }
    assert {rows.nth(i).locator("td").nth(2).inner_text() for i in range(30)} == {"1"}
    _screenshot(page, "architecture-tuned")


def test_tune_form_reports_bad_input_then_tunes_and_polls_to_the_result(watched: Watched, site: Site) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    spec = spec_dict("tune-from-the-page", n_layers=3, parametrization={"base_width": 32})
    arch_id = httpx.post(f"{site.url}/v1/architectures", json=spec, headers=headers).json()["id"]
    page = _open(watched, site, f"/architectures/{arch_id}")
    assert "never tuned" in page.locator("#tuning-status .notice.warn").inner_text()
    assert "Trains at the spec's lr = 0.01" in page.locator("#sweep-lr").inner_text()
    assert page.locator("#tune-widths").get_attribute("placeholder") == "128, 256"  # ×4 and ×8 the base
    page.fill("#api-token", TOKEN)
    page.fill("#tune-seeds", "0")
    page.click("#tune-submit")
    page.wait_for_selector("#tune-status .notice.error")
    assert "seeds: List should have at least 2 items" in page.locator("#tune-status").inner_text()
    watched.errors[:] = [e for e in watched.errors if "status of 422" not in e]  # the API's answer, logged

    page.fill("#tune-seeds", "0, 1")
    page.fill("#tune-widths", "64")
    page.click("#tune-submit")
    page.wait_for_selector("#tune-status .notice.ok")
    assert "2 shape(s), 0 done · 0 running · 20 queued" in page.locator("#tune-status").inner_text()
    page.wait_for_selector("#tuning-status :text('LR tuning queued')")  # the page refreshed
    assert page.locator("#runs tbody tr").count() == 20  # 2 widths × 5 LRs × 2 seeds
    assert "No tuning run has finished yet" in page.locator("#lr-width-plot").inner_text()
    # The page polls while the tuning is active: a worker finishing the runs shows up without a reload.
    _finish_on_basin(site, arch_id)
    page.wait_for_selector("#tuning-status .notice.ok", timeout=15_000)
    assert "η* = " in page.locator("#tuning-status").inner_text()
    assert _legend(page, "lr-width-plot") == ["width 32", "width 64"]
    _screenshot(page, "architecture-tuning-polled")


def test_the_horizon_check_gets_its_own_figure_and_moves_the_sweeps_lr(watched: Watched, site: Site) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    # Head size 8: a spec of its own (the other tuned architectures' runs are not reused); 300 steps of 2048.
    spec = spec_dict("horizon-lr", n_layers=1, head_dim=8, parametrization={"base_width": 32})
    arch_id = httpx.post(f"{site.url}/v1/architectures", json=spec, headers=headers).json()["id"]
    page = _open(watched, site, f"/architectures/{arch_id}")
    page.fill("#api-token", TOKEN)
    page.fill("#tune-widths", "64")
    page.fill("#tune-budgets", "153600, 2457600")  # 75 and 1,200 steps; the spec's 300 is the base
    page.click("#tune-submit")
    page.wait_for_selector("#tune-status .notice.ok")
    assert "4 shape(s), 0 done · 0 running · 40 queued" in page.locator("#tune-status").inner_text()
    _finish_on_basin(site, arch_id, horizon_exponent=-0.5)  # η* 0.02 at 75 steps, 0.005 at 1,200
    page.wait_for_selector("#tuning-status .notice.ok", timeout=15_000)
    page.wait_for_selector("#tuning-transfer .verdict[data-axis=horizon]")
    assert _legend(page, "lr-horizon-plot") == ["steps 75", "steps 300", "steps 1200"]
    stars = page.evaluate(
        """document.getElementById('lr-horizon-plot').data
               .filter(t => t.name.endsWith('η*')).map(t => t.x[0])"""
    )
    assert stars == sorted(stars, reverse=True)  # η* falls as the horizon grows
    horizon = page.locator("#tuning-transfer .verdict[data-axis=horizon]")
    assert horizon.locator(".badge.warn").inner_text() == "drifts"
    assert "across horizon 75, 300, 1200 steps" in horizon.inner_text()
    assert "moved along η* ∝ steps^−0." in page.locator("#sweep-lr").inner_text()
    steps = [page.locator("#lr-stars tbody tr").nth(i).get_attribute("data-steps") for i in range(4)]
    assert steps == ["300", "300", "75", "1200"]  # base, width 64, then the horizons
    _screenshot(page, "architecture-horizon-lr")


def test_coordinate_check_runs_on_request_and_passes_under_mup(
    watched: Watched, site: Site, tuned: dict
) -> None:
    page = _open(watched, site, f"/architectures/{tuned['architecture_id']}")
    assert page.locator("#coord-width-plot").is_hidden()
    page.click("#coord-run")
    assert page.locator("#coord-run").is_disabled()  # seconds of compute on the server
    # Seconds of compute on an idle CPU; a busy one (a parallel test run) can take a minute.
    page.wait_for_selector("#coord-status[data-verdict], #coord-status .notice.error", timeout=120_000)
    assert page.locator("#coord-status").get_attribute("data-verdict") == "passes"
    status = page.locator("#coord-status").inner_text()
    assert f"lr = {tuned['ladder_lr']:.3g} (the tuned η*)" in status
    assert page.locator("#coord-status .verdict[data-axis=width] .badge.ok").inner_text() == "passes"
    assert "threshold 0.5" in status
    assert page.locator("#coord-run").is_enabled()
    plot = page.evaluate(
        """() => { const p = document.getElementById('coord-width-plot');
                   return { names: p.data.map(t => t.name), sizes: p.data[0].x,
                            axes: [p.layout.xaxis.type, p.layout.yaxis.type] }; }"""
    )
    assert "embedding" in plot["names"] and len(plot["names"]) >= 5  # one trace per coordinate
    assert plot["sizes"] == [64, 128, 256, 512] and plot["axes"] == ["log", "log"]
    assert page.locator("#coord-depth-plot").is_hidden()  # depth_alpha = 0: no depth axis
    _screenshot(page, "architecture-coord-check")


def test_depth_transfer_gets_its_own_figure_and_diverged_lrs_are_marked(watched: Watched, site: Site) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    spec = spec_dict("depth-mup", n_layers=1, parametrization={"base_width": 32, "depth_alpha": 0.5})
    with httpx.Client(base_url=site.url, headers=headers) as api:
        arch_id = api.post("/v1/architectures", json=spec).json()["id"]
        created = api.post(f"/v1/architectures/{arch_id}/tuning", json={"widths": [64], "depths": [2]})
        assert created.status_code == 202, created.text
    _finish_on_basin(site, arch_id, diverge_above=0.015)  # the grid's top LR, 0.02, diverges everywhere
    page = _open(watched, site, f"/architectures/{arch_id}")
    assert _legend(page, "lr-width-plot") == ["width 32", "width 64"]
    assert _legend(page, "lr-depth-plot") == ["depth 1", "depth 2"]
    diverged = page.evaluate(
        """document.getElementById('lr-width-plot').data
               .filter(t => t.name.endsWith('diverged')).map(t => [t.name, t.x])"""
    )
    assert [name for name, _ in diverged] == ["width 32 · diverged", "width 64 · diverged"]
    assert [lrs for _, lrs in diverged] == [[pytest.approx(0.02)], [pytest.approx(0.02)]]
    assert "every seed diverged" in page.locator("#lr-note").inner_text()
    verdicts = page.locator("#tuning-transfer .verdict")
    assert [verdicts.nth(i).get_attribute("data-axis") for i in range(2)] == ["width", "depth"]
    assert page.locator("#lr-stars tbody tr").count() == 3  # base, width 64, depth 2
    _screenshot(page, "architecture-depth-transfer")


# Names written in Plotly's pseudo-HTML (a link, bold, italic) and a hover-template placeholder: the
# dashboard must draw them as the literal text they are.
HOSTILE_NAMES = (
    '<a href="https://evil.example/">phish-link</a><b>bold</b>',
    '<i>tilt</i> %{x} <a href="https://evil.example/">phish-2</a>',
)


@pytest.fixture(scope="module")
def hostile(site: Site) -> list[int]:
    """Two fitted architectures with hostile names (specs of their own: the name is not part of one)."""
    ids = []
    engine = make_engine(site.db_url)
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        for name, overrides in zip(HOSTILE_NAMES, [{}, {"activation": "swiglu"}], strict=True):
            arch = api.post("/v1/architectures", json=spec_dict(name, ffn_ratio=3.0, **overrides))
            assert arch.status_code == 201 and arch.json()["name"] == name, arch.text
            ids.append(arch.json()["id"])
            sweep = api.post(f"/v1/architectures/{ids[-1]}/sweeps", json={"seeds": [0, 1]})
            assert sweep.status_code == 202, sweep.text
            finish_runs(engine, ids[-1], a=70.0)
    engine.dispose()
    return ids


def _markup_from_data(page: Page) -> dict[str, int]:
    """What Plotly made of tags in its text: links, and bold or italic runs, in every drawn figure."""
    return page.evaluate(
        """() => { const svg = '.js-plotly-plot svg';
                   const count = (s) => document.querySelectorAll(s).length;
                   return { links: count(`${svg} a`),
                            formatted: count(`${svg} tspan[style*=bold], ${svg} tspan[style*=italic]`) }; }"""
    )


def test_plotly_draws_names_as_text_not_markup(watched: Watched, site: Site, hostile: list[int]) -> None:
    page = _open(watched, site, f"/compare?ids={hostile[0]},{hostile[1]}&n=1e9")
    page.wait_for_selector("#compare-plot .legendtext")
    assert _markup_from_data(page) == {"links": 0, "formatted": 0}
    legend = page.locator("#compare-plot .legendtext").all_text_contents()
    assert f"{HOSTILE_NAMES[0]} · fit" in legend, legend  # the literal tags, `<b>bold</b>` included
    assert f"{HOSTILE_NAMES[1]} · proxies" in legend, legend
    # The hover label of each prediction at N names its architecture.
    for curve, name in [(3, HOSTILE_NAMES[0]), (7, HOSTILE_NAMES[1])]:
        page.evaluate(f"Plotly.Fx.hover('compare-plot', [{{curveNumber: {curve}, pointNumber: 0}}])")
        # Plotly throttles hover events: wait for this label, not for any label.
        page.wait_for_function(
            "name => document.querySelector('#compare-plot .hoverlayer').textContent.includes(name)", arg=name
        )
        assert _markup_from_data(page) == {"links": 0, "formatted": 0}
    _screenshot(page, "compare-hostile-names")

    page = _open(watched, site, f"/architectures/{hostile[0]}")
    assert page.locator("h1").inner_text().startswith(HOSTILE_NAMES[0])
    assert page.evaluate("document.getElementById('loss-plot').data.length") == 10
    assert _markup_from_data(page) == {"links": 0, "formatted": 0}


def test_a_failed_run_shows_its_error_is_retried_and_an_architecture_is_deleted(
    watched: Watched, site: Site
) -> None:
    """Issue 20 point 3: the short error under a failed run, its Retry button, and Delete with a
    confirmation (declined first: nothing happens), which leaves the home page without it."""
    engine = make_engine(site.db_url)
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        arch = api.post("/v1/architectures", json=spec_dict("failing-deep", n_layers=3, ffn_ratio=1.5)).json()
        api.post(f"/v1/architectures/{arch['id']}/sweeps", json={"widths": [32]}).raise_for_status()
    others = []  # other tests' queued runs: handed back untouched
    with Session(engine) as session:
        while (claimed := queue.claim(session, "w", lease_seconds=60)) is not None:
            if claimed.architecture_id != arch["id"]:
                others.append(claimed.id)
                continue
            reason = "CorpusError: dataset source 'corpus.txt' holds 12 tokens, fewer than one batch"
            queue.fail(session, claimed.id, "w", reason, max_attempts=1)
        for run_id in others:
            queue.release(session, run_id, "w")
    engine.dispose()

    page = _open(watched, site, f"/architectures/{arch['id']}")
    error_row = page.locator("#runs tr.run-error")
    assert error_row.count() == 1
    assert "holds 12 tokens, fewer than one batch" in error_row.inner_text()
    page.fill("#api-token", TOKEN)
    error_row.locator("button[data-retry]").click()
    page.wait_for_selector("#runs tr.run-error", state="detached")
    # Queued again: nothing trains on this site, so it waits, and can be cancelled from the page.
    assert page.locator("#runs .badge").first.inner_text() == "queued"
    page.click("#runs button[data-cancel]")
    page.wait_for_selector("#runs tr.run-error")
    assert page.locator("#runs .badge").first.inner_text() == "cancelled"

    answers = iter([False, True])
    page.on("dialog", lambda dialog: dialog.accept() if next(answers) else dialog.dismiss())
    page.click("#delete-arch")
    assert httpx.get(f"{site.url}/v1/architectures/{arch['id']}").status_code == 200  # declined
    with page.expect_navigation():
        page.click("#delete-arch")
    page.wait_for_selector("body[data-ready=true]")
    assert httpx.get(f"{site.url}/v1/architectures/{arch['id']}").status_code == 404
    assert page.locator(f'#architectures tr[data-architecture-id="{arch["id"]}"]').count() == 0


@pytest.mark.parametrize(
    ("path", "rendered"),
    [("/docs", ".swagger-ui .opblock-summary-path"), ("/redoc", "[role=menuitem], .menu-content li")],
)
def test_api_docs_render_offline(watched: Watched, site: Site, path: str, rendered: str) -> None:
    """Issue 20 point 4: Swagger UI and ReDoc load their scripts from the server (the installed
    fastapi-offline wheel), so they render with every request off loopback aborted (the fixture fails
    the test on any)."""
    page = watched.page
    response = page.goto(site.url + path)
    assert response is not None and response.ok
    page.wait_for_selector(rendered)
    assert "mupredict" in page.inner_text("body")
    assert page.locator(rendered).count() > 10  # the operations are listed, not just the frame
    # ReDoc's bundle always asks its maker's CDN for a logo: the page's policy refuses it before any
    # request is made (so none reaches the fixture's check), and the browser says so in the console.
    logo = [e for e in watched.errors if "cdn.redoc.ly/redoc/logo-mini.svg" in e]
    assert len(logo) <= (1 if path == "/redoc" else 0)
    watched.errors[:] = [e for e in watched.errors if e not in logo]
    _screenshot(page, f"docs{path.replace('/', '-')}")


@pytest.mark.parametrize("width", [1024, 1400, 1920])
def test_no_page_scrolls_sideways_from_1024_to_1920_px(browser: Browser, site: Site, width: int) -> None:
    """Issue 20 point 5: every page fits its viewport, and no card, table box or table inside overflows
    (the ranking table used to spill out of its card at 1400 px and scroll the page at 1024)."""
    a, b, c = site.ids.values()
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        for path in ("/", f"/compare?ids={a},{b},{c}", f"/architectures/{a}", "/submit"):
            page.goto(site.url + path)
            page.wait_for_selector("body[data-ready=true]")
            overflow = page.evaluate(
                """() => ({
                  page: document.documentElement.scrollWidth - window.innerWidth,
                  boxes: [...document.querySelectorAll('main, .card, .table-box, table')]
                    .filter((el) => el.scrollWidth > el.clientWidth + 1)
                    .map((el) => `${el.tagName}#${el.id}: ${el.scrollWidth} > ${el.clientWidth}`),
                })"""
            )
            assert overflow["page"] <= 0 and overflow["boxes"] == [], (width, path, overflow)
    finally:
        context.close()


def _download(page: Page, button: str) -> list[list[str]]:
    """Click a CSV button; the downloaded file's rows."""
    with page.expect_download() as info:
        page.click(button)
    return list(csv.reader(Path(info.value.path()).read_text().splitlines()))


def test_colours_follow_the_architecture_and_the_y_axis_follows_the_data(
    watched: Watched, site: Site
) -> None:
    """Issue 20 point 5: a design keeps its colour whatever it is compared with; the y-range covers the
    measured losses and fitted means, and every band that leaves it is marked where it does; the
    ranking downloads as CSV."""
    a, b, c = site.ids["gelu-base"], site.ids["swiglu-rope"], site.ids["waiting-relu2"]
    colours = {}
    for ids in (f"{a},{b}", f"{b},{a},{c}"):
        page = _open(watched, site, f"/compare?ids={ids}&n=1e13")
        fits = page.evaluate(
            """() => document.getElementById('compare-plot').data
                 .filter(t => t.name.endsWith(' · fit')).map(t => [t.legendgroup, t.line.color])"""
        )
        for group, colour in fits:
            assert colours.setdefault(group, colour) == colour, (ids, group)
    assert len(colours) == 2 and len(set(colours.values())) == 2
    swatch = page.locator(f'#ranking tr[data-architecture-id="{b}"] .swatch').get_attribute("style")
    assert swatch is not None and colours[f"a{b}"] in swatch.replace(" ", "")

    check = page.evaluate(
        """() => { const p = document.getElementById('compare-plot');
                   const [lo, hi] = p.layout.yaxis.range;
                   const shown = p.data.filter(t => / · (proxies|fit)$/.test(t.name)).flatMap(t => t.y);
                   const bands = p.data.filter(t => t.name.endsWith('band'));
                   const group = (t) => t.legendgroup;
                   const leaving = bands.filter(t => t.y.some(y => y > hi || y < lo)).map(group);
                   const marked = p.data.filter(t => t.name.endsWith('band off scale')).map(group);
                   return { inside: shown.every(y => y >= lo && y <= hi), leaving, marked }; }"""
    )
    assert check["inside"]
    assert sorted(set(check["leaving"])) == sorted(set(check["marked"]))

    rows = _download(page, "#ranking-csv")
    assert rows[0][:3] == ["rank", "architecture_id", "name"] and len(rows) == 3
    assert [r[0] for r in rows[1:]] == ["1", "2"] and {r[1] for r in rows[1:]} == {str(a), str(b)}
    assert all(float(r[4]) > 0 and r[3] == "10000000000000" for r in rows[1:])


def test_architecture_page_plots_the_fit_over_its_validation_losses(watched: Watched, site: Site) -> None:
    arch = site.ids["gelu-base"]
    page = _open(watched, site, f"/architectures/{arch}")
    page.wait_for_function("document.getElementById('fit-plot').data?.length === 3")
    fit = httpx.get(f"{site.url}/v1/architectures/{arch}/fit").json()
    plotted = page.evaluate(
        "document.getElementById('fit-plot').data.map(t => [t.name, t.y.length, t.fillcolor ?? ''])"
    )
    assert [name for name, _, _ in plotted] == [
        "90% band (expected loss)",
        "fitted law (mu_scaling)",  # the law is named: the fit card can show either
        "validation loss (runs)",
    ]
    losses = page.evaluate("document.getElementById('fit-plot').data[2].y")
    assert losses == pytest.approx([p["loss"] for p in fit["points"]])
    rows = _download(page, "#runs-csv")
    runs = httpx.get(f"{site.url}/v1/runs", params={"architecture_id": arch, "limit": 500}).json()["items"]
    assert rows[0][:4] == ["id", "width", "depth", "seed"] and len(rows) == len(runs) + 1
    assert sorted(int(r[0]) for r in rows[1:]) == sorted(r["id"] for r in runs)


def test_designs_on_two_tokenizers_of_one_text_are_compared_in_bits_per_byte(
    watched: Watched, site: Site
) -> None:
    """Issue 21 point 3 on the page: the ranking, the table's unit, the y-axis and every plotted loss
    (proxies, fit) are in bits per byte, and the page says how the losses were converted."""
    engine = make_engine(site.db_url)
    ids = []
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        for name, vocab, bytes_per_token, scale in (
            ("text-bytes", 256, 1.0, 1.0),
            ("text-bpe", 4096, 4.0, 3.5),
        ):
            dataset = {"source": f"data/{name}", "tokenizer": "prepared", "vocab_size": vocab}
            arch_id = api.post("/v1/architectures", json=spec_dict(name, dataset=dataset)).json()["id"]
            api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1]})
            finish_runs(engine, arch_id, loss_of=lambda run, n, s=scale: s * (1.8 + 70.0 * n**-0.3))
            with Session(engine) as session:
                session.execute(
                    update(Run)
                    .where(Run.architecture_id == arch_id)
                    .values(
                        corpus_fingerprint=name[:64],
                        text_fingerprint="t" * 64,
                        val_bytes_per_token=bytes_per_token,
                    )
                )
                session.commit()
            # A new sweep (queued runs only) makes the fit current again.
            api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1, 2], "widths": [32]})
            ids.append(arch_id)
    engine.dispose()
    page = _open(watched, site, f"/compare?ids={ids[0]},{ids[1]}&n=1e9")
    assert page.locator("#loss-unit").text_content() == "bits per byte"
    assert "ranked in bits per byte" in page.locator("#messages").inner_text()
    ranking = page.locator("#ranking tbody tr")
    assert ranking.nth(0).get_attribute("data-architecture-id") == str(ids[1])  # fewer bits per byte
    plot = page.evaluate(
        """() => { const p = document.getElementById('compare-plot');
                   return { title: p.layout.yaxis.title.text,
                            proxies: p.data.filter(t => t.name.endsWith('proxies')).map(t => t.y) }; }"""
    )
    assert "bits per byte" in plot["title"]
    for arch_id, bytes_per_token, plotted in zip(ids, (1.0, 4.0), plot["proxies"], strict=True):
        fit = httpx.get(f"{site.url}/v1/architectures/{arch_id}/fit").json()
        by_width: dict[int, list[float]] = {}
        for point in fit["points"]:
            by_width.setdefault(point["width"], []).append(point["loss"])
        nats = [sum(v) / len(v) for _, v in sorted(by_width.items())]
        assert plotted == pytest.approx([x / (math.log(2) * bytes_per_token) for x in nats])
    _screenshot(page, "compare-bits-per-byte")


def test_a_token_horizon_grid_shows_loss_against_tokens_and_the_frontier(
    watched: Watched, site: Site
) -> None:
    """Issue 16 point 5: the architecture page plots each width's branches against D with the fitted
    law along D, and the compute-optimal loss against C with its band; no request fails on the way."""
    spec = spec_dict(
        "horizons", training={"batch_tokens": 1024, "schedule": "wsd", "decay_fraction": 0.2, "steps": 1600}
    )
    engine = make_engine(site.db_url)
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        arch_id = api.post("/v1/architectures", json=spec).json()["id"]
        budgets = [1024 * s for s in (200, 400, 800, 1600)]
        api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1], "token_budgets": budgets})
        finish_runs(
            engine,
            arch_id,
            loss_of=lambda run, n: grid_loss(n, run.steps * 1024),
        )
    engine.dispose()
    page = _open(watched, site, f"/architectures/{arch_id}")
    page.wait_for_function("document.getElementById('frontier-plot').data?.length === 2")
    grid = httpx.get(f"{site.url}/v1/architectures/{arch_id}/grid").json()
    names = page.evaluate("document.getElementById('horizon-plot').data.map(t => t.name)")
    widths = sorted({p["width"] for p in grid["points"]})
    assert names == [f"width {w} · {kind}" for w in widths for kind in ("fit", "branches")]
    plotted = page.evaluate(
        "document.getElementById('horizon-plot').data.filter(t => t.name.endsWith('branches'))"
        ".flatMap(t => t.x.map((x, i) => [x, t.y[i]]))"
    )
    assert sorted(map(tuple, plotted)) == sorted((p["tokens"], p["loss"]) for p in grid["points"])
    frontier = page.evaluate("document.getElementById('frontier-plot').data[1].y")
    assert frontier == pytest.approx([f["loss"] for f in grid["frontier"]])
    assert "8 of 8" not in page.locator("#horizon-status").inner_text()  # fitted: no waiting notice
    # Whole-run fits ignore the branches: the fit card waits for a whole-run ladder, with no request.
    assert "Not fitted yet" in page.locator("#fit-status").inner_text()
    _screenshot(page, "architecture-token-horizons")


def test_a_nugpt_design_gets_its_page_and_is_ranked_against_a_gpt(watched: Watched, site: Site) -> None:
    """Issue 18 point 4: the dashboard treats family "ngpt" like "gpt": its runs, curves, fit and spec on
    its page, and a place in the comparison's ranking beside a GPT design."""
    engine = make_engine(site.db_url)
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        created = api.post("/v1/architectures", json=spec_dict("nugpt-design", family="ngpt"))
        assert created.status_code == 201, created.text
        arch_id = created.json()["id"]
        api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1]})
        finish_runs(engine, arch_id, a=50.0)  # below gelu-base's law (a = 60) at every N
    engine.dispose()
    page = _open(watched, site, f"/architectures/{arch_id}")
    assert page.locator("#runs .badge.succeeded").count() == 10
    assert page.evaluate("document.getElementById('loss-plot').data.length") == 10
    assert page.locator("#fit-report").inner_text().strip()
    spec = page.locator("#spec").inner_text()
    assert '"family": "ngpt"' in spec and '"mode": "nugpt"' in spec
    gpt = site.ids["gelu-base"]
    page = _open(watched, site, f"/compare?ids={gpt},{arch_id}&n=1000000000")
    page.wait_for_selector("#ranking tbody tr")
    rows = page.locator("#ranking tbody tr").all_inner_texts()
    assert len(rows) == 2 and "nugpt-design" in rows[0]  # its lower law ranks it first
    _screenshot(page, "compare-nugpt-gpt")


def test_the_fit_card_offers_the_slice_law_once_a_token_horizon_grid_is_fitted(
    watched: Watched, site: Site
) -> None:
    """Issue 13: the fit card switches the ladder's law to kaplan_slice (γ from the architecture's own
    token-horizon grid) when there is a grid to take γ from, and draws that fit against N; without a grid
    the choice is disabled and says why, so it never meets a 409."""
    page = _open(watched, site, f"/architectures/{site.ids['gelu-base']}")
    assert page.locator("#fit-law option[value=kaplan_slice]").is_disabled()
    assert "needs a token-horizon grid" in page.locator("#fit-law-note").inner_text()
    spec = spec_dict(  # three layers: not the "horizons" design of the same recipe (specs match by hash)
        "sliced",
        n_layers=3,
        training={"batch_tokens": 1024, "schedule": "wsd", "decay_fraction": 0.2, "steps": 1600},
    )
    engine = make_engine(site.db_url)
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        created = api.post("/v1/architectures", json=spec)
        assert created.status_code == 201, created.text
        arch_id = created.json()["id"]
        budgets = [1024 * s for s in (200, 400, 800, 1600)]
        api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1], "token_budgets": budgets})
        finish_runs(engine, arch_id, loss_of=lambda run, n: grid_loss(total_of(run), run.steps * 1024))
        api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1]})
        finish_runs(engine, arch_id, loss_of=lambda run, n: grid_loss(total_of(run), run.steps * 1024))
    engine.dispose()
    page = _open(watched, site, f"/architectures/{arch_id}")
    page.select_option("#fit-law", "mu_scaling")
    page.wait_for_function("document.getElementById('fit-facts').innerText.includes('mu_scaling')")
    assert not page.locator("#fit-law option[value=kaplan_slice]").is_disabled()
    page.select_option("#fit-law", "kaplan_slice")
    page.wait_for_function("document.getElementById('fit-facts').innerText.includes('kaplan_slice')")
    fit = httpx.get(f"{site.url}/v1/architectures/{arch_id}/fit", params={"law": "kaplan_slice"}).json()
    assert "gamma = " in page.locator("#fit-facts").inner_text()
    assert "[[Basis]]" in page.locator("#fit-report").inner_text()
    assert "at most 2 layers deep" not in page.locator("#fit-report").inner_text()  # three layers
    drawn = page.evaluate("document.getElementById('fit-plot').data[1]")
    assert drawn["name"] == "fitted law (kaplan_slice)"
    assert drawn["x"] == pytest.approx([c["n_params"] for c in fit["curve"]])
    assert drawn["y"] == pytest.approx([c["mean"] for c in fit["curve"]])
    assert "total parameters" in page.locator("#holdout-check").inner_text()
    assert page.locator("#fit-law-choice").count() == 0  # asked for by name: no reason to give
    _screenshot(page, "architecture-slice-law")
    # auto resolves to the slice here (the grid gives γ) and says why.
    page.select_option("#fit-law", "mu_scaling")
    page.wait_for_function("document.getElementById('fit-facts').innerText.includes('mu_scaling')")
    page.select_option("#fit-law", "auto")
    page.wait_for_selector("#fit-law-choice")
    assert page.locator("#fit-law-choice").inner_text().startswith("auto: kaplan_slice")
    assert "kaplan_slice" in page.locator("#fit-facts").inner_text()
