"""The client's tables: responses that hold rows give them as a pandas DataFrame (`.to_pandas()`).

pandas is imported on first use (it comes with the `notebook` extra), so neither the API nor a client
that never asks for a frame loads it.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


def frame(rows: list[Any]) -> Any:
    """A pandas DataFrame with one row per model (pandas comes with the `notebook` extra)."""
    import pandas as pd

    return pd.DataFrame([row.model_dump() if isinstance(row, BaseModel) else row for row in rows])


class Tabular(BaseModel):
    """A result with a table inside (`_table` names it): `.to_pandas()` gives it as a DataFrame."""

    _table: ClassVar[str]

    def to_pandas(self) -> Any:
        return frame(getattr(self, self._table))


class Rows(list[T]):
    """A list of results, as the client returns them, with `.to_pandas()`."""

    def to_pandas(self) -> Any:
        return frame(list(self))
