"""Which widenings μP upscaling can make with the function intact (trainer/upscale.py does them).

Torch-free, so that the API can refuse an impossible upscaling (HTTP 422) without loading the model code.
"""

from __future__ import annotations

from trainer.spec import ArchitectureSpec


class UpscaleError(ValueError):
    """A widening that cannot keep the function; the message names the fix."""


def check_widths(spec: ArchitectureSpec, width: int, to_width: int) -> int:
    """k = to_width / width, or UpscaleError naming the fix."""
    if spec.parametrization.mode != "mup":
        raise UpscaleError(
            "upscaling keeps the function only under μP (its readout multiplier 1/m absorbs the k copies); "
            f"parametrization.mode is {spec.parametrization.mode!r}: train the proxy with mode 'mup'"
        )
    spec.validate_width(to_width)
    if to_width <= width or to_width % width:
        multiples = [width * k for k in (2, 3, 4)]
        raise UpscaleError(
            f"to_width {to_width} must be a whole multiple (×2 or more) of the proxy width {width}, so that "
            f"every unit is copied the same number of times: use e.g. {multiples}"
        )
    k = to_width // width
    if spec.ffn_hidden(to_width) != k * spec.ffn_hidden(width):
        raise UpscaleError(
            f"the FFN hidden size does not scale by ×{k} (ffn_ratio {spec.ffn_ratio}: "
            f"{spec.ffn_hidden(width)} at width {width}, {spec.ffn_hidden(to_width)} at {to_width}): use an "
            "ffn_ratio for which ffn_ratio × width is a whole number"
        )
    return k
