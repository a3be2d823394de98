"""Opaque keyset cursors: a page continues after the last id it returned, stable under inserts."""

from __future__ import annotations

import base64
import binascii

from app.errors import field_error, unprocessable
from app.schemas import MAX_ID


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = text.partition(":")
        # ASCII digits of an id that can exist (a larger one was a database error on PostgreSQL).
        if prefix != "id" or not (value.isascii() and value.isdigit()) or int(value) > MAX_ID:
            raise ValueError(text)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise unprocessable(
            field_error(
                "query",
                "cursor",
                msg="not a cursor from this API: pass the `next_cursor` of the previous page",
            )
        ) from None
