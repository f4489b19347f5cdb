"""COBRA's three training attacks (ATPT, ATNT, RTP), ATNT's random chunk cycle, and all three as one batched PGD.

:func:`atpt`, :func:`atnt` and :func:`rtp` are thin closures over the PGD engine, one attack per call (the
readable form, used by the notebooks). :func:`training_attacks` computes the same three results in one PGD whose
every step is one forward + input-backward pass over the three attacks' images stacked (the trainer's form).
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor, nn
import torch.nn.functional as F

from .engine import check_attack_inputs, draw_unit, pgd_run, pgd, step_size

__all__ = ["atpt", "atnt", "rtp", "random_chunk_cycle", "training_attacks", "training_attack_draws", "AttackDraws",
           "RowGather", "TRAINING_ATTACKS"]

#: the training attacks :func:`training_attacks` knows, and the view each one perturbs
TRAINING_ATTACKS = {"atpt": "v1", "atnt": "v2", "rtp": "v2"}


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


class RowGather(Protocol):
    """What :func:`training_attacks` needs of a data-parallel run (:class:`radlib.distributed.Shards`)."""

    @property
    def world_size(self) -> int: ...

    def gather(self, t: Tensor, groups: int) -> Tensor: ...
    def share(self, t: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class AttackDraws:
    """The random draws of :func:`training_attacks`: ATNT's chunk cycle ``pi`` (K,) (None without ATNT) and each
    attack's random start (radius <= 1, the attack's input shape), in the order of ``names`` (empty at eps=0)."""

    pi: Tensor | None
    starts: tuple[Tensor, ...]


def training_attack_draws(names: tuple[str, ...], v1: Tensor, K: int, eps: float, norm: str,
                          generator: torch.Generator | None) -> AttackDraws:
    """Draw what :func:`training_attacks` draws, in the order the one-attack-per-call form draws it (each attack's
    start; ATNT's cycle before its start). v1: the (M, C, H, W) view, for shape and device."""
    pi, starts = None, []
    for name in names:
        if name == "atnt":
            pi = random_chunk_cycle(K, generator, v1.device)
        if eps > 0:
            starts.append(draw_unit(v1.shape, norm, generator, v1.device, sphere=False))
    return AttackDraws(pi, tuple(starts))


def training_attacks(model: nn.Module, v1: Tensor, v2: Tensor, labels: Tensor, K: int, names: tuple[str, ...], *,
                     eps: float, steps: int = 10, alpha: float | None = None,
                     norm: Literal["linf", "l2"] = "linf", temperature: float = 0.5,
                     generator: torch.Generator | None = None, draws: AttackDraws | None = None,
                     shards: RowGather | None = None) -> dict[str, Tensor]:
    """The training attacks ``names`` (any of ``"atpt"``, ``"atnt"``, ``"rtp"``, in draw order) as **one** PGD.

    Returns ``{name: adversarial images}``, the same as calling :func:`atpt` (on v1), :func:`atnt` (on v2) and
    :func:`rtp` (on v2) one after the other with ``generator``: the random draws are made in that same order (each
    attack's random start; ATNT's chunk cycle before its start), so the results agree up to float rounding
    (tested in float64) and the generator ends in the same state. What changes is the work: each PGD step runs
    one forward + input-backward pass over the attacks' images stacked (3M rows instead of three passes of M),
    ascending ``sum_a sign_a * loss_a`` (ATNT's sign is -1: it minimises). With the model in eval mode every
    row's output depends on that row alone, so the gradient w.r.t. attack a's rows is exactly the gradient of
    loss_a. ATNT's target, the projection of the chunk-permuted v2, is a row permutation of ATPT's target
    (the projection of v2), so one no-grad forward serves both.

    Args:
        model: in eval mode (the caller's business, as for every attack). v1, v2: float (M, C, H, W) in [0, 1],
            the two chunk-major views (M = K * N). labels: int64 (M,) transform labels (RTP's targets).
        K: number of chunks (ATNT needs K >= 2). names: the attacks, each at most once.
        eps, steps, alpha, norm, temperature, generator: as for the single attacks.
        draws: the random draws to use instead of drawing from ``generator`` (:func:`training_attack_draws`).
        shards: a data-parallel run (:class:`radlib.distributed.Shards`): v1, v2, labels are this rank's shard,
            the contrastive attack losses are computed on the global batch (the projections are gathered at every
            PGD step; ATNT's cycle is rank 0's), so each rank's images move as they would in one process holding
            the whole batch. None: one process.
    """
    unknown = [n for n in names if n not in TRAINING_ATTACKS]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"names must be distinct attacks among {tuple(TRAINING_ATTACKS)}, got {tuple(names)}")
    if v1.shape != v2.shape:
        raise ValueError(f"v1 and v2 must have the same shape, got {tuple(v1.shape)} and {tuple(v2.shape)}")
    check_attack_inputs(v1, eps, norm, (0.0, 1.0), steps)
    m = v1.shape[0]
    if "atnt" in names and (K < 2 or m % K):
        raise ValueError(f"atnt needs K >= 2 chunks dividing the batch, got K={K}, batch {m}")
    if not names:
        return {}
    if draws is None:
        draws = training_attack_draws(names, v1, K, eps, norm, generator)
    origins = [v1 if name == "atpt" else v2 for name in names]
    if eps == 0:
        return {n: x.detach().clone() for n, x in zip(names, origins)}
    if len(draws.starts) != len(names) or any(d.shape != v1.shape for d in draws.starts):
        raise ValueError(f"draws must hold one start of shape {tuple(v1.shape)} per attack ({len(names)})")
    pi = draws.pi
    if pi is not None and shards is not None:
        pi = shards.share(pi)  # one chunk cycle for the global batch, as one process draws it
    world = 1 if shards is None else shards.world_size
    if shards is not None and m % K:
        raise ValueError(f"a sharded batch must hold K={K} chunks of equal size, got {m} rows")
    rows = None
    if "atnt" in names:  # row k*n+i of the (global) view -> pi(k)*n+i
        assert pi is not None  # drawn above whenever atnt runs
        n_all = m * world // K
        rows = (pi[:, None] * n_all + torch.arange(n_all, device=v2.device)).reshape(-1)
    need_target = any(n in ("atpt", "atnt") for n in names)
    with torch.no_grad():
        z2 = _proj(model, v2) if need_target else None
        if z2 is not None and shards is not None:
            z2 = shards.gather(z2, K)
    from ..losses import nt_xent

    def loss_fn(a: Tensor) -> Tensor:
        out = model(a)
        total = a.new_zeros((), dtype=torch.float32)
        for i, name in enumerate(names):
            part = slice(i * m, (i + 1) * m)
            if name == "rtp":  # per image: no other rank's row enters its loss
                total = total + F.cross_entropy(out.logits[part].float(), labels, reduction="none").sum()
            else:
                assert z2 is not None  # need_target holds for atpt and atnt
                target = z2 if name == "atpt" else z2[rows]
                z = out.projection[part].float()
                if shards is not None:
                    z = shards.gather(z, K)
                loss = nt_xent(torch.cat([z, target]), n_views=2, temperature=temperature)
                total = total + (loss if name == "atpt" else -loss)
        return total

    x0, d0 = torch.cat(origins), torch.cat(draws.starts)
    adv = pgd_run(loss_fn, x0.detach(), d0, eps=eps, steps=steps, alpha=step_size(eps, steps, alpha), norm=norm,
                   sign=1.0, lo=0.0, hi=1.0, per_sample=False)
    return {name: adv[i * m:(i + 1) * m] for i, name in enumerate(names)}
