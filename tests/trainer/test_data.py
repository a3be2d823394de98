"""Corpora: the built-in default, text files and folders, .bin token files, BPE, clear errors; the data
roots and caps a worker passes in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer import Corpus, CorpusAccess, CorpusError, DatasetSpec, load_corpus
from trainer.data import SourceNotAllowed

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


def test_data_roots_bound_every_source(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret " * 100)
    (root / "ok.txt").write_text("fine " * 100)
    access = CorpusAccess(roots=(root,))
    assert load_corpus(str(root / "ok.txt"), access).description == str(root / "ok.txt")
    (root / "link.txt").symlink_to(outside / "secret.txt")
    for source in (
        outside / "secret.txt",
        outside / "missing.txt",
        root / ".." / "outside",
        root / "link.txt",
    ):
        with pytest.raises(SourceNotAllowed, match="outside the data roots") as refused:
            load_corpus(str(source), access)
        assert str(root) not in str(refused.value).replace(str(source), "")  # no root, no existence
    with pytest.raises(SourceNotAllowed, match="holds a link that leads outside"):
        load_corpus(str(root), access)  # the folder holds link.txt
    with pytest.raises(SourceNotAllowed, match="outside the data roots"):
        load_corpus("builtin", CorpusAccess(roots=(root,), allow_builtin=False))


def test_corpus_caps_fail_instead_of_cutting(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    for i in range(3):
        (folder / "sub" / f"{i}.txt").write_text("x" * 1000)
    (folder / ".git").mkdir()
    for i in range(50):
        (folder / ".git" / f"{i}").write_text("hidden")  # hidden folders are neither walked nor counted
    assert len(load_corpus(str(folder), CorpusAccess(max_bytes=3000, max_files=4)).train) > 2000
    with pytest.raises(CorpusError, match=r"more than 2,999 bytes.*MUPREDICT_MAX_CORPUS_BYTES"):
        load_corpus(str(folder), CorpusAccess(max_bytes=2999))
    with pytest.raises(CorpusError, match=r"more than 3 files and folders.*MUPREDICT_MAX_CORPUS_FILES"):
        load_corpus(str(folder), CorpusAccess(max_files=3))
    with pytest.raises(CorpusError, match="more than 999 bytes"):
        load_corpus(str(folder / "sub" / "0.txt"), CorpusAccess(max_bytes=999))
    tokens = tmp_path / "tokens.bin"
    np.arange(1000, dtype=np.uint16).tofile(tokens)
    bin_spec = DatasetSpec(source=str(tokens), tokenizer="pretokenized", vocab_size=1000)
    with pytest.raises(CorpusError, match="more than 1,999 bytes"):
        load_corpus(bin_spec, CorpusAccess(max_bytes=1999))
