"""The client and the API process import neither torch nor the model code (issue 15 point 4): a notebook
that only submits and reads, and an API that only validates and predicts, should not pay seconds and
hundreds of MB for it. Checked in a fresh interpreter, since this test process has torch loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "trainer.model", "trainer.mup", "trainer.train", "trainer.coord_check")

PROBE = """
import json, sys
{imports}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def loaded_after(imports: str) -> list[str]:
    code = PROBE.format(imports=imports, heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "imports",
    [
        "from app.client import Client",
        "import app.api; app.api.create_app()",
        "import trainer; trainer.count_params(trainer.ArchitectureSpec(name='x'), 64)",
    ],
)
def test_no_torch_after(imports: str, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'api.db'}"
    assert loaded_after(f"import os; os.environ['MUPREDICT_DATABASE_URL'] = {database!r}\n{imports}") == []


def test_the_model_code_loads_on_first_use() -> None:
    # The lazy names resolve to the real objects, and `trainer.train` is the function, not its module.
    assert loaded_after(
        "import trainer; assert callable(trainer.train) and trainer.train.__name__ == 'train'"
    ) == [
        "torch",
        "trainer.model",
        "trainer.mup",
        "trainer.train",
    ]
