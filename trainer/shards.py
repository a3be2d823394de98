"""Prepared corpora, read side: the manifest, its checks, and token shards read as one sequence.

A prepared corpus (written once by trainer/prepare.py, `mupredict data prepare`) is a folder holding
`manifest.json` and a subfolder of raw token shards (uint16, or uint32 past 65,536 tokens), one
stream for training and one for validation, split by document. The manifest names the tokenizer (and
the SHA-256 of its file), every shard's size and SHA-256, the documents and the UTF-8 bytes behind
the tokens, and a fingerprint over all of it: the fingerprint a run stores is the corpus's identity.

Loading checks every shard against the manifest (size, then SHA-256: about a second per GB), so a
truncated or altered shard fails the run with the file's name instead of training on other data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
FORMAT = "mupredict-prepared-v1"
HASH_CHUNK = 16 * 1024 * 1024


class PreparedCorpusError(ValueError):
    """A prepared corpus is missing, incomplete or altered; the message names the file and the fix."""


@dataclass(frozen=True)
class Shard:
    file: str  # relative to the corpus folder
    split: str  # "train" or "val"
    tokens: int
    documents: int
    sha256: str


@dataclass(frozen=True)
class TokenizerInfo:
    kind: str  # "byte", "tokenizer.json" or "bpe" (trained on the source)
    name: str  # what the user gave: "byte", a file name, "bpe:4096"
    sha256: str | None  # of the tokenizer file written or read (None for the byte tokenizer)
    vocab_size: int

    @property
    def identity(self) -> str:
        """What a run records: the tokenizer and, for a file, the start of its hash."""
        return self.name if self.sha256 is None else f"{self.name} (sha256 {self.sha256[:12]})"


@dataclass(frozen=True)
class Manifest:
    format: str
    tokenizer: TokenizerInfo
    dtype: str  # "uint16" or "uint32"
    val_fraction: float
    shards: list[Shard]
    documents: dict[str, int]  # per split
    tokens: dict[str, int]  # per split
    text_bytes: dict[str, int]  # UTF-8 bytes per split, for bits per byte
    input_fingerprint: str  # the source files, the tokenizer and the options: a re-run's no-op test
    fingerprint: str  # over everything above
    # The documents and their split, whatever the tokenizer (None in manifests written before it):
    # corpora prepared from one source share it, so their losses compare in bits per byte.
    text_fingerprint: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @property
    def bytes_per_token(self) -> float:
        return sum(self.text_bytes.values()) / max(1, sum(self.tokens.values()))

    @property
    def val_bytes_per_token(self) -> float:
        """UTF-8 bytes per token of the validation split: the loss per token over it, divided by this
        and by ln 2, is its loss in bits per byte."""
        return self.text_bytes["val"] / max(1, self.tokens["val"])


def fingerprint_of(fields: dict[str, Any]) -> str:
    """The corpus fingerprint: SHA-256 over the manifest's canonical JSON without the fingerprint."""
    body = {key: value for key, value in fields.items() if key != "fingerprint"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def read_manifest(folder: Path) -> Manifest:
    """The manifest of the prepared corpus in `folder`, its fingerprint checked (not yet its shards)."""
    path = folder / MANIFEST
    if not path.is_file():
        raise PreparedCorpusError(
            f"{folder} holds no {MANIFEST}: prepare the corpus first "
            f"(mupredict data prepare SOURCE --out {folder})"
        )
    try:
        raw = json.loads(path.read_text())
        manifest = Manifest(
            **{
                **raw,
                "tokenizer": TokenizerInfo(**raw["tokenizer"]),
                "shards": [Shard(**shard) for shard in raw["shards"]],
            }
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise PreparedCorpusError(
            f"{path} is not a prepared-corpus manifest ({exc}): prepare it again"
        ) from exc
    if manifest.format != FORMAT:
        raise PreparedCorpusError(f"{path} has format {manifest.format!r}, not {FORMAT!r}: prepare it again")
    if fingerprint_of(raw) != manifest.fingerprint:
        raise PreparedCorpusError(
            f"{path} was edited after it was written (its fingerprint differs): prepare it again"
        )
    return manifest


def check_shards(folder: Path, manifest: Manifest) -> None:
    """Every shard present, of its size, with its SHA-256; else an error naming the first."""
    itemsize = np.dtype(manifest.dtype).itemsize
    for shard in manifest.shards:
        path = folder / shard.file
        fix = f"prepare the corpus again (mupredict data prepare … --out {folder})"
        if not path.is_file():
            raise PreparedCorpusError(f"shard {path} is missing: {fix}")
        if path.stat().st_size != shard.tokens * itemsize:
            raise PreparedCorpusError(
                f"shard {path} holds {path.stat().st_size} bytes, not the {shard.tokens * itemsize} its "
                f"manifest records (truncated or replaced): {fix}"
            )
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != shard.sha256:
            raise PreparedCorpusError(f"shard {path} differs from its manifest's SHA-256 (altered): {fix}")


class ShardedTokens:
    """Several memory-mapped token shards read as one sequence: `len()` and `tokens[a:b]`, as a NumPy
    array would answer them (a slice across a shard boundary is joined), so trainer.data's sampling
    and validation windows work on it unchanged."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self._arrays = [a for a in arrays if len(a)]
        self._starts = np.cumsum([0] + [len(a) for a in self._arrays])
        self.dtype = self._arrays[0].dtype if self._arrays else np.dtype(np.uint16)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("ShardedTokens supports contiguous slices only")
        start, stop, _ = index.indices(len(self))
        if stop <= start:
            return np.empty(0, dtype=self.dtype)
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        parts, at = [], start
        for k in range(first, len(self._arrays)):
            if at >= stop:
                break
            offset = at - int(self._starts[k])
            take = min(stop, int(self._starts[k + 1])) - at
            parts.append(self._arrays[k][offset : offset + take])
            at += take
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def open_split(folder: Path, manifest: Manifest, split: str) -> ShardedTokens:
    shards = [s for s in manifest.shards if s.split == split]
    return ShardedTokens([np.memmap(folder / s.file, dtype=manifest.dtype, mode="r") for s in shards])
