"""Shared fixtures: one torch thread, an isolated corpus cache, the built-in corpus loaded once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from trainer import Corpus, load_corpus


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    """The small models here gain nothing from threads, and on a shared 2-core machine several
    threads per test process spin against each other (up to 5× slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def corpus_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tokenized corpora go to a temporary folder, never the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        # The trainer's own default (it reads no environment); workers pass their settings' folder.
        patch.setattr("trainer.data.DEFAULT_CACHE_DIR", tmp_path_factory.mktemp("cache"))
        patch.setenv("MUPREDICT_CACHE_DIR", str(tmp_path_factory.mktemp("cli-cache")))  # `mupredict train`
        yield


@pytest.fixture(scope="session")
def builtin_corpus(corpus_cache: None) -> Corpus:
    return load_corpus("builtin")
