"""The K-chunk :class:`Policy`: which pseudo-anomaly each of the K chunks of a batch gets, and the official
policies (K=4 rotations for natural low-resolution data, K=2 scar CutPaste for industrial data).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import torch

from ..augment import check_images, rand
from .transforms import TRANSFORMS, Generator, check_transform_name, cutpaste

__all__ = ["Policy", "ROTATION_POLICY", "CUTPASTE_POLICY", "CUTPASTE_UNION_POLICY", "NAMED_POLICIES", "policy_for"]


# ------------------------------------------------------------------------------------------------ policy
Chunk = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Policy:
    """K chunks of pseudo-anomaly transforms; chunk k is the K-way head's class k.

    ``chunks[0]`` is always ``(("identity", 1.0),)``. Chunk k >= 1 is one transform ``(("rot90", 1.0),)`` or a
    *mixture* ``(("cutpaste", 0.5), ("scar", 0.5))`` from which every sample draws its own transform.

    **Chunk k always holds transform k, so the K-way labels are always true.** This corrects the official
    code, which draws a random transform per batch item from a mixture and then labels it with the rotation
    index k — with K=4 and non-rotation transforms in the mix, its labels do not match the images.
    """

    chunks: tuple[Chunk, ...]
    #: ``"intensity"`` (training) or ``"random"`` (scoring): the scar's destination rule, see :func:`cutpaste`.
    placement: str = "intensity"

    def __post_init__(self) -> None:
        if self.placement not in ("intensity", "random"):
            raise ValueError(f"placement must be 'intensity' or 'random', got {self.placement!r}")
        try:
            chunks = tuple(tuple((str(nm), float(p)) for nm, p in chunk) for chunk in self.chunks)
        except (TypeError, ValueError) as err:
            raise TypeError(f"chunks must be a sequence of sequences of (name, probability) pairs: {err}") from None
        if len(chunks) < 2:
            raise ValueError(f"a policy needs K >= 2 chunks (identity + at least one transform), got {len(chunks)}")
        if chunks[0] != (("identity", 1.0),):
            raise ValueError(f"chunk 0 must be (('identity', 1.0),), got {chunks[0]}")
        for k, chunk in enumerate(chunks):
            if not chunk:
                raise ValueError(f"chunk {k} is empty")
            for nm, p in chunk:
                check_transform_name(nm)
                if not p > 0:
                    raise ValueError(f"chunk {k}: probability of {nm!r} must be > 0, got {p}")
            total = sum(p for _, p in chunk)
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"chunk {k}: probabilities must sum to 1, got {total}")
        object.__setattr__(self, "chunks", chunks)

    @property
    def K(self) -> int:  # noqa: N802 (the paper's symbol)
        """Number of chunks = classes of the K-way head."""
        return len(self.chunks)

    def describe(self) -> str:
        """One line per chunk, e.g. ``chunk 1: cutpaste 50% | scar 50%``."""
        lines = [f"Policy with K={self.K} chunks (label k = chunk k):"]
        for k, chunk in enumerate(self.chunks):
            lines.append(f"  chunk {k}: " + " | ".join(
                nm if len(chunk) == 1 else f"{nm} {100 * p:.0f}%" for nm, p in chunk))
        return "\n".join(lines)

    def for_scoring(self) -> "Policy":
        """This policy with input-independent scar placement (``placement="random"``), for anomaly scores: the
        score then has no branch that depends on the (attacked) input. Same transforms, same random draws."""
        return dataclasses.replace(self, placement="random")

    def _run(self, name: str, x: torch.Tensor, generator: Generator) -> torch.Tensor:
        if name == "scar":
            out = cutpaste(x, generator, variant="scar", placement=self.placement)
            assert isinstance(out, torch.Tensor)  # no mask asked for
            return out
        return TRANSFORMS[name](x, generator)

    def apply_chunk(self, k: int, x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
        """Chunk k's transform applied to every image of ``x`` (mixtures: one draw per sample).

        Each transform of a mixture is run on the whole batch and the per-sample choice selects rows
        (a handful of transforms, no per-sample loop, no host sync).
        """
        check_images(x)
        chunk = self.chunks[k]
        if len(chunk) == 1:
            return self._run(chunk[0][0], x, generator)
        probs = torch.tensor([p for _, p in chunk], device=x.device)
        edges = probs.cumsum(0)[:-1]
        choice = torch.bucketize(rand((x.shape[0],), generator, x.device), edges, right=True)
        out = x
        for j, (nm, _) in enumerate(chunk):
            out = torch.where((choice == j).view(-1, 1, 1, 1), self._run(nm, x, generator), out)
        return out

    def expand(self, x: torch.Tensor, generator: Generator = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C, H, W) -> (K*N, C, H, W) chunk-major (row k*N + i = transform k of image i) and int64 labels
        (K*N,) with value k on chunk k. Same dtype/device as x; values in [0, 1]."""
        check_images(x)
        n = x.shape[0]
        out = torch.cat([x] + [self.apply_chunk(k, x, generator) for k in range(1, self.K)], dim=0)
        labels = torch.arange(self.K, device=x.device).repeat_interleave(n)
        return out, labels


