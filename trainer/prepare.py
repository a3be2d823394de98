"""Prepared corpora, write side: tokenize a source once into shards and a manifest (trainer/shards.py).

    prepare(Path("corpus/"), Path("prepared/"), "gpt2/tokenizer.json")

Sources: a text file (one document), a folder (every non-hidden file, recursively, each by its kind),
a `.jsonl` file (one document per line, the `text_field` of each object) or a `.parquet` file (the
`text_field` column; needs pyarrow). Tokenizers: "byte" (256 tokens), the path of a `tokenizer.json`
(the `tokenizers` library's format: GPT-2, Llama, Mistral and the other published files), or
"bpe:V" (a byte-level BPE of V tokens trained on the source first, as the train-time 'bpe' is).

Streaming: documents are read, tokenized in batches (the `tokenizers` library encodes a batch on all
cores) and appended to the current shard, so memory stays bounded by one shard whatever the source's
size. Each document goes to training or validation by its own hash, so the split does not depend on
the order files are listed in. uint16 while the vocabulary fits, uint32 past 65,536 tokens.

Atomic and idempotent: one `prepare` at a time holds the folder's lock; it writes its shards into a
new subfolder named by its run, then the manifest by rename, then removes older subfolders. A reader
therefore sees the old corpus or the new one, never a manifest that points at half-written shards; an
interrupted run leaves an unreferenced subfolder that the next run removes. A run whose input
(files, sizes, modification times, tokenizer, options) matches the manifest's does nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from trainer.data import bpe_trainer, new_bpe_tokenizer
from trainer.shards import FORMAT, MANIFEST, Manifest, Shard, TokenizerInfo, fingerprint_of, read_manifest
from trainer.spec import BYTE_VOCAB_SIZE

DEFAULT_SHARD_TOKENS = 1 << 25  # 32M tokens: 64 MB (uint16) or 128 MB (uint32) of memory while writing
DEFAULT_VAL_FRACTION = 0.01
BATCH_BYTES = 4 * 1024 * 1024  # text handed to the tokenizer at once
LOCK = ".prepare.lock"
UINT16_LIMIT = 1 << 16

Progress = Callable[[int, int], None]  # (bytes read so far, total bytes of the source files)


class PrepareError(ValueError):
    """The source or the tokenizer cannot be prepared; the message says why and what to do."""


@dataclass(frozen=True)
class _Doc:
    text: str
    size: int  # UTF-8 bytes


def source_files(source: Path) -> list[Path]:
    """The files a source reads, in a stable order (hidden files and folders left out)."""
    if not source.exists():
        raise PrepareError(
            f"{source} does not exist: give a text, .jsonl or .parquet file, or a folder of them"
        )
    if source.is_file():
        return [source]
    files = []
    for parent, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [Path(parent) / n for n in sorted(names) if not n.startswith(".")]
    if not files:
        raise PrepareError(f"{source} holds no files: point it at text, .jsonl or .parquet files")
    return files


def _documents(files: list[Path], text_field: str, progress: Progress | None) -> Iterator[_Doc]:
    total, done = sum(f.stat().st_size for f in files), 0
    for file in files:
        suffix = file.suffix.lower()
        if suffix == ".jsonl":
            with file.open("rb") as handle:
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        yield _doc(_json_text(line, text_field, file, number))
        elif suffix == ".parquet":
            yield from (_doc(text) for text in _parquet_texts(file, text_field))
        else:
            data = file.read_bytes()
            if b"\0" not in data[:8192]:  # a NUL byte marks a binary file: not text
                yield _Doc(data.decode("utf-8", errors="replace"), len(data))
        done += file.stat().st_size
        if progress is not None:
            progress(done, total)


def _doc(text: str) -> _Doc:
    return _Doc(text, len(text.encode("utf-8", errors="replace")))


def _json_text(line: bytes, field: str, file: Path, number: int) -> str:
    try:
        value = json.loads(line)[field]
    except (ValueError, KeyError, TypeError) as exc:
        raise PrepareError(
            f"{file}, line {number}: not a JSON object with a {field!r} field ({exc}): fix the line or pass "
            "--text-field with the field that holds the text"
        ) from exc
    if not isinstance(value, str):
        raise PrepareError(f"{file}, line {number}: field {field!r} is not a string")
    return value


def _parquet_texts(file: Path, field: str) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise PrepareError(f"{file}: reading Parquet needs pyarrow (pip install 'mupredict[data]')") from None
    reader = pq.ParquetFile(file)
    if field not in reader.schema_arrow.names:
        raise PrepareError(
            f"{file} has no column {field!r} (columns: {', '.join(reader.schema_arrow.names)})"
        )
    for batch in reader.iter_batches(columns=[field], batch_size=1024):
        yield from (text for text in batch.column(0).to_pylist() if text)


def _digest(doc: _Doc) -> bytes:
    return hashlib.sha256(doc.text.encode("utf-8", errors="replace")).digest()


def _split(digest: bytes, val_fraction: float) -> str:
    """A document's split, by the hash of its own content (_digest): stable under any listing order."""
    return "val" if int.from_bytes(digest[:8], "little") < val_fraction * 2**64 else "train"


