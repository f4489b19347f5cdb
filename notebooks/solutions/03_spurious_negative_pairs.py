"""Solutions of notebook 03's self-checking exercises. Layout: M = V*K*N rows, row = v*K*N + k*N + i."""
import torch


def pair_kind_counts(N: int, K: int, V: int) -> dict[str, int]:
    """03.1: ordered pairs (a, b), a != b. Positive: same image and group, other view; opposite: same image, other
    group; spurious negative: same group, other image; negative: other image and other group."""
    M = V * K * N
    return {"positive": M * (V - 1), "opposite": M * V * (K - 1), "spurious_negative": M * V * (N - 1),
            "negative": M * V * (K - 1) * (N - 1)}


def spurious_mask(N: int, K: int, V: int) -> torch.Tensor:
    """03.2: same group k, different image i (any views)."""
    rows = torch.arange(V * K * N)
    k, i = (rows // N) % K, rows % N
    return (k[:, None] == k[None, :]) & (i[:, None] != i[None, :])