#: K=4 rotations 0/90/180/270 (official setting for CIFAR-like, low-resolution natural images).
ROTATION_POLICY = Policy(((("identity", 1.0),), (("rot90", 1.0),), (("rot180", 1.0),), (("rot270", 1.0),)))
#: K=2, chunk 1 = CutPaste scar 100%: what the official COBRA code trains for MVTec-like data (its live path,
#: ``CutPasteLayer.forward``, always pastes a scar; ``CutPasteUnion`` is imported but never used).
CUTPASTE_POLICY = Policy(((("identity", 1.0),), (("scar", 1.0),)))
#: K=2, chunk 1 = CutPaste normal 50% / scar 50% (the CutPaste paper's union, the official ``CutPasteUnion``).
CUTPASTE_UNION_POLICY = Policy(((("identity", 1.0),), (("cutpaste", 0.5), ("scar", 0.5))))

#: the policies a dataset can name when it registers (``radlib.data.register(..., policy=...)``)
NAMED_POLICIES: dict[str, Policy] = {
    "rotation": ROTATION_POLICY,
    "cutpaste": CUTPASTE_POLICY,
    "cutpaste_union": CUTPASTE_UNION_POLICY,
}


def policy_for(dataset: str) -> Policy:
    """The default policy of a registered dataset: the one it names in ``radlib.data.register(policy=...)``.

    Natural / low-resolution images (digits, mnist, fashion_mnist, cifar10, cifar100, svhn): K=4 rotations.
    Industrial images (surfaces, folder, casting, mvtec_ad, visa, mtd): K=2 with the CutPaste scar, as the
    official code trains (:data:`CUTPASTE_UNION_POLICY` is the 50/50 normal/scar mix of the CutPaste paper) —
    rotation is a poor pseudo-anomaly for rotation-invariant textures and top-down parts (a rotated normal
    texture is still normal), so it would teach the head a spurious task. ``surfaces`` (synthetic textures)
    is treated as industrial for that reason. Cutout/elastic are available for custom policies but are not in
    the defaults, which follow the official MVTec configuration.
    """
    from ..data import DatasetError, available, dataset_info  # data never imports pseudo_anomaly: no circle

    try:
        name = dataset_info(dataset).policy
    except DatasetError:
        raise ValueError(f"no pseudo-anomaly policy for dataset {dataset!r}; known: "
                         f"{', '.join(sorted(available()))}") from None
    if name not in NAMED_POLICIES:
        raise ValueError(f"dataset {dataset!r} names the policy {name!r}, which is not one of "
                         f"{', '.join(NAMED_POLICIES)}")
    return NAMED_POLICIES[name]
