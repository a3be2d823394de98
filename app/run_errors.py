"""What a failed run's stored error may say: anyone may read it at GET /v1/runs/{id} (issue 14, point 4).

One line, no traceback (that goes to the worker's log), and no absolute path but those under the user's
own dataset `source`. The worker applies it when it stores an error; migration 0004 applied the same
rule once to the errors that older code had stored.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

import trainer
from app.architectures import describe

# An absolute path inside a message: a "/" that does not follow a word, a dot, a colon or another slash
# (so not "3/4", "./x" or "http://"), up to a space, a quote or punctuation.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/[^\s'\"`,;:()\[\]{}<>]+")
_TRACEBACK = "Traceback (most recent call last):"
MAX_STORED_ERROR_CHARS = 1000


def stored_error(exc: BaseException, source: object = None) -> str:
    """The stored form of an exception that failed (or will retry) a run of a spec with this source."""
    if isinstance(exc, ValidationError):
        text = describe(exc)
    elif isinstance(exc, trainer.CorpusError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return public_error(text, source)


def public_error(text: str, source: object = None) -> str:
    """`text` as a stored error may say it. Idempotent, so already public text passes unchanged; a
    formatted traceback (as older code stored) keeps only its last line, the exception itself."""
    if _TRACEBACK in text:
        lines = [line for line in text.split(_TRACEBACK)[-1].splitlines() if line.strip()]
        text = lines[-1] if lines else "error (its traceback is in the worker's log)"
    mine = source.rstrip("/") if isinstance(source, str) and source.startswith("/") else None

    def scrub(match: re.Match[str]) -> str:
        path = match.group(0)
        return path if mine and (path == mine or path.startswith(mine + "/")) else "<server path>"

    line = _ABSOLUTE_PATH.sub(scrub, " ".join(text.split()))
    return line if len(line) <= MAX_STORED_ERROR_CHARS else line[:MAX_STORED_ERROR_CHARS] + "…"


def source_of(spec: object) -> object:
    """dataset.source of a stored spec (a dict that may no longer validate), or None."""
    dataset = spec.get("dataset") if isinstance(spec, dict) else None
    return dataset.get("source") if isinstance(dataset, dict) else None
