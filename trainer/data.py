"""Corpora: the built-in default, local text, pre-tokenized .bin; tokenizers; deterministic batches.

Nothing is downloaded. The built-in corpus is real text present wherever Python is: the standard
library's own `.py` sources, files in sorted path order, whole files up to BUILTIN_MAX_BYTES. Its
content, and so its fingerprint, follows the Python version, which the description names (not the
folder: a server path).

Split: documents (files) are ordered by the hash of their content, concatenated, and the last
`val_fraction` of the tokens is held out. Hash order makes the held-out part a deterministic random
sample of files instead of the alphabetically last package; a single text file is split at its tail.
A .bin file is split at its tail, as views of one memmap.

Access: a worker reads only what its operator allows. `CorpusAccess` carries the data roots a source must
resolve inside (after `Path.resolve()`, so `..` and symlinks cannot lead out; every file of a folder is
checked too), whether "builtin" may be used, and caps on the bytes read and the folder entries walked. A
corpus past a cap is refused with a CorpusError, never silently cut: a cut corpus would train on text the
user did not ask for. The caller (app/worker.py) fills it in from its settings; the default reads any path
(the local CLI, the tests) under the same caps. Error messages name the source as the user gave it, never a
resolved server path.

The fingerprint is sha256 over a format version, the tokenizer id, the split and every byte used, so
it names exactly the train and validation tokens. Tokenized arrays (and a trained BPE) are cached under
$MUPREDICT_CACHE_DIR (default ~/.cache/mupredict) by fingerprint; repeated runs skip tokenization.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from trainer.shards import PreparedCorpusError, ShardedTokens, check_shards, open_split, read_manifest
from trainer.spec import DatasetSpec

BUILTIN_MAX_BYTES = 8 * 1024 * 1024  # ~8 MB of stdlib sources: 2M+ byte tokens, loads in well under 1 s
FORMAT_VERSION = "mupredict-corpus-v1"  # bump when the split or tokenization changes
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}
_BINARY_PROBE_BYTES = 8192
DEFAULT_MAX_CORPUS_BYTES = 2 * 1024**3  # bytes one corpus may read (text is held in memory to tokenize)
DEFAULT_MAX_CORPUS_FILES = 100_000  # files and folders one folder source may walk
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "mupredict"  # the settings' default too (app.settings)


class CorpusError(ValueError):
    """A data source is missing, empty or unusable; the message names the fix."""


class SourceNotAllowed(CorpusError):
    """A source outside the data roots. The message never says whether the path exists."""


@dataclass(frozen=True)
class CorpusAccess:
    """What a corpus may be read from, and how much of it (the worker fills this in from its settings)."""

    roots: tuple[Path, ...] | None = None  # folders a source must resolve inside; None: any path
    allow_builtin: bool = True  # whether the source "builtin" (the stdlib sources) may be used
    max_bytes: int = DEFAULT_MAX_CORPUS_BYTES  # most bytes read for one corpus (text or .bin)
    max_files: int = DEFAULT_MAX_CORPUS_FILES  # most files and folders walked under a folder source
    # Where tokenized corpora are kept, keyed by fingerprint. The trainer reads no environment: a worker
    # passes its settings' MUPREDICT_CACHE_DIR (app.limits.corpus_access), so a .env file applies too.
    cache_dir: Path = field(default_factory=lambda: DEFAULT_CACHE_DIR)

    def __post_init__(self) -> None:
        if self.roots is not None:  # resolved once: every file of a folder source is checked against them
            resolved = (resolve_source(str(root)) for root in self.roots)
            object.__setattr__(self, "roots", tuple(root for root in resolved if root is not None))


def resolve_source(source: str) -> Path | None:
    """The absolute path a source names (`~` expanded, relative to the working directory, `..` and
    symlinks resolved), or None where it cannot be resolved (a symlink loop, an unknown `~user`)."""
    try:
        return Path(source).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def is_inside(path: Path | None, roots: Iterable[Path]) -> bool:
    """Whether a resolved path lies in (or is) one of the (resolved) roots."""
    return path is not None and any(path.is_relative_to(root) for root in roots)


def source_allowed(source: str, access: CorpusAccess) -> bool:
    """Whether `access` lets a corpus come from `source`: a check on the path's text and its symlinks
    only, so it answers the same for a missing path and an existing one."""
    if source == "builtin":
        return access.allow_builtin
    return access.roots is None or is_inside(resolve_source(source), access.roots)


@dataclass
class Corpus:
    """Token ids split into train and validation, with the provenance of both. A split is a NumPy
    array or, for a prepared corpus, its shards read as one (trainer.shards.ShardedTokens)."""

    train: np.ndarray | ShardedTokens
    val: np.ndarray | ShardedTokens
    vocab_size: int
    fingerprint: str
    description: str
    tokenizer: str = "byte"  # what produced the ids: stored with every run (trainer.RunResult)
    # Known for prepared corpora only (their manifest): the text behind the ids, and the validation
    # split's UTF-8 bytes per token, which turn a validation loss into bits per byte.
    text_fingerprint: str | None = None
    val_bytes_per_token: float | None = None

    def check_context(self, context_length: int) -> None:
        """Raise CorpusError unless both splits hold at least one window of context_length + 1."""
        for split, tokens in (("training", self.train), ("validation", self.val)):
            if len(tokens) < context_length + 1:
                raise CorpusError(
                    f"{self.description}: the {split} split has {len(tokens)} tokens, fewer than "
                    f"context_length + 1 = {context_length + 1}: use a larger source, a shorter context "
                    "or a larger dataset.val_fraction"
                )

    def sample_batch(
        self, rng: np.random.Generator, batch_size: int, context_length: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Random training windows: inputs and next-token targets, each (B, T) int64."""
        starts = rng.integers(0, len(self.train) - context_length, size=batch_size)
        return _windows(self.train, starts, context_length)

    def val_batches(
        self, batch_size: int, context_length: int, n_tokens: int
    ) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        """Fixed, evenly spaced validation windows (no randomness: every run sees the same ones)."""
        n_windows = max(1, min(n_tokens // context_length, len(self.val) // context_length))
        starts = np.linspace(0, len(self.val) - context_length - 1, n_windows).astype(np.int64)
        for i in range(0, n_windows, batch_size):
            yield _windows(self.val, starts[i : i + batch_size], context_length)


def _windows(
    tokens: np.ndarray | ShardedTokens, starts: np.ndarray, context_length: int
) -> tuple[np.ndarray, np.ndarray]:
    rows = np.stack([tokens[s : s + context_length + 1] for s in starts]).astype(np.int64)  # (B, T+1)
    return np.ascontiguousarray(rows[:, :-1]), np.ascontiguousarray(rows[:, 1:])


def load_corpus(dataset_ref: DatasetSpec | str, access: CorpusAccess | None = None) -> Corpus:
    """Load (from cache when possible) the corpus a DatasetSpec, or a bare source string, names.

    `access` limits where it may come from and how much is read (default: any path, default caps)."""
    spec = DatasetSpec(source=dataset_ref) if isinstance(dataset_ref, str) else dataset_ref
    access = access or CorpusAccess()
    assert spec.vocab_size is not None  # resolved by DatasetSpec
    if not source_allowed(spec.source, access):
        raise SourceNotAllowed(
            f"dataset source {spec.source!r} is outside the data roots this worker may read "
            "(MUPREDICT_DATA_DIRS): put the corpus under one of them, or use 'builtin'"
        )
    if spec.source == "builtin":
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        documents, description = builtin_documents(), f"builtin (Python {version} stdlib sources)"
    else:
        path = resolve_source(spec.source)
        if path is None or not path.exists():
            raise CorpusError(
                f"dataset source {spec.source!r} does not exist: give 'builtin', a text file, a folder of "
                "text files or a uint16 .bin file"
            )
        if spec.tokenizer == "pretokenized":
            return _load_bin(path, spec, access)
        if spec.tokenizer == "prepared":
            return _load_prepared(path, spec, access)
        documents, description = _text_documents(path, spec.source, access), spec.source
    if not any(documents):
        raise CorpusError(f"dataset source {spec.source!r} holds no text: point it at non-empty text files")
    documents.sort(key=lambda doc: hashlib.sha256(doc).digest())
    tokenizer_id = _tokenizer_id(spec)
    digest = hashlib.sha256(f"{FORMAT_VERSION}|{tokenizer_id}|val={spec.val_fraction}".encode())
    for doc in documents:
        digest.update(len(doc).to_bytes(8, "little"))
        digest.update(doc)
    fingerprint = digest.hexdigest()
    folder = access.cache_dir / "corpora" / fingerprint
    try:
        train = np.load(folder / "train.npy", mmap_mode="r")
        val = np.load(folder / "val.npy", mmap_mode="r")
    except (FileNotFoundError, ValueError):
        tokens = _tokenize(documents, spec, folder)
        n_val = max(1, int(len(tokens) * spec.val_fraction))
        train, val = tokens[:-n_val], tokens[-n_val:]
        _save_atomic(folder / "train.npy", train)
        _save_atomic(folder / "val.npy", val)
    return Corpus(train, val, spec.vocab_size, fingerprint, description, _tokenizer_id(spec))


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def builtin_documents() -> list[bytes]:
    """The standard library's .py files in sorted relative-path order, whole files up to the cap."""
    root = _stdlib_dir()
    paths = sorted(
        (p for p in root.rglob("*.py") if not _SKIP_DIRS.intersection(p.relative_to(root).parts)),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    documents, total = [], 0
    for path in paths:
        data = path.read_bytes()
        if total + len(data) > BUILTIN_MAX_BYTES:
            break
        documents.append(data)
        total += len(data)
    if not documents:
        raise CorpusError(
            "no Python standard-library sources on this machine: point dataset.source at a text file"
        )
    return documents


def _too_large(source: str, access: CorpusAccess) -> CorpusError:
    return CorpusError(
        f"dataset source {source!r} holds more than {access.max_bytes:,} bytes, the most a corpus may read "
        "here (MUPREDICT_MAX_CORPUS_BYTES): point it at a smaller file or folder"
    )


def _text_documents(path: Path, source: str, access: CorpusAccess) -> list[bytes]:
    """One file, or every non-hidden, non-binary regular file under a folder (recursive, symlinked
    folders not followed). Past access.max_bytes or access.max_files: a CorpusError, not a cut corpus.
    (The order read does not matter: documents are ordered by content hash afterwards.)"""
    files = [path] if path.is_file() else _walk(path, source, access)
    documents, total = [], 0
    for file in files:
        try:
            info = file.stat()
        except OSError:
            continue  # vanished or unreadable metadata: not part of the corpus
        if not stat.S_ISREG(info.st_mode):
            continue  # a FIFO or device would block or never end
        if total + info.st_size > access.max_bytes:
            raise _too_large(source, access)
        with file.open("rb") as handle:
            data = handle.read(access.max_bytes - total + 1)  # the file may have grown since stat()
        total += len(data)
        if total > access.max_bytes:
            raise _too_large(source, access)
        if b"\0" not in data[:_BINARY_PROBE_BYTES]:  # a NUL byte marks a binary file
            documents.append(data)
    return documents


def _walk(folder: Path, source: str, access: CorpusAccess) -> Iterator[Path]:
    """The non-hidden files under a folder, each resolved and checked against the data roots."""
    walked = 0
    for parent, dirs, names in os.walk(folder):  # symlinked folders are listed, not entered
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .git, .cache, ...
        walked += len(dirs) + len(names)
        if walked > access.max_files:
            raise CorpusError(
                f"dataset source {source!r} holds more than {access.max_files:,} files and folders, the "
                "most a corpus may walk here (MUPREDICT_MAX_CORPUS_FILES): point it at a smaller folder"
            )
        for name in names:
            if name.startswith("."):
                continue
            file = resolve_source(os.path.join(parent, name))
            if file is None or (access.roots is not None and not is_inside(file, access.roots)):
                raise SourceNotAllowed(
                    f"dataset source {source!r} holds a link that leads outside the data roots this worker "
                    "may read (MUPREDICT_DATA_DIRS): replace it with a copy of the file"
                )
            yield file


def _tokenizer_id(spec: DatasetSpec) -> str:
    if spec.tokenizer == "bpe":
        return f"bpe-bytelevel-{spec.vocab_size}-tokenizers{tokenizers.__version__}"
    return spec.tokenizer  # "byte"


def _tokenize(documents: list[bytes], spec: DatasetSpec, folder: Path) -> np.ndarray:
    if spec.tokenizer == "byte":
        return np.frombuffer(b"".join(documents), dtype=np.uint8).astype(np.uint16)
    assert spec.vocab_size is not None
    texts = [doc.decode("utf-8", errors="replace") for doc in documents]
    tokenizer = _train_bpe(texts, spec.vocab_size, folder / "tokenizer.json")
    ids = [enc.ids for enc in tokenizer.encode_batch(texts)]
    return np.fromiter((i for doc in ids for i in doc), dtype=np.uint16)


def new_bpe_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE: the train-time 'bpe' and `data prepare --tokenizer bpe:V` both."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def bpe_trainer(vocab_size: int) -> trainers.BpeTrainer:
    return trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )


def _train_bpe(texts: list[str], vocab_size: int, path: Path) -> Tokenizer:
    """A byte-level BPE trained on the corpus itself (cached next to the tokens)."""
    if path.exists():
        return Tokenizer.from_file(str(path))
    tokenizer = new_bpe_tokenizer()
    tokenizer.train_from_iterator(texts, bpe_trainer(vocab_size))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tokenizer.save(str(tmp))
    os.replace(tmp, path)
    return tokenizer


def _save_atomic(path: Path, array: np.ndarray) -> None:
    """Write then rename, so concurrent workers never read a half-written cache file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy.tmp", delete=False) as tmp:
        np.save(tmp, np.ascontiguousarray(array))
    os.replace(tmp.name, path)


def _load_bin(path: Path, spec: DatasetSpec, access: CorpusAccess) -> Corpus:
    assert spec.vocab_size is not None
    size = path.stat().st_size
    if not path.is_file() or size < 2 or size % 2:
        raise CorpusError(
            f"dataset source {spec.source!r} is not a uint16 token file (size {size} bytes): write token ids "
            "with numpy's tofile() as uint16"
        )
    if size > access.max_bytes:
        raise _too_large(spec.source, access)
    tokens = np.memmap(path, dtype=np.uint16, mode="r")
    largest = int(tokens.max())
    if largest >= spec.vocab_size:
        raise CorpusError(
            f"dataset source {spec.source!r} holds token id {largest}, outside dataset.vocab_size "
            f"{spec.vocab_size}: set dataset.vocab_size to at least {largest + 1}"
        )
    digest = hashlib.sha256(
        f"{FORMAT_VERSION}|pretokenized-{spec.vocab_size}|val={spec.val_fraction}".encode()
    )
    with path.open("rb") as handle:
        while chunk := handle.read(16 * 1024 * 1024):
            digest.update(chunk)
    n_val = max(1, int(len(tokens) * spec.val_fraction))
    tokenizer = f"pretokenized-{spec.vocab_size} (unrecorded tokenizer)"
    return Corpus(
        tokens[:-n_val], tokens[-n_val:], spec.vocab_size, digest.hexdigest(), spec.source, tokenizer
    )


def _load_prepared(path: Path, spec: DatasetSpec, access: CorpusAccess) -> Corpus:
    """A corpus written by `mupredict data prepare`, checked against its manifest (trainer.shards)."""
    assert spec.vocab_size is not None
    if not path.is_dir():
        raise CorpusError(
            f"dataset source {spec.source!r} is not a prepared corpus folder: run mupredict data prepare"
        )
    try:
        manifest = read_manifest(path)
        shard_bytes = sum(s.tokens for s in manifest.shards) * np.dtype(manifest.dtype).itemsize
        if shard_bytes > access.max_bytes:
            raise _too_large(spec.source, access)
        check_shards(path, manifest)
    except PreparedCorpusError as exc:
        raise CorpusError(str(exc)) from exc
    if manifest.tokenizer.vocab_size != spec.vocab_size:
        raise CorpusError(
            f"dataset source {spec.source!r} was prepared with {manifest.tokenizer.identity}, a vocabulary "
            f"of {manifest.tokenizer.vocab_size}, but dataset.vocab_size is {spec.vocab_size}: set "
            f"dataset.vocab_size to {manifest.tokenizer.vocab_size}"
        )
    train, val = open_split(path, manifest, "train"), open_split(path, manifest, "val")
    return Corpus(
        train,
        val,
        spec.vocab_size,
        manifest.fingerprint,
        spec.source,
        manifest.tokenizer.identity,
        manifest.text_fingerprint,
        manifest.val_bytes_per_token if manifest.text_fingerprint else None,
    )
