"""Corpora: the built-in default, text files and folders, .bin token files, BPE, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer import Corpus, CorpusError, DatasetSpec, load_corpus

TEXT = "def add(a, b):\n    return a + b\n\n" * 200


def test_builtin_corpus_is_real_text_split_deterministically(builtin_corpus: Corpus) -> None:
    assert "stdlib" in builtin_corpus.description
    assert len(builtin_corpus.train) > 1_000_000  # megabytes of real Python source
    sample = bytes(builtin_corpus.train[:4000].astype(np.uint8))
    assert b"def " in sample or b"import " in sample
    total = len(builtin_corpus.train) + len(builtin_corpus.val)
    assert len(builtin_corpus.val) == int(total * 0.05)
    again = load_corpus("builtin")  # from the cache this time
    assert again.fingerprint == builtin_corpus.fingerprint
    np.testing.assert_array_equal(again.val, builtin_corpus.val)
    assert len(builtin_corpus.fingerprint) == 64


def test_fingerprint_follows_the_split(builtin_corpus: Corpus) -> None:
    other = load_corpus(DatasetSpec(source="builtin", val_fraction=0.1))
    assert other.fingerprint != builtin_corpus.fingerprint
    assert len(other.val) > len(builtin_corpus.val)


def test_batches_are_next_token_windows_and_validation_is_fixed(builtin_corpus: Corpus) -> None:
    x, y = builtin_corpus.sample_batch(np.random.default_rng(0), 4, 32)
    assert x.shape == y.shape == (4, 32) and x.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    x2, _ = builtin_corpus.sample_batch(np.random.default_rng(0), 4, 32)
    np.testing.assert_array_equal(x, x2)
    first = [b[0] for b in builtin_corpus.val_batches(8, 32, 1024)]
    second = [b[0] for b in builtin_corpus.val_batches(8, 32, 1024)]
    assert sum(len(b) for b in first) == 1024 // 32
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_text_file_and_folder(tmp_path: Path) -> None:
    file = tmp_path / "one.txt"
    file.write_text(TEXT)
    single = load_corpus(str(file))
    assert len(single.train) + len(single.val) == len(TEXT.encode())
    assert single.vocab_size == 256

    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text(TEXT)
    (folder / "sub" / "b.py").write_text(TEXT.upper())
    (folder / "blob.dat").write_bytes(b"\0\1\2" * 100)  # binary: skipped
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")  # hidden: skipped
    corpus = load_corpus(str(folder))
    assert len(corpus.train) + len(corpus.val) == 2 * len(TEXT.encode())
    (folder / "c.txt").write_text("more")
    assert load_corpus(str(folder)).fingerprint != corpus.fingerprint


def test_pretokenized_bin(tmp_path: Path) -> None:
    tokens = np.arange(10_000, dtype=np.uint16) % 1000
    path = tmp_path / "tokens.bin"
    tokens.tofile(path)
    corpus = load_corpus(DatasetSpec(source=str(path), tokenizer="pretokenized", vocab_size=1000))
    np.testing.assert_array_equal(np.concatenate([corpus.train, corpus.val]), tokens)
    assert corpus.vocab_size == 1000
    with pytest.raises(CorpusError, match=r"set dataset\.vocab_size to at least 1000"):
        load_corpus(DatasetSpec(source=str(path), tokenizer="pretokenized", vocab_size=500))
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\1\2\3")
    with pytest.raises(CorpusError, match="not a uint16 token file"):
        load_corpus(DatasetSpec(source=str(odd), tokenizer="pretokenized", vocab_size=1000))


def test_bpe_is_trained_locally_and_cached(tmp_path: Path) -> None:
    file = tmp_path / "text.txt"
    file.write_text(TEXT + "class Point:\n    x: int\n    y: int\n" * 100)
    spec = DatasetSpec(source=str(file), tokenizer="bpe", vocab_size=300)
    corpus = load_corpus(spec)
    n_tokens = len(corpus.train) + len(corpus.val)
    assert 0 < n_tokens < len(file.read_bytes())  # merges make it shorter than the bytes
    assert int(corpus.train.max()) < 300 and corpus.vocab_size == 300
    assert corpus.fingerprint != load_corpus(str(file)).fingerprint  # the tokenizer is in it
    assert load_corpus(spec).fingerprint == corpus.fingerprint


def test_missing_or_empty_sources_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(str(tmp_path / "nowhere.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(CorpusError, match="holds no text"):
        load_corpus(str(empty))
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(CorpusError, match="holds no text"):
        load_corpus(str(tmp_path / "empty_folder"))
    short = tmp_path / "short.txt"
    short.write_text("x" * 200)
    with pytest.raises(CorpusError, match="shorter context"):
        load_corpus(str(short)).check_context(128)
