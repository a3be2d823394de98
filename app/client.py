"""Notebook client: every endpoint as a method, typed with the API's own models.

from app.client import Client
client = Client("http://127.0.0.1:8000")
arch = client.create_architecture(spec)
sweep = client.wait_for(client.create_sweep(arch.id))
client.predict(architecture_id=arch.id, n_params=1e9)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from app.progress import Board, sweep_bars
from app.schemas import (
    ArchitectureListItem,
    ArchitecturePublic,
    ComparePublic,
    FitPublic,
    GridPublic,
    Page,
    PredictionBatchPublic,
    PredictionPublic,
    RunPublic,
    RunSummary,
    SweepPublic,
)
from app.tables import Rows
from app.tuning_schemas import CoordCheckPublic, TuningPublic
from predictor import DEFAULT_METHOD
from trainer import ArchitectureSpec

M = TypeVar("M", bound=BaseModel)

# Status codes worth a retry: the server or a proxy in front of it was briefly unavailable.
RETRY_STATUS = {429, 502, 503, 504}


class APIError(Exception):
    """A 4xx/5xx answer; `detail` carries the server's explanation (which names the fix)."""

    def __init__(self, status_code: int, detail: Any) -> None:
        self.status_code, self.detail = status_code, detail
        super().__init__(f"HTTP {status_code}: {detail}")


