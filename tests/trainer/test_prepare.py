"""Prepared corpora (issue 21): text → shards → batches round trip, uint32 ids past 65,535, the manifest
catching truncated, altered or mismatched data, idempotent and atomic preparation, and training on it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from tests.trainer.helpers import tiny_spec
from trainer import CorpusError, DatasetSpec, load_corpus, train
from trainer.prepare import MANIFEST, PrepareError, _digest, _ShardWriter, _split, prepare
from trainer.shards import read_manifest

TEXTS = [f"document {i}: " + " ".join(f"word{(i * 7 + k) % 50}" for k in range(200)) for i in range(60)]


def _source(tmp_path: Path) -> Path:
    folder = tmp_path / "source"
    folder.mkdir()
    for i, text in enumerate(TEXTS[:30]):
        (folder / f"doc{i:02d}.txt").write_text(text)
    with (folder / "rest.jsonl").open("w") as out:
        for text in TEXTS[30:]:
            out.write(json.dumps({"text": text, "id": 1}) + "\n")
    return folder


def _word_tokenizer(path: Path, vocab_size: int) -> Path:
    """A word-level tokenizer.json of `vocab_size` ids: word{k} is id k + 1, anything else 0."""
    vocab = {"[UNK]": 0} | {f"word{k}": k + 1 for k in range(vocab_size - 1)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.save(str(path))
    return path


def _split_texts(val_fraction: float) -> dict[str, list[str]]:
    """The documents of each split, in the order the source lists them (files, then .jsonl lines)."""
    from trainer.prepare import _doc

    out: dict[str, list[str]] = {"train": [], "val": []}
    for text in TEXTS:
        out[_split(_digest(_doc(text)), val_fraction)].append(text)
    return out


def test_bytes_round_trip_from_text_to_batches(tmp_path: Path) -> None:
    manifest, wrote = prepare(
        _source(tmp_path), tmp_path / "out", "byte", val_fraction=0.2, shard_tokens=5000
    )
    assert wrote and manifest.dtype == "uint16" and len(manifest.shards) > 2  # several shards per split
    corpus = load_corpus(DatasetSpec(source=str(tmp_path / "out"), tokenizer="prepared", vocab_size=256))
    texts = _split_texts(0.2)
    for split, tokens in (("train", corpus.train), ("val", corpus.val)):
        assert bytes(np.asarray(tokens[0 : len(tokens)], dtype=np.uint8)) == "".join(texts[split]).encode()
        assert manifest.documents[split] == len(texts[split])
    # A window across a shard boundary reads straight through it.
    x, y = corpus.sample_batch(np.random.default_rng(0), 64, 100)
    joined = "".join(texts["train"]).encode()
    for row_x, row_y in zip(x, y, strict=True):
        window = bytes(row_x.astype(np.uint8))
        assert window in joined and bytes(row_y[:-1].astype(np.uint8)) == window[1:]


def test_a_tokenizer_json_round_trips_and_ids_past_65535_are_uint32(tmp_path: Path) -> None:
    tokenizer = _word_tokenizer(tmp_path / "tokenizer.json", 70_000)
    folder = tmp_path / "big-vocab"
    folder.mkdir()
    for i in range(10):  # documents differ, so they split both ways
        (folder / f"{i}.txt").write_text(f"word{i % 2 + 1} word69998 word3 word65536 " * (100 + i))
    manifest, _ = prepare(folder, tmp_path / "out", str(tokenizer), val_fraction=0.3)
    assert manifest.dtype == "uint32" and manifest.tokenizer.vocab_size == 70_000
    corpus = load_corpus(DatasetSpec(source=str(tmp_path / "out"), tokenizer="prepared", vocab_size=70_000))
    ids = np.concatenate([corpus.train[0 : len(corpus.train)], corpus.val[0 : len(corpus.val)]])
    assert sorted(set(ids.tolist())) == [2, 3, 4, 65537, 69999]  # word k is id k + 1: no wrap at 2^16
    assert corpus.tokenizer == f"tokenizer.json (sha256 {manifest.tokenizer.sha256[:12]})"  # type: ignore[index]


def test_truncated_altered_and_edited_corpora_are_refused_by_name(tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest, _ = prepare(_source(tmp_path), out, "byte", val_fraction=0.2, shard_tokens=5000)
    dataset = DatasetSpec(source=str(out), tokenizer="prepared", vocab_size=256)
    shard = out / manifest.shards[1].file
    original = shard.read_bytes()
    shard.write_bytes(original[:-2])
    with pytest.raises(CorpusError, match=rf"shard {shard} holds .* \(truncated or replaced\)"):
        load_corpus(dataset)
    shard.write_bytes(bytes([original[0] ^ 1]) + original[1:])
    with pytest.raises(CorpusError, match=rf"shard {shard} differs from its manifest's SHA-256"):
        load_corpus(dataset)
    shard.write_bytes(original)
    load_corpus(dataset)  # intact again
    raw = json.loads((out / MANIFEST).read_text())
    raw["tokenizer"]["sha256"] = "0" * 64  # another tokenizer's hash, written over the manifest
    (out / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(CorpusError, match="edited after it was written"):
        load_corpus(dataset)


def test_a_spec_whose_vocabulary_differs_from_the_manifest_is_refused(tmp_path: Path) -> None:
    prepare(_source(tmp_path), tmp_path / "out", "byte", val_fraction=0.2)
    with pytest.raises(CorpusError, match=r"set dataset\.vocab_size to 256"):
        load_corpus(DatasetSpec(source=str(tmp_path / "out"), tokenizer="prepared", vocab_size=50257))


def test_preparing_again_is_a_no_op_and_a_changed_source_replaces_the_corpus(tmp_path: Path) -> None:
    source, out = _source(tmp_path), tmp_path / "out"
    first, wrote = prepare(source, out, "byte", val_fraction=0.2)
    stamp = (out / MANIFEST).stat().st_mtime_ns
    again, wrote_again = prepare(source, out, "byte", val_fraction=0.2)
    assert wrote and not wrote_again and again == first and (out / MANIFEST).stat().st_mtime_ns == stamp
    (source / "doc00.txt").write_text("a new first document " * 100)
    changed, wrote_changed = prepare(source, out, "byte", val_fraction=0.2)
    assert wrote_changed and changed.fingerprint != first.fingerprint
    assert [p.name for p in out.glob("shards-*")] == [
        changed.shards[0].file.split("/")[0]
    ]  # the old ones went


def test_an_interrupted_run_leaves_the_previous_corpus_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, out = _source(tmp_path), tmp_path / "out"
    before, _ = prepare(source, out, "byte", val_fraction=0.2, shard_tokens=5000)
    calls = {"n": 0}
    real_flush = _ShardWriter.flush

    def dying_flush(self: _ShardWriter) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # Ctrl-C halfway through
        real_flush(self)

    monkeypatch.setattr(_ShardWriter, "flush", dying_flush)
    with pytest.raises(KeyboardInterrupt):
        prepare(source, out, "bpe:300", val_fraction=0.2, shard_tokens=5000)
    assert read_manifest(out) == before  # still the old corpus, whole
    assert len(list(out.glob("shards-*"))) == 1  # and no half-written folder beside it
    load_corpus(DatasetSpec(source=str(out), tokenizer="prepared", vocab_size=256))


def test_concurrent_runs_into_one_folder_leave_one_valid_corpus(tmp_path: Path) -> None:
    source, out = _source(tmp_path), tmp_path / "out"
    results: list[bool] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(prepare(source, out, "byte", val_fraction=0.2, shard_tokens=5000)[1])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sorted(results) == [False, False, True]  # one wrote, the others found it done
    load_corpus(DatasetSpec(source=str(out), tokenizer="prepared", vocab_size=256))


def test_parquet_and_jsonl_fields_and_clear_errors(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": TEXTS, "n": list(range(len(TEXTS)))}), tmp_path / "docs.parquet")
    manifest, _ = prepare(
        tmp_path / "docs.parquet", tmp_path / "out", "byte", val_fraction=0.2, text_field="body"
    )
    assert sum(manifest.documents.values()) == len(TEXTS)
    assert sum(manifest.text_bytes.values()) == sum(len(t.encode()) for t in TEXTS)
    with pytest.raises(PrepareError, match="has no column 'text'"):
        prepare(tmp_path / "docs.parquet", tmp_path / "out2", "byte")
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\nnot json\n')
    with pytest.raises(PrepareError, match=r"bad\.jsonl, line 2: not a JSON object"):
        prepare(tmp_path / "bad.jsonl", tmp_path / "out3", "byte")
    with pytest.raises(PrepareError, match=r"neither 'byte', 'bpe:V' nor a tokenizer\.json"):
        prepare(tmp_path / "docs.parquet", tmp_path / "out4", "gpt2", text_field="body")


def test_a_proxy_trains_on_a_prepared_corpus_and_records_it(tmp_path: Path) -> None:
    tokenizer = _word_tokenizer(tmp_path / "tokenizer.json", 60)
    manifest, _ = prepare(_source(tmp_path), tmp_path / "out", str(tokenizer), val_fraction=0.2)
    spec = tiny_spec(dataset={"source": str(tmp_path / "out"), "tokenizer": "prepared", "vocab_size": 60})
    result = train(spec, 16, steps=5)
    assert result.status == "succeeded"
    assert (
        result.corpus_fingerprint == manifest.fingerprint and result.tokenizer == manifest.tokenizer.identity
    )
    assert result.text_fingerprint == manifest.text_fingerprint
    assert result.val_bytes_per_token == pytest.approx(manifest.text_bytes["val"] / manifest.tokens["val"])


def test_one_source_under_two_tokenizers_shares_its_text_fingerprint(tmp_path: Path) -> None:
    """Bits per byte compare losses across tokenizers only on the same text: the text fingerprint is
    the documents and their split, whatever tokenized them; the bytes per token are measured."""
    source = _source(tmp_path)
    by_bytes, _ = prepare(source, tmp_path / "bytes", "byte", val_fraction=0.2)
    by_words, _ = prepare(
        source, tmp_path / "words", str(_word_tokenizer(tmp_path / "t.json", 60)), val_fraction=0.2
    )
    assert by_bytes.fingerprint != by_words.fingerprint  # other token ids: other corpora
    assert by_bytes.text_fingerprint == by_words.text_fingerprint is not None
    assert by_bytes.text_bytes == by_words.text_bytes
    assert by_bytes.val_bytes_per_token == 1.0  # a byte tokenizer's token is one byte (ASCII text)
    val = _split_texts(0.2)["val"]  # one id a word (the word tokenizer splits on whitespace)
    assert by_words.val_bytes_per_token == sum(len(t.encode()) for t in val) / sum(
        len(t.split()) for t in val
    )
    other_split, _ = prepare(source, tmp_path / "other", "byte", val_fraction=0.3)
    assert other_split.text_fingerprint != by_bytes.text_fingerprint  # other validation documents
    (source / "doc00.txt").write_text("another text")
    edited, _ = prepare(source, tmp_path / "bytes", "byte", val_fraction=0.2)
    assert edited.text_fingerprint != by_bytes.text_fingerprint


def test_vocabularies_past_65536_need_a_prepared_corpus() -> None:
    assert DatasetSpec(source="/data/llama3", tokenizer="prepared", vocab_size=128_256).vocab_size == 128_256
    with pytest.raises(ValueError, match="prepare the corpus"):
        DatasetSpec(source="/data/tokens.bin", tokenizer="pretokenized", vocab_size=128_256)
    with pytest.raises(ValueError, match=r"needs dataset\.vocab_size"):
        DatasetSpec(source="/data/llama3", tokenizer="prepared")