def _tokenizer(
    name: str, files: list[Path], text_field: str, work: Path
) -> tuple[Tokenizer | None, TokenizerInfo]:
    """The tokenizer a name asks for (None: bytes) and how the manifest records it."""
    if name == "byte":
        return None, TokenizerInfo("byte", "byte", None, BYTE_VOCAB_SIZE)
    if name.startswith("bpe:"):
        try:
            vocab = int(name[4:])
        except ValueError:
            raise PrepareError(
                f"tokenizer {name!r}: write bpe:V with V the vocabulary size, e.g. bpe:8192"
            ) from None
        if not BYTE_VOCAB_SIZE < vocab <= UINT16_LIMIT:
            raise PrepareError(f"tokenizer {name!r}: a trained BPE needs 257 to 65536 tokens")
        tokenizer = new_bpe_tokenizer()
        tokenizer.train_from_iterator(
            (d.text for d in _documents(files, text_field, None)), bpe_trainer(vocab)
        )
        saved = work / "tokenizer.json"
        tokenizer.save(str(saved))
        return tokenizer, TokenizerInfo("bpe", name, _sha256(saved), tokenizer.get_vocab_size())
    path = Path(name).expanduser()
    if not path.is_file():
        raise PrepareError(
            f"tokenizer {name!r} is neither 'byte', 'bpe:V' nor a tokenizer.json file: give the path of a "
            "published tokenizer.json (GPT-2, Llama, Mistral …)"
        )
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises its own exception type
        raise PrepareError(f"{path} is not a tokenizer.json the tokenizers library reads ({exc})") from exc
    shutil.copyfile(path, work / "tokenizer.json")  # kept with the shards it produced
    return tokenizer, TokenizerInfo("tokenizer.json", path.name, _sha256(path), tokenizer.get_vocab_size())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _input_fingerprint(files: list[Path], source: Path, options: dict[str, object], tokenizer: str) -> str:
    digest = hashlib.sha256(json.dumps({"format": FORMAT, **options}, sort_keys=True).encode())
    named = Path(tokenizer).expanduser()
    digest.update(_sha256(named).encode() if named.is_file() else tokenizer.encode())
    for file in files:
        info = file.stat()
        relative = file.relative_to(source).as_posix() if source.is_dir() else file.name
        digest.update(f"{relative}|{info.st_size}|{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class _ShardWriter:
    """Appends one split's tokens to shards of at most `shard_tokens`, hashing as it writes."""

    def __init__(self, folder: Path, prefix: str, split: str, dtype: str, shard_tokens: int) -> None:
        self.folder, self.prefix, self.split, self.dtype = folder, prefix, split, dtype
        self.shard_tokens = shard_tokens
        self.shards: list[Shard] = []
        self._buffer: list[np.ndarray] = []
        self._buffered = self._documents = 0

    def add(self, ids: np.ndarray) -> None:
        self._buffer.append(ids.astype(self.dtype, copy=False))
        self._buffered += len(ids)
        self._documents += 1
        if self._buffered >= self.shard_tokens:
            self.flush()

    def flush(self) -> None:
        if not self._buffered:
            return
        tokens = np.concatenate(self._buffer)
        name = f"{self.prefix}/{self.split}_{len(self.shards):05d}.bin"
        with (self.folder / name).open("wb") as file:
            tokens.tofile(file)
            file.flush()
            os.fsync(file.fileno())  # on disk before the manifest that names it
        digest = hashlib.sha256(tokens.tobytes()).hexdigest()
        self.shards.append(Shard(name, self.split, len(tokens), self._documents, digest))
        self._buffer, self._buffered, self._documents = [], 0, 0


def prepare(
    source: Path,
    out: Path,
    tokenizer: str = "byte",
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    text_field: str = "text",
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    progress: Progress | None = None,
) -> tuple[Manifest, bool]:
    """Prepare `source` into `out`; returns the manifest and whether anything was written (False: the
    manifest already described this input, and nothing was done)."""
    if not 0 < val_fraction < 0.5:
        raise PrepareError(f"val_fraction must lie in (0, 0.5), not {val_fraction}")
    if shard_tokens < 1:
        raise PrepareError(f"shard_tokens must be positive, not {shard_tokens}")
    source = source.expanduser().resolve()
    files = source_files(source)
    out.mkdir(parents=True, exist_ok=True)
    options = {"val_fraction": val_fraction, "text_field": text_field, "shard_tokens": shard_tokens}
    with (out / LOCK).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one prepare per folder; a second waits, then finds it done
        wanted = _input_fingerprint(files, source, options, tokenizer)
        existing = _current(out)
        # A manifest from before the text fingerprint is written again, so that it gains one.
        if existing is not None and existing.input_fingerprint == wanted and existing.text_fingerprint:
            return existing, False
        prefix = f"shards-{uuid.uuid4().hex[:12]}"
        work = out / prefix
        work.mkdir()
        try:
            manifest = _write(
                files, work, prefix, tokenizer, text_field, val_fraction, shard_tokens, wanted, progress
            )
            _write_manifest(out, manifest)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        for old in out.glob("shards-*"):  # older corpora and interrupted runs: nothing points at them now
            if old.name != prefix:
                shutil.rmtree(old, ignore_errors=True)
    return manifest, True


def _current(out: Path) -> Manifest | None:
    try:
        return read_manifest(out) if (out / MANIFEST).exists() else None
    except ValueError:
        return None  # an unreadable manifest is replaced


def _write(
    files: list[Path],
    work: Path,
    prefix: str,
    tokenizer_name: str,
    text_field: str,
    val_fraction: float,
    shard_tokens: int,
    input_fingerprint: str,
    progress: Progress | None,
) -> Manifest:
    tokenizer, info = _tokenizer(tokenizer_name, files, text_field, work)
    dtype = "uint16" if info.vocab_size <= UINT16_LIMIT else "uint32"
    writers = {
        split: _ShardWriter(work.parent, prefix, split, dtype, shard_tokens) for split in ("train", "val")
    }
    text_bytes = {"train": 0, "val": 0}
    # The text behind the tokens, whatever the tokenizer: every document's hash and split, in order.
    # Two corpora prepared from one source with other tokenizers share it, so their losses compare in
    # bits per byte (the manifest's text_fingerprint).
    text = hashlib.sha256(f"{FORMAT}|val={val_fraction}".encode())
    batch: list[_Doc] = []

    def encode(docs: list[_Doc]) -> None:
        if tokenizer is None:
            encoded = [np.frombuffer(d.text.encode("utf-8", errors="replace"), dtype=np.uint8) for d in docs]
        else:
            encoded = [
                np.asarray(e.ids, dtype=np.int64) for e in tokenizer.encode_batch([d.text for d in docs])
            ]
        for doc, ids in zip(docs, encoded, strict=True):
            if len(ids):
                digest = _digest(doc)
                split = _split(digest, val_fraction)
                writers[split].add(ids)
                text_bytes[split] += doc.size
                text.update(digest + split.encode())

    size = 0
    for doc in _documents(files, text_field, progress):
        batch.append(doc)
        size += doc.size
        if size >= BATCH_BYTES:
            encode(batch)
            batch, size = [], 0
    encode(batch)
    for writer in writers.values():
        writer.flush()
    shards = writers["train"].shards + writers["val"].shards
    tokens = {split: sum(s.tokens for s in w.shards) for split, w in writers.items()}
    if not tokens["train"] or not tokens["val"]:
        raise PrepareError(
            f"the source gave {tokens['train']} training and {tokens['val']} validation tokens: use a larger "
            "source (validation takes whole documents) or a larger --val-fraction"
        )
    fields = {
        "format": FORMAT,
        "tokenizer": asdict(info),
        "dtype": dtype,
        "val_fraction": val_fraction,
        "shards": [asdict(s) for s in shards],
        "documents": {split: sum(s.documents for s in w.shards) for split, w in writers.items()},
        "tokens": tokens,
        "text_bytes": text_bytes,
        "text_fingerprint": text.hexdigest(),
        "input_fingerprint": input_fingerprint,
    }
    return Manifest(
        **{**fields, "tokenizer": info, "shards": shards},  # type: ignore[arg-type]
        fingerprint=fingerprint_of(fields),
    )


def _write_manifest(out: Path, manifest: Manifest) -> None:
    handle, temporary = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=out)
    try:
        with os.fdopen(handle, "w") as file:
            file.write(manifest.to_json())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, out / MANIFEST)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
