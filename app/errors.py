"""Error responses that always render: a 422 echoes what the client sent, and that may not be JSON.

FastAPI's own 422 puts each error's `input` in the body as it was parsed: `json.loads` reads NaN,
Infinity and 1e400 (as inf), lone surrogates ("\\ud800") and, for a body that is not JSON, raw bytes —
none of which a strict JSON response can carry, so the 422 itself failed with a 500. Here every value
is made JSON-safe first, and long inputs are cut, so a 50 MB string is not sent back either.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from app.architectures import StoredSpecInvalid

MAX_ECHOED_CHARS = 200  # of one string in an error's `input`
MAX_ECHOED_ITEMS = 50  # of one list or object in an error's `input`

M = TypeVar("M")


def field_error(*loc: str, msg: str) -> dict[str, Any]:
    """One entry of a 422's `detail`, in FastAPI's own shape, so clients read every 422 the same way."""
    return {"loc": list(loc), "msg": msg, "type": "value_error"}


def unprocessable(*errors: dict[str, Any]) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=list(errors))


def get_or_404(session: Session, model: type[M], ident: int) -> M:
    row = session.get(model, ident)
    if row is None:
        name = getattr(model, "__tablename__", model.__name__).rstrip("s")
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {name} with id {ident}")
    return row


def json_safe(value: Any, *, cut: bool = False) -> Any:
    """`value` with every part representable in strict JSON: non-finite floats as their name ("nan",
    "inf"), text re-encoded (a lone surrogate becomes the escape "\\ud800"), bytes decoded, anything
    else as its str(). With `cut`, strings, lists and objects are shortened to a readable length."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray):
        value = bytes(value[: MAX_ECHOED_CHARS * 4] if cut else value).decode("utf-8", "backslashreplace")
    if isinstance(value, str):
        text = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return text[:MAX_ECHOED_CHARS] + "…" if cut and len(text) > MAX_ECHOED_CHARS else text
    if isinstance(value, dict):
        items = list(value.items())[:MAX_ECHOED_ITEMS] if cut else value.items()
        return {json_safe(str(k), cut=cut): json_safe(v, cut=cut) for k, v in items}
    if isinstance(value, list | tuple):
        return [json_safe(v, cut=cut) for v in (value[:MAX_ECHOED_ITEMS] if cut else value)]
    return json_safe(str(value), cut=cut)


async def _unprocessable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {key: json_safe(value, cut=key == "input") for key, value in error.items()} for error in exc.errors()
    ]
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": errors})


async def _stored_spec_invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoredSpecInvalid)
    return JSONResponse(
        status_code=status.HTTP_409_CONFLICT,
        content={"detail": str(exc), "architecture_id": exc.architecture_id},
    )


def install(app: FastAPI) -> None:
    """Register the handlers on the app (the factory calls this once)."""
    app.add_exception_handler(RequestValidationError, _unprocessable)
    app.add_exception_handler(StoredSpecInvalid, _stored_spec_invalid)
