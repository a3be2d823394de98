"""`mupredict data prepare`: tokenize a corpus once into shards and a manifest (trainer/prepare.py)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

data = typer.Typer(help="Prepare corpora: tokenize once, train every candidate on the same token ids.")


@data.command()
def prepare(
    source: Path = typer.Argument(..., help="A text, .jsonl or .parquet file, or a folder of them."),
    out: Path = typer.Option(..., "--out", help="The corpus folder to write (a spec's dataset.source)."),
    tokenizer: str = typer.Option(
        "byte", help="'byte', 'bpe:V' (a BPE of V tokens trained on the source) or a tokenizer.json path."
    ),
    val_fraction: float = typer.Option(0.01, help="Share of the documents held out for validation."),
    text_field: str = typer.Option("text", help="The field (.jsonl) or column (.parquet) holding the text."),
    shard_tokens: int = typer.Option(1 << 25, help="Tokens per shard file."),
) -> None:
    """Tokenize SOURCE into OUT (sharded token files and a manifest); a no-op when OUT already holds it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from trainer.prepare import PrepareError
    from trainer.prepare import prepare as run_prepare

    columns = (BarColumn(), DownloadColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task("tokenizing", total=None)
            manifest, wrote = run_prepare(
                source,
                out,
                tokenizer,
                val_fraction=val_fraction,
                text_field=text_field,
                shard_tokens=shard_tokens,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except PrepareError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from err
    info = manifest.tokenizer
    typer.echo(
        f"{'prepared' if wrote else 'already prepared (nothing to do)'}: {out} — {info.identity}, vocabulary "
        f"{info.vocab_size}, {manifest.dtype}; {manifest.tokens['train']:,} training and "
        f"{manifest.tokens['val']:,} validation tokens in {len(manifest.shards)} shard(s), "
        f"{manifest.bytes_per_token:.2f} bytes per token; fingerprint {manifest.fingerprint[:12]}, text "
        f"{str(manifest.text_fingerprint)[:12]} (any tokenizer of this source shares it: its designs compare "
        "in bits per byte)"
    )
    dataset = {"source": str(out), "tokenizer": "prepared", "vocab_size": info.vocab_size}
    typer.echo(f'a spec trains on it with "dataset": {json.dumps(dataset)}')
