"""Parameter and FLOP counts, computed from the spec alone (the API converts width <-> N without torch).

N, everywhere in mupredict, means NON-EMBEDDING parameters (Kaplan et al. 2020, §2.1): all parameters
except the vocabulary-sized matrices (token embedding, untied readout) and learned position embeddings.
Norm gains count as non-embedding. tests/trainer checks these counts against built models.
"""

from __future__ import annotations

from trainer.spec import ArchitectureSpec

# Dense bf16 peak FLOP/s by a substring of torch.cuda.get_device_name (NVIDIA datasheets), for MFU.
# Checked in order, so the PCIe and NVL parts match before the SXM default of their family.
PEAK_BF16_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
)


def block_params(spec: ArchitectureSpec, width: int) -> int:
    """Parameters of one block: a transformer block, or block "single"'s one matrix and norm."""
    if spec.block == "single":
        return width * width + (width if spec.norm_gains else 0)
    hidden = spec.ffn_hidden(width)
    attention = 3 * width * width + width * width  # fused QKV + output projection
    ffn_matrices = 3 if spec.activation == "swiglu" else 2  # SwiGLU adds the gate
    gains = 2 * width if spec.norm_gains else 0
    if spec.family == "ngpt":  # its scaling vectors: α_A, α_M, s_qk (width each) and s_u, s_v (hidden each)
        gains = 3 * width + 2 * hidden
    return attention + ffn_matrices * width * hidden + gains


def count_params(spec: ArchitectureSpec, width: int) -> tuple[int, int]:
    """(total, non_embedding) parameters of build_model(spec, width), without building it."""
    spec.validate_width(width)
    non_embedding = spec.n_layers * block_params(spec, width) + (width if spec.norm_gains else 0)
    embedding = spec.vocab_size * width
    if spec.positions == "learned":
        embedding += spec.context_length * width
    if not spec.tie_embeddings:
        embedding += spec.vocab_size * width
    if spec.family == "ngpt":
        embedding += spec.vocab_size  # s_z, one per token: it scales with the vocabulary, like the readout
    return embedding + non_embedding, non_embedding


def flops_per_token(spec: ArchitectureSpec, width: int) -> int:
    """Training FLOPs per token: 6 per matmul weight, plus attention scores and values.

    The readout matmul counts (it costs compute although it is not in N); embedding lookups do not.
    Attention: 2 matmuls of T × width per token per layer, ×3 for forward and backward, without
    halving for the causal mask (PaLM, Chowdhery et al. 2022, App. B); block "single" has none.
    """
    _, non_embedding = count_params(spec, width)
    readout = spec.vocab_size * width
    attention_layers = 0 if spec.block == "single" else spec.n_layers
    attention = 6 * 2 * attention_layers * spec.context_length * width
    return 6 * (non_embedding + readout) + attention


def peak_flops(device_name: str) -> float | None:
    """Dense bf16 peak of a known GPU from its name (torch.cuda.get_device_name), else None."""
    for key, peak in PEAK_BF16_FLOPS:
        if key in device_name:
            return peak
    return None


def total_params_at(spec: ArchitectureSpec, n_params: float) -> float | None:
    """Total parameters (embeddings included) of this spec at `n_params` non-embedding ones.

    A law fitted in total parameters (predictor's kaplan_slice) is asked by N like every other; the
    embeddings grow linearly in width, so their count is interpolated between the two head-size widths
    whose N bracket n_params (the smallest width's count below it). None past width 2^20.
    """
    step = spec.head_dim
    low, high = 1, (1 << 20) // step
    if count_params(spec, high * step)[1] < n_params:
        return None
    while low < high:  # the smallest multiple of the head size whose N reaches n_params
        mid = (low + high) // 2
        if count_params(spec, mid * step)[1] < n_params:
            low = mid + 1
        else:
            high = mid
    total_b, n_b = count_params(spec, low * step)
    if low == 1 or n_b == n_params:
        return float(n_params + (total_b - n_b))
    total_a, n_a = count_params(spec, (low - 1) * step)
    share = (n_params - n_a) / (n_b - n_a)
    embedding = (total_a - n_a) + share * ((total_b - n_b) - (total_a - n_a))
    return float(n_params + embedding)