class Client:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)
        self.retries = retries

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, idempotent: bool, **kwargs: Any) -> Any:
        """Send; retry connection failures and 429/502/503/504 with backoff, for idempotent calls only."""
        attempts = self.retries + 1 if idempotent else 1
        for attempt in range(attempts):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError:
                if attempt + 1 == attempts:
                    raise
            else:
                if response.status_code not in RETRY_STATUS or attempt + 1 == attempts:
                    if response.is_error:
                        try:
                            detail = response.json().get("detail", response.text)
                        except ValueError:
                            detail = response.text
                        raise APIError(response.status_code, detail)
                    return response.json() if response.content else None  # a 204 has no body
            time.sleep(min(0.25 * 2**attempt, 4.0))
        raise AssertionError("unreachable")

    def _get(self, path: str, model: type[M], **params: Any) -> M:
        params = {k: v for k, v in params.items() if v is not None}
        return model.model_validate(self._request("GET", path, idempotent=True, params=params))

    def _post(self, path: str, model: type[M], body: dict[str, Any], *, idempotent: bool) -> M:
        return model.model_validate(self._request("POST", path, idempotent=idempotent, json=body))

    # -- health ------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/healthz", idempotent=True)
        return result

    def ready(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/readyz", idempotent=True)
        return result

    # -- architectures -----------------------------------------------------------------------------

    def create_architecture(self, spec: ArchitectureSpec | dict[str, Any]) -> ArchitecturePublic:
        """Register a spec (idempotent: the same spec returns the same architecture)."""
        body = spec.model_dump(mode="json") if isinstance(spec, ArchitectureSpec) else spec
        return self._post("/v1/architectures", ArchitecturePublic, body, idempotent=True)

    def get_architecture(self, architecture_id: int) -> ArchitecturePublic:
        return self._get(f"/v1/architectures/{architecture_id}", ArchitecturePublic)

    def list_architectures(self, name: str | None = None, page_size: int = 100) -> Rows[ArchitectureListItem]:
        """Every architecture (following the cursor across pages); one whose stored spec no longer
        validates has `valid` False, `spec` None and the reason in `error`."""
        return Rows(self._pages("/v1/architectures", Page[ArchitectureListItem], name=name, limit=page_size))

    def get_fit(self, architecture_id: int, law: str | None = None) -> FitPublic:
        """The ladder's fit: `law` "mu_scaling", "kaplan_slice" (γ from the architecture's token-horizon
        grid, fitted in total parameters) or "auto" (the slice where the grid gives γ); None: the
        service's default. `law_choice` says which law and why."""
        return self._get(f"/v1/architectures/{architecture_id}/fit", FitPublic, law=law)

    def grid(
        self,
        architecture_id: int,
        *,
        tokens_to: float | None = None,
        compute_to: float | None = None,
        level: float = 0.9,
        law: str | None = None,
    ) -> GridPublic:
        """The (N, D) fit of the architecture's token-horizon grid (a sweep with token_budgets): its
        points (`.to_pandas()`: one row per branch, with N, D and 6ND), the law along D per width and the
        compute-optimal frontier N*(C), D*(C), L*(C) with their bands. `law="chinchilla"` fits the
        additive law instead of the service's kaplan, to compare the two."""
        return self._get(
            f"/v1/architectures/{architecture_id}/grid",
            GridPublic,
            tokens_to=tokens_to,
            compute_to=compute_to,
            level=level,
            law=law,
        )

    # -- sweeps and runs ---------------------------------------------------------------------------

    # -- LR tuning and the μP checks ---------------------------------------------------------------

    def create_tuning(self, architecture_id: int, **options: Any) -> TuningPublic:
        """Queue the LR sweep at the base shape and the transfer check (idempotent). Options as the API:
        widths, depths, token_budgets (the horizon check), seeds, steps, lr, grid_factor, grid_points,
        max_extensions, level."""
        body = {k: v for k, v in options.items() if v is not None}
        return self._post(f"/v1/architectures/{architecture_id}/tuning", TuningPublic, body, idempotent=True)

    def get_tuning(self, architecture_id: int) -> TuningPublic:
        """The architecture's latest tuning: η* with its interval, the curves, the transfer verdicts."""
        return self._get(f"/v1/architectures/{architecture_id}/tuning", TuningPublic)

    def wait_for_tuning(
        self,
        architecture_id: int,
        *,
        poll_seconds: float = 2.0,
        timeout: float | None = None,
        progress: bool = True,
        on_poll: Callable[[], None] | None = None,
    ) -> TuningPublic:
        """Poll until the latest tuning has succeeded or failed, with a progress bar over its runs
        (the total grows when the grid is extended). `on_poll` as for `wait_for`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with Board(progress) as board:
            while True:
                if on_poll is not None:
                    on_poll()
                tuning = self.get_tuning(architecture_id)
                counts = tuning.runs
                finished = counts.succeeded + counts.diverged + counts.failed + counts.cancelled
                settled = tuning.status in ("succeeded", "failed")
                board.show(
                    "tuning",
                    f"tuning {tuning.id}",
                    finished,
                    finished + counts.running + counts.queued,
                    f"{tuning.status} · {finished} runs done · {counts.running} running · "
                    f"{counts.queued} queued",
                )
                board.flush(final=settled)
                if settled:
                    return tuning
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"tuning {tuning.id} not finished after {timeout} s")
                time.sleep(poll_seconds)

    def coord_check(self, architecture_id: int) -> CoordCheckPublic:
        """The coordinate check at the tuned η* (computed on the first request: seconds on a CPU)."""
        return self._get(f"/v1/architectures/{architecture_id}/coord-check", CoordCheckPublic)

    def create_sweep(
        self,
        architecture_id: int,
        widths: list[int] | None = None,
        seeds: list[int] | None = None,
        steps: int | None = None,
        lr: float | None = None,
        data_seed: int | None = None,
        retry_failed: bool = False,
        token_budgets: list[int] | None = None,
        warm_start: str | None = None,
        noise: float | None = None,
        depths: list[int] | None = None,
        aspect_ratio: float | None = None,
    ) -> SweepPublic:
        """Queue proxy runs at the tuned η* (else the spec's LR) unless `lr` pins one (idempotent: runs
        that exist are reused, an identical sweep is returned). `token_budgets` (training tokens,
        increasing) makes it an (N, D) grid: per (width, seed) a trunk and a cooldown branch per budget.
        `warm_start="upscale"` builds the ladder rung by rung, each width upscaled from the one before
        (with `noise`). `depths` trains every width at each depth (a ladder over depth, or a (width,
        depth) grid); `aspect_ratio` instead trains each width at depth = width / aspect_ratio."""
        body: dict[str, Any] = {
            "widths": widths,
            "steps": steps,
            "lr": lr,
            "data_seed": data_seed,
            "retry_failed": retry_failed,
            "token_budgets": token_budgets,
        }
        if warm_start is not None:
            body |= {"warm_start": warm_start, "noise": noise}
        if depths is not None or aspect_ratio is not None:
            body |= {"depths": depths, "aspect_ratio": aspect_ratio}
        if seeds is not None:
            body["seeds"] = seeds
        return self._post(f"/v1/architectures/{architecture_id}/sweeps", SweepPublic, body, idempotent=True)

    def get_sweep(self, sweep_id: int) -> SweepPublic:
        return self._get(f"/v1/sweeps/{sweep_id}", SweepPublic)

    def cancel_sweep(self, sweep_id: int) -> SweepPublic:
        """Cancel the sweep's queued and running runs; finished ones stay."""
        return SweepPublic.model_validate(self._request("DELETE", f"/v1/sweeps/{sweep_id}", idempotent=True))

    def cancel_run(self, run_id: int) -> RunPublic:
        """Cancel a queued or running run (a running one stops at its worker's next heartbeat)."""
        return RunPublic.model_validate(self._request("DELETE", f"/v1/runs/{run_id}", idempotent=False))

    def retry_run(self, run_id: int) -> RunPublic:
        """Queue a failed or cancelled run again, with fresh attempts."""
        return self._post(f"/v1/runs/{run_id}/retry", RunPublic, {}, idempotent=False)

    def upscale_run(
        self,
        run_id: int,
        width: int,
        *,
        steps: int | None = None,
        lr: float | None = None,
        noise: float = 1.0,
        seed: int | None = None,
    ) -> RunPublic:
        """Queue a continuation of a succeeded run widened to `width` (a whole multiple of its width) by
        μP upscaling, `noise` × a fresh μP init on the copies (idempotent: the same request, the same run)."""
        body = {"width": width, "steps": steps, "lr": lr, "noise": noise, "seed": seed}
        return self._post(f"/v1/runs/{run_id}/upscale", RunPublic, body, idempotent=True)

    def delete_architecture(self, architecture_id: int) -> None:
        """Delete the architecture with its sweeps, runs, fits and tunings (not undoable)."""
        self._request("DELETE", f"/v1/architectures/{architecture_id}", idempotent=False)

    def list_runs(self, **filters: Any) -> Rows[RunSummary]:
        """Runs filtered by architecture_id, sweep_id, status or width (every page)."""
        return Rows(self._pages("/v1/runs", Page[RunSummary], **filters))

    def get_run(self, run_id: int) -> RunPublic:
        return self._get(f"/v1/runs/{run_id}", RunPublic)

    def wait_for(
        self,
        sweep: SweepPublic | int,
        *,
        poll_seconds: float = 2.0,
        timeout: float | None = None,
        progress: bool = True,
        on_poll: Callable[[], None] | None = None,
    ) -> SweepPublic:
        """Poll until every run of the sweep has finished: a bar over the sweep's training steps and one
        per training run with its tokens/s and ETA (plain lines when the output is not a terminal).
        `on_poll` runs before each poll (raise from it to stop waiting, e.g. when local workers died)."""
        sweep_id = sweep if isinstance(sweep, int) else sweep.id
        deadline = None if timeout is None else time.monotonic() + timeout
        with Board(progress) as board:
            while True:
                if on_poll is not None:
                    on_poll()
                current = self.get_sweep(sweep_id)
                sweep_bars(board, current)
                board.flush(final=current.done)
                if current.done:
                    return current
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"sweep {sweep_id} not finished after {timeout} s")
                time.sleep(poll_seconds)

    # -- predictions -------------------------------------------------------------------------------

    def predict(
        self,
        *,
        architecture_id: int | None = None,
        spec: ArchitectureSpec | dict[str, Any] | None = None,
        n_params: float | None = None,
        width: int | None = None,
        depth: int | None = None,
        aspect_ratio: float | None = None,
        tokens: float | None = None,
        compute: float | None = None,
        tokens_per_parameter: float | None = None,
        level: float = 0.9,
        interval: str = "run",
        seeds: int = 1,
        method: str = DEFAULT_METHOD,
        law: str | None = None,
    ) -> PredictionPublic:
        """The loss at n_params (or width), with an interval for the expected loss (`interval="expected"`)
        or for what `seeds` new runs will show, averaged (`interval="run"`, the default); `method`
        "profile" takes the parameters' part from the profile likelihood instead of the delta method.
        With `tokens` the loss at (N, D), and with `compute` (FLOPs, 6ND) instead of N the loss at the
        compute-optimal split, or at D = `tokens_per_parameter` × N: from the token-horizon grid's fit.
        `depth` (with `width`) asks at that shape; `aspect_ratio` (width / depth, with `n_params`) at N
        for that shape: shape-corrected when the ladder's fit found that shape matters. `law`
        "kaplan_slice" answers from the fixed-D slice of the kaplan law (γ from the token-horizon grid),
        "mu_scaling" from E + A·N^−α, "auto" from the slice where the grid gives γ; None: the service's
        default. The answer's `law_choice` says which law and why."""
        body: dict[str, Any] = {
            "architecture_id": architecture_id,
            "n_params": n_params,
            "width": width,
            "depth": depth,
            "aspect_ratio": aspect_ratio,
            "tokens": tokens,
            "compute": compute,
            "tokens_per_parameter": tokens_per_parameter,
            "level": level,
            "interval": interval,
            "seeds": seeds,
            "method": method,
        }
        if law is not None:
            body["law"] = law
        if spec is not None:
            body["spec"] = spec.model_dump(mode="json") if isinstance(spec, ArchitectureSpec) else spec
        # A prediction reads the cached fit and changes nothing: safe to retry.
        return self._post("/v1/predictions", PredictionPublic, body, idempotent=True)

    def predict_many(
        self,
        architecture_ids: list[int],
        n_params: float,
        *,
        level: float = 0.9,
        interval: str = "run",
        seeds: int = 1,
        method: str = DEFAULT_METHOD,
    ) -> PredictionBatchPublic:
        """Predictions for many architectures at one N in one request; each item holds a prediction or
        the status (404, 409) and message a single prediction would give. `.to_pandas()` for a table."""
        body = {
            "architecture_ids": architecture_ids,
            "n_params": n_params,
            "level": level,
            "interval": interval,
            "seeds": seeds,
            "method": method,
        }
        return self._post("/v1/predictions/batch", PredictionBatchPublic, body, idempotent=True)

    def compare(
        self,
        architecture_ids: list[int],
        n_params: float | None = None,
        level: float = 0.9,
        *,
        tokens: float | None = None,
        compute: float | None = None,
        tokens_per_parameter: float | None = None,
        law: str | None = None,
    ) -> ComparePublic:
        """Rank designs by expected loss at n_params (at (N, D) with `tokens`), or at equal training
        `compute` (FLOPs, 6ND: each at its compute-optimal N*, D*, or at D = tokens_per_parameter × N),
        with P(best) paired by seed. By N, `law` picks the ladders' law as in `predict` (one law for
        every candidate)."""
        body: dict[str, Any] = {
            "architecture_ids": architecture_ids,
            "n_params": n_params,
            "tokens": tokens,
            "compute": compute,
            "tokens_per_parameter": tokens_per_parameter,
            "level": level,
        }
        if law is not None:
            body["law"] = law
        return self._post("/v1/compare", ComparePublic, body, idempotent=True)

    # -- helpers -----------------------------------------------------------------------------------

    def _pages(self, path: str, model: type[Page[Any]], **params: Any) -> Iterator[Any]:
        cursor = None
        while True:
            page = self._get(path, model, cursor=cursor, **params)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
