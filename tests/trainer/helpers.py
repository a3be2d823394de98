"""Small specs for fast tests."""

from __future__ import annotations

from typing import Any

from trainer import ArchitectureSpec


def tiny_spec(**overrides: Any) -> ArchitectureSpec:
    """A spec that trains in well under a second on a CPU; nested dicts override sub-models."""
    fields: dict[str, Any] = {
        "name": "tiny",
        "n_layers": 1,
        "head_dim": 8,
        "context_length": 32,
        "proxy_widths": [16, 32],
        "parametrization": {"base_width": 16},
        "training": {"steps": 20, "batch_tokens": 256, "eval_tokens": 1024, "lr": 0.01},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(fields.get(key), dict):
            fields[key] = {**fields[key], **value}
        else:
            fields[key] = value
    return ArchitectureSpec.model_validate(fields)
