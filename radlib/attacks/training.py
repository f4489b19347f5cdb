"""COBRA's three training attacks (ATPT, ATNT, RTP) and ATNT's random chunk cycle: closures over the PGD engine.
"""
from __future__ import annotations

import functools
import itertools
from typing import Literal

import torch
from torch import Tensor, nn
import torch.nn.functional as F

from .engine import pgd

__all__ = ["atpt", "atnt", "rtp", "random_chunk_cycle"]


# ---------------------------------------------------------------------------------------------------------------
# COBRA's three training attacks: thin closures over the same `pgd` engine.
# Each takes the model *in the caller's mode* (COBRA attacks in eval mode, as the official code) and returns
# detached adversarial images in the eps-ball around the input, clamped to [0, 1].
# ---------------------------------------------------------------------------------------------------------------

def _proj(model: nn.Module, x: Tensor) -> Tensor:
    return model(x).projection.float()


def atpt(model: nn.Module, v1: Tensor, v2: Tensor, *, eps: float, steps: int = 10, alpha: float | None = None,
         norm: Literal["linf", "l2"] = "linf", temperature: float = 0.5,
         generator: torch.Generator | None = None) -> Tensor:
    """ATPT: perturb view ``v1`` to *maximise* NT-Xent(v1', v2) (push each image away from its positive).

    v1, v2: (M, C, H, W) in [0, 1], two views of the same chunk-major batch. Returns v1' (M, C, H, W).
    """
    from ..losses import nt_xent
    with torch.no_grad():
        z2 = _proj(model, v2)
    return pgd(lambda a: nt_xent(torch.cat([_proj(model, a), z2]), n_views=2, temperature=temperature), v1,
               eps=eps, steps=steps, alpha=alpha, norm=norm, maximize=True, generator=generator)


def random_chunk_cycle(K: int, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> Tensor:
    """A uniformly random cyclic permutation pi of range(K) (one K-cycle, so pi(k) != k for every k), as an
    int64 tensor (K,) on ``device``: chunk k is paired with chunk pi[k].

    Sattolo's shuffle draws exactly this distribution (each of the (K-1)! K-cycles with equal probability),
    as the official ATNT code does per batch. Here the (K-1)! cycles are enumerated once and one index is drawn
    from ``generator`` on its device: no host sync. K=2 always gives (1, 0).
    """
    if not isinstance(K, int) or K < 2:
        raise ValueError(f"K must be an int >= 2, got {K!r}")
    table = _cycles(K)
    gdev = generator.device if generator is not None else torch.device(device)
    pick = torch.randint(table.shape[0], (1,), generator=generator, device=gdev)
    return table.to(gdev)[pick].squeeze(0).to(device)


@functools.lru_cache(maxsize=8)
def _cycles(K: int) -> Tensor:
    rows = []
    for order in itertools.permutations(range(1, K)):  # cycle 0 -> order[0] -> ... -> order[-1] -> 0
        perm = [0] * K
        seq = (0, *order)
        for a, b in zip(seq, seq[1:] + (0,)):
            perm[a] = b
        rows.append(perm)
    return torch.tensor(rows, dtype=torch.long)


def atnt(model: nn.Module, v2: Tensor, K: int, *, eps: float, steps: int = 10, alpha: float | None = None,
         norm: Literal["linf", "l2"] = "linf", temperature: float = 0.5,
         generator: torch.Generator | None = None, perm: Tensor | None = None) -> Tensor:
    """ATNT: perturb ``v2`` to *minimise* NT-Xent(v2', pi(v2)), pi a random cyclic permutation of the K chunks.

    Each image is pulled toward a differently-transformed copy of itself (for K=2: a normal toward its own
    pseudo-anomaly and vice versa); the trainer then treats v2' as a *positive* of v2, so the encoder learns
    to resist exactly the inter-group direction. As the official code, pi is drawn anew on every call
    (:func:`random_chunk_cycle`, from ``generator``, before the random start), so over training each chunk is
    pulled toward every other chunk; ``perm`` (K,) fixes it instead. v2: (K*N, C, H, W) chunk-major.
    Returns v2'.
    """
    from ..losses import nt_xent
    if K < 2 or v2.shape[0] % K:
        raise ValueError(f"atnt needs K >= 2 chunks dividing the batch, got K={K}, batch {v2.shape[0]}")
    n = v2.shape[0] // K
    if perm is None:
        pi = random_chunk_cycle(K, generator, v2.device)
    else:  # a caller's choice: checked once (a host sync the drawn cycle does not need)
        pi = torch.as_tensor(perm, device=v2.device).long()
        if pi.shape != (K,) or sorted(pi.tolist()) != list(range(K)) or any(a == b for a, b in enumerate(pi.tolist())):
            raise ValueError(f"perm must be a permutation of range({K}) without fixed points, got {pi.tolist()}")
    rows = (pi[:, None] * n + torch.arange(n, device=v2.device)).reshape(-1)  # row k*n+i -> pi(k)*n+i
    with torch.no_grad():
        target = _proj(model, v2[rows])
    return pgd(lambda a: nt_xent(torch.cat([_proj(model, a), target]), n_views=2, temperature=temperature), v2,
               eps=eps, steps=steps, alpha=alpha, norm=norm, maximize=False, generator=generator)


def rtp(model: nn.Module, x: Tensor, labels: Tensor, *, eps: float, steps: int = 10, alpha: float | None = None,
        norm: Literal["linf", "l2"] = "linf", generator: torch.Generator | None = None) -> Tensor:
    """RTP: perturb ``x`` to *maximise* the K-way head's cross-entropy on the true transform labels (M,)."""
    return pgd(lambda a: F.cross_entropy(model(a).logits.float(), labels, reduction="none"), x,
               eps=eps, steps=steps, alpha=alpha, norm=norm, maximize=True, generator=generator)
