"""A dataset source must lie inside the configured data roots (issue 14, point 4): the API refuses one
outside by syntax (422, one message whether or not the path exists), each worker refuses it again with its
own settings, sweeps and tunings of a stored source the roots no longer allow are refused (409), corpora
are capped, and a failed run stores one line without server paths. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import queue
from app.api import create_app
from app.models import Run, RunStatus
from app.settings import Settings
from app.worker import Worker
from tests.app.api_helpers import enqueue_one, one_run_spec, spec_dict, stored_run
from trainer import CorpusError

TEXT = (Path(queue.__file__).read_text() * 3).encode()  # ~40 kB of real text: enough for a tiny run


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A readable file outside the data root, as /etc/hostname or another user's file would be."""
    path = tmp_path / "secret.txt"
    path.write_bytes(TEXT)
    return path


@pytest.fixture
def settings(fresh_db_url: str, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MUPREDICT_CACHE_DIR", str(tmp_path / "cache"))
    return Settings(
        _env_file=None, database_url=fresh_db_url, max_attempts=3, data_dirs=["builtin", str(root)]
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def with_source(source: str) -> dict[str, Any]:
    return spec_dict(dataset={"source": source})


def refusal(api: TestClient, source: str) -> dict[str, Any]:
    """The 422 that both POST /v1/architectures and /validate answer for `source`."""
    created = api.post("/v1/architectures", json=with_source(source))
    checked = api.post("/v1/architectures/validate", json=with_source(source))
    assert created.status_code == checked.status_code == 422, (created.text, checked.text)
    assert created.json() == checked.json()
    body: dict[str, Any] = created.json()
    return body


@pytest.mark.parametrize("source", ["/etc/hostname", "/etc/passwd", "/"])
def test_a_source_outside_the_roots_is_a_422_naming_the_setting_and_roots(
    api: TestClient, root: Path, source: str
) -> None:
    [error] = refusal(api, source)["detail"]
    assert error["loc"] == ["body", "dataset", "source"]
    assert "MUPREDICT_DATA_DIRS" in error["msg"] and str(root.resolve()) in error["msg"]
    assert "'builtin'" in error["msg"]
    assert api.get("/v1/architectures").json()["items"] == []  # nothing stored


def test_dot_dot_and_relative_tricks_are_refused(
    api: TestClient, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusal(api, f"{root}/../../../../../../../etc/passwd")
    refusal(api, f"{root}/../secret.txt")
    monkeypatch.chdir(root)  # a relative source is taken from the working directory
    refusal(api, "../../etc/passwd")
    refusal(api, "~/.bashrc")
    assert api.post("/v1/architectures/validate", json=with_source("corpus.txt")).status_code == 200


def test_a_symlink_inside_a_root_that_leads_outside_is_refused(
    api: TestClient, root: Path, secret: Path
) -> None:
    (root / "innocent.txt").symlink_to(secret)
    (root / "folder").symlink_to(secret.parent, target_is_directory=True)
    refusal(api, str(root / "innocent.txt"))
    refusal(api, str(root / "folder" / "secret.txt"))


def test_missing_and_existing_paths_outside_read_the_same(api: TestClient, secret: Path) -> None:
    existing = refusal(api, str(secret))
    missing = refusal(api, str(secret.with_name("no-such-file.txt")))
    assert existing == missing  # no existence oracle


def test_sources_inside_the_roots_and_builtin_are_accepted(api: TestClient, root: Path) -> None:
    (root / "corpus.txt").write_bytes(TEXT)
    for source in ("builtin", str(root / "corpus.txt"), str(root), str(root / "not-yet-there.txt")):
        created = api.post("/v1/architectures", json=with_source(source))
        assert created.status_code == 201, created.text


def test_builtin_is_a_root_the_operator_may_leave_out(fresh_db_url: str, root: Path) -> None:
    settings = Settings(_env_file=None, database_url=fresh_db_url, data_dirs=[str(root)])
    with TestClient(create_app(settings)) as client:
        [error] = refusal(client, "builtin")["detail"]
    assert "'builtin'" not in error["msg"] and str(root.resolve()) in error["msg"]


def test_a_stored_source_the_roots_no_longer_allow_queues_nothing(
    api: TestClient, settings: Settings, root: Path, tmp_path: Path
) -> None:
    """Registered under wider roots, then the operator narrowed them: sweeps and tunings of it are a 409
    that says why, instead of runs every worker would refuse."""
    arch = api.post("/v1/architectures", json=with_source(str(root / "corpus.txt"))).json()
    other = tmp_path / "other"
    other.mkdir()
    narrowed = settings.model_copy(update={"data_dirs": ["builtin", str(other)]})
    with TestClient(create_app(narrowed)) as client:
        for path in (f"/v1/architectures/{arch['id']}/sweeps", f"/v1/architectures/{arch['id']}/tuning"):
            response = client.post(path, json={})
            assert response.status_code == 409, (path, response.text)
            detail = response.json()["detail"]
            assert "outside the data roots" in detail and str(other.resolve()) in detail
            assert "MUPREDICT_DATA_DIRS" in detail
        assert client.get("/v1/runs").json()["items"] == []  # nothing queued
    assert api.post(f"/v1/architectures/{arch['id']}/sweeps", json={}).status_code == 202


def test_a_source_longer_than_a_path_is_refused(api: TestClient, root: Path) -> None:
    response = api.post("/v1/architectures/validate", json=with_source(str(root) + "/x" * 3000))
    assert response.status_code == 422
    assert "at most 4096 characters" in response.json()["detail"][0]["msg"]


def test_data_dirs_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUPREDICT_DATA_DIRS", "builtin:/srv/corpora:")
    assert Settings(_env_file=None).data_dirs == ["builtin", "/srv/corpora"]
    monkeypatch.setenv("MUPREDICT_DATA_DIRS", '["/srv/a:b"]')
    settings = Settings(_env_file=None)
    assert settings.data_roots == (Path("/srv/a:b"),) and not settings.allows_builtin
    monkeypatch.delenv("MUPREDICT_DATA_DIRS")
    default = Settings(_env_file=None)
    assert default.allows_builtin and default.data_roots == (Path("data").absolute(),)


# -- the worker enforces its own roots ---------------------------------------------------------------


def work_one(settings: Settings, run_id: int) -> Run:
    assert Worker(settings, device="cpu", poll_seconds=0.1).run(max_runs=1) == 1
    return stored_run(settings, run_id)


@pytest.mark.parametrize("where", ["outside", "symlink", "missing-outside"])
def test_the_worker_refuses_a_stored_source_outside_its_roots(
    settings: Settings, root: Path, secret: Path, where: str
) -> None:
    source = {
        "outside": str(secret),
        "symlink": str(root / "link.txt"),
        "missing-outside": str(secret.with_name("missing.txt")),
    }[where]
    (root / "link.txt").symlink_to(secret)
    run = work_one(settings, enqueue_one(settings, one_run_spec(source)))
    assert run.status == RunStatus.failed and run.attempts == 1  # permanent: not retried
    assert run.corpus_fingerprint is None and run.error is not None
    assert "outside the data roots" in run.error and "MUPREDICT_DATA_DIRS" in run.error
    assert "tokens" not in run.error and "exist" not in run.error  # no size, no existence
    assert str(root) not in run.error.replace(source, "") and "\n" not in run.error  # no root, no traceback


def test_the_worker_uses_its_own_roots_not_the_apis(settings: Settings, root: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "corpus.txt").write_bytes(TEXT)
    run_id = enqueue_one(settings, one_run_spec(str(other / "corpus.txt")))  # accepted by a permissive API
    refused = work_one(settings, run_id)
    assert refused.status == RunStatus.failed and "outside the data roots" in (refused.error or "")
    trusting = settings.model_copy(update={"data_dirs": [str(other)]})
    run_id = enqueue_one(trusting, one_run_spec(str(other)))
    assert work_one(trusting, run_id).status == RunStatus.succeeded


def test_a_folder_past_the_byte_cap_fails_at_once(settings: Settings, root: Path) -> None:
    (root / "big").mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (root / "big" / name).write_bytes(TEXT)
    capped = settings.model_copy(update={"max_corpus_bytes": 2 * len(TEXT)})
    run = work_one(capped, enqueue_one(capped, one_run_spec(str(root / "big"))))
    assert run.status == RunStatus.failed and run.attempts == 1
    assert run.error is not None and "MUPREDICT_MAX_CORPUS_BYTES" in run.error


def test_a_stored_error_is_one_line_without_server_paths(
    settings: Settings, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = str(root / "corpus.txt")

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"cannot map /opt/venv/lib/torch/x.so\nwhile reading '{source}' (see /var/log/w)")

    monkeypatch.setattr("trainer.train", crash)
    run = work_one(settings, enqueue_one(settings, one_run_spec(source)))
    assert run.status == RunStatus.queued  # an unknown error is still retried
    assert run.error == (
        f"RuntimeError: cannot map <server path> while reading '{source}' (see <server path>)"
    )


def test_stored_error_keeps_the_users_source_and_harmless_slashes() -> None:
    from app.run_errors import stored_error  # here, so the other tests run (and fail) on the code before it

    error = CorpusError(
        "dataset source '/data/c' holds 3/4 of http://x.org/a and /data/c/d.txt, not /data/cc"
    )
    assert stored_error(error, "/data/c/") == (
        "dataset source '/data/c' holds 3/4 of http://x.org/a and /data/c/d.txt, not <server path>"
    )
    assert "<server path>" in stored_error(OSError(2, "No such file", "/home/me/x"), "relative.txt")
