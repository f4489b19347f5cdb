"""Differentiable anomaly scores: the CSI/COBRA ensemble score, kNN (MSC-style) and Mahalanobis.

Every score maps float images (N, C, H, W) in [0, 1] to a float32 tensor (N,) with **higher = more
anomalous** (radlib's sign everywhere), is batched on the device of its model, and is differentiable
end-to-end with respect to the input images, so :mod:`radlib.attacks` can run PGD / APGD on it.

Memory: the maxima / nearest neighbours over the training bank are found in chunks of ``chunk_size``
bank rows *without* autograd; only the winning bank rows are then re-multiplied with the queries under
autograd. This bounds memory by ``chunk_size`` whatever the bank size, and gives exactly the
(sub)gradient of the max / top-k (the winners are the only rows a max passes gradient to).

Model mode: every call runs the model in eval mode (BatchNorm running statistics, no dropout) and
restores each module's previous mode afterwards.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, Callable, Iterator, Literal, Protocol, runtime_checkable

import torch
from torch import nn
import torch.nn.functional as F

from .augment import SimCLRAugment, horizontal_flip
from .data._base import to_float
from .device import make_generator

__all__ = [
    "AnomalyScore",
    "Augment",
    "PolicyLike",
    "EnsembleScore",
    "KNNScore",
    "MahalanobisScore",
    "score_images",
    "max_cosine",
    "knn_distance",
    "model_features",
    "eval_mode",
    "gaussian_fit",
    "official_tta",
]

Augment = Callable[..., torch.Tensor]
"""An augmentation ``augment(x, generator=g) -> x'`` on float (N, C, H, W) in [0, 1], same shape, that draws
all its randomness from ``g`` (a ``torch.Generator`` on ``x``'s device)."""


def official_tta(image_size: int) -> tuple[Augment, Augment]:
    """The official evaluation's test-time augmentation, as ``(pre_augment, augment)`` for :class:`EnsembleScore`:
    a random horizontal flip before the pseudo-anomalies, then colour jitter (0.4, 0.4, 0.4, 0.1) p=0.8 and
    greyscale p=0.2 after them, plus a random resized crop fixed at scale 0.54 at low resolution (<= 64 px),
    as CSI's ``ood_pre.py`` evaluates (``resize_factor 0.54, resize_fix``). Average ``samples=10`` of them."""
    def flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return horizontal_flip(x, generator, p=0.5)
    return flip, SimCLRAugment(crop=int(image_size) <= 64, crop_scale=(0.54, 0.54))


@runtime_checkable
class PolicyLike(Protocol):
    """What the ensemble score needs from :class:`radlib.pseudo_anomaly.Policy`."""

    K: int

    def expand(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        ...


# --------------------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Context manager: ``model`` in eval mode inside, every submodule's own mode restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def _check_images(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must be images (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return to_float(x)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _chunked_argmax_dot(queries: torch.Tensor, bank: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Index of the bank row with the largest dot product, per query, scanning ``chunk_size`` rows at a time.

    queries: (B, N, d), bank: (B, M, d), same dtype/device. Returns int64 (B, N). No autograd.
    Ties go to the lowest index (first chunk wins, as ``torch.max`` does within a chunk).
    """
    with torch.no_grad():
        best_val = None
        best_idx = None
        for start in range(0, bank.shape[1], chunk_size):
            sims = torch.bmm(queries, bank[:, start:start + chunk_size].transpose(1, 2))  # (B, N, c)
            val, idx = sims.max(dim=2)
            idx = idx + start
            if best_val is None:
                best_val, best_idx = val, idx
            else:
                better = val > best_val
                best_val = torch.where(better, val, best_val)
                best_idx = torch.where(better, idx, best_idx)
    assert best_idx is not None
    return best_idx


def _chunked_topk_dot(queries: torch.Tensor, bank: torch.Tensor, k: int, chunk_size: int) -> torch.Tensor:
    """Indices (N, k) of the ``k`` bank rows with the largest dot product per query; queries (N, d), bank (M, d)."""
    with torch.no_grad():
        best_val = None
        best_idx = None
        for start in range(0, bank.shape[0], chunk_size):
            sims = queries @ bank[start:start + chunk_size].T  # (N, c)
            idx = torch.arange(start, start + sims.shape[1], device=sims.device).expand_as(sims)
            if best_val is not None:
                sims = torch.cat([best_val, sims], dim=1)
                idx = torch.cat([best_idx, idx], dim=1)
            kk = min(k, sims.shape[1])
            best_val, pos = sims.topk(kk, dim=1)
            best_idx = idx.gather(1, pos)
    assert best_idx is not None
    return best_idx


def _gather_dot(queries: torch.Tensor, bank: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Differentiable ``<queries[b, n], bank[b, idx[b, n]]>``: queries (B, N, d), bank (B, M, d), idx (B, N)."""
    rows = torch.gather(bank, 1, idx.unsqueeze(-1).expand(-1, -1, bank.shape[-1]))
    return (queries * rows).sum(-1)


def _check_chunk_size(chunk_size: int) -> int:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    return chunk_size


def _check_pair(queries: torch.Tensor, bank: torch.Tensor) -> None:
    if queries.dim() != 2 or bank.dim() != 2:
        raise ValueError(f"queries and bank must be 2-D (N, d) / (M, d), got {tuple(queries.shape)} / "
                         f"{tuple(bank.shape)}")
    if queries.shape[1] != bank.shape[1]:
        raise ValueError(f"feature sizes differ: queries d={queries.shape[1]}, bank d={bank.shape[1]}")
    if bank.shape[0] == 0:
        raise ValueError("bank is empty")


def max_cosine(queries: torch.Tensor, bank: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
    """Largest cosine similarity of each query to any bank row, memory-bounded and differentiable.

    Args:
        queries: float (N, d); bank: float (M, d) on the same device (neither needs to be normalised).
        chunk_size: bank rows compared at a time (peak extra memory ~ N * chunk_size floats).
    Returns:
        float (N,) in [-1, 1]; gradients flow to ``queries`` (and ``bank``) through the winning row.
    """
    _check_pair(queries, bank)
    _check_chunk_size(chunk_size)
    q = F.normalize(queries, dim=1).unsqueeze(0)
    b = F.normalize(bank, dim=1).unsqueeze(0)
    idx = _chunked_argmax_dot(q, b, chunk_size)
    return _gather_dot(q, b, idx)[0]


def knn_distance(queries: torch.Tensor, bank: torch.Tensor, k: int, chunk_size: int = 4096) -> torch.Tensor:
    """Mean cosine distance (1 - cos) of each query to its ``k`` nearest bank rows (MSC-style kNN score).

    Args:
        queries: float (N, d); bank: float (M, d), same device; both are L2-normalised here.
        k: neighbours, 1 <= k <= M.
        chunk_size: bank rows compared at a time.
    Returns:
        float (N,) in [0, 2], higher = farther from the training data; differentiable w.r.t. ``queries``.
    """
    _check_pair(queries, bank)
    _check_chunk_size(chunk_size)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= bank.shape[0]:
        raise ValueError(f"k must be an int in [1, {bank.shape[0]}] (bank size), got {k!r}")
    q = F.normalize(queries, dim=1)
    b = F.normalize(bank, dim=1)
    idx = _chunked_topk_dot(q, b, k, chunk_size)  # (N, k)
    sims = (q.unsqueeze(1) * b[idx]).sum(-1)  # (N, k)
    return (1.0 - sims).mean(dim=1)


FeatureName = Literal["features", "projection", "logits"]


def model_features(model: nn.Module, images: torch.Tensor, feature: FeatureName = "features", *,
                   batch_size: int = 256, device: torch.device | str | None = None) -> torch.Tensor:
    """One field of the model output for every image, batched, in eval mode, without autograd.

    Args:
        images: uint8 or float (N, C, H, W) on any device (moved batch by batch).
        feature: ``"features"`` (penultimate), ``"projection"`` (unnormalised) or ``"logits"``.
        device: where to run; default the model's device.
    Returns:
        float32 (N, d) on ``device``.
    """
    if feature not in ("features", "projection", "logits"):
        raise ValueError(f"feature must be 'features', 'projection' or 'logits', got {feature!r}")
    _check_images(images, "images")
    device = torch.device(device) if device is not None else _model_device(model)
    out = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            xb = to_float(images[start:start + batch_size].to(device))
            out.append(getattr(model(xb), feature).float())
    return torch.cat(out)


# --------------------------------------------------------------------------------------------- base
class AnomalyScore:
    """Base class of radlib's scores: ``score(x) -> (N,)``, higher = more anomalous, differentiable in ``x``.

    Subclasses implement :meth:`forward`. ``__call__`` validates ``x`` (float or uint8 (N, C, H, W)),
    moves it to the score's device (differentiably) and runs :meth:`forward` with the model in eval mode.
    """

    name: str = "score"

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model

    # tensors (other than the model) that ``to`` must move
    _tensor_attrs: tuple[str, ...] = ()

    @property
    def device(self) -> torch.device:
        return _model_device(self.model)

    def to(self, device: torch.device | str) -> "AnomalyScore":
        """Move the model (in place: it is the caller's model) and the fitted statistics to ``device``."""
        self.model.to(device)
        for attr in self._tensor_attrs:
            setattr(self, attr, getattr(self, attr).to(device))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_images(x)
        x = x.to(self.device)
        with eval_mode(self.model):
            s = self.forward(x)
        return s

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={self.device})"


def score_images(score: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int = 256,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Clean scores of many images without autograd, ``batch_size`` images per call.

    Args:
        score: any ``AnomalyScore`` (or callable float (B, C, H, W) -> (B,)).
        images: uint8 [0, 255] or float [0, 1] (N, C, H, W), on any device.
        device: where the batches go; default ``score.device`` (else the images' device).
    Returns:
        float32 (N,) on the CPU. The batch partition is ``[0:bs], [bs:2bs], ...``: scores with random
        (seeded) transforms depend on it, so compare clean and attacked scores with the same ``batch_size``.
    """
    _check_images(images, "images")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if device is None:
        device = getattr(score, "device", images.device)
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            xb = to_float(images[start:start + batch_size].to(device))
            out.append(score(xb).detach().float().cpu())
    return torch.cat(out)


# --------------------------------------------------------------------------------------------- ensemble
class EnsembleScore(AnomalyScore):
    """The CSI / COBRA ensemble score, negated so that higher = more anomalous.

    For each pseudo-anomaly chunk k (``policy.K`` of them) and each of ``S`` fixed augmentation samples s,
    the image is transformed, ``T_k^s x``, and the model gives the unnormalised projection p and the
    K-way logits l. Averages over the S samples: ``p_k(x) = mean_s p(T_k^s x)``,
    ``l_k(x) = mean_s logit_k(T_k^s x)``. With the M training images x_m::

        axis_k[m] = p_k(x_m) / ||p_k(x_m)||
        w_sim,k   = 1 / mean_m ||p_k(x_m)||
        w_cls,k   = 1 / mean_m l_k(x_m)
        score(x)  = -(1/K) sum_k [ w_sim,k * max_m <p_k(x), axis_k[m]> + w_cls,k * l_k(x) ]

    Faithful to the official code (CSI ``evals/ood_pre.py``, COBRA ``evaluation/eval.py``):

    * the similarity term is the dot product of the *unnormalised* test projection with the normalised
      training projections, i.e. ``||p_k(x)|| * max_m cos(p_k(x), p_k(x_m))`` (CSI's feature-norm factor);
    * ``w_sim,k`` is the inverse *mean training feature norm* (not a mean max-cosine), ``w_cls,k`` the inverse
      mean training logit of the correct transform;
    * the S samples are averaged at the feature level (before the max), not at the score level;
    * sample s uses seed ``seed + s`` (official: ``set_random_seed(s)``), for training and test images alike.

    Changed from the official code, on purpose: the randomness. On **every** call (fit, clean scoring,
    each attack step), sample s draws the ``pre_augment`` (official: random horizontal flip), the policy's
    random pseudo-anomalies (e.g. CutPaste for K=2) and the ``augment`` (official: random resized crop
    at scale 0.54) from a fresh ``torch.Generator`` seeded with ``seed + s`` on the input's device. The
    score is therefore a deterministic function of the batch, and an attack sees exactly the transforms
    of the clean evaluation of that batch (no global RNG is touched). The draws depend on the batch
    composition (image i's draw depends on its position and the batch size), so clean and attacked
    scores must be computed with the same batch partition, which :func:`radlib.evaluate.evaluate` does.

    Use :meth:`fit` to build one. ``self(x)`` takes float (N, C, H, W) in [0, 1] and returns float32 (N,).
    """

    name = "ensemble"
    _tensor_attrs = ("axis", "weight_sim", "weight_cls", "offset")

    def __init__(self, model: nn.Module, policy: PolicyLike, axis: torch.Tensor, weight_sim: torch.Tensor,
                 weight_cls: torch.Tensor, *, offset: torch.Tensor | None = None, samples: int = 1,
                 augment: Augment | None = None, pre_augment: Augment | None = None, seed: int = 0,
                 chunk_size: int = 4096, weighting: str = "official") -> None:
        super().__init__(model)
        K = _check_policy(policy)
        if axis.dim() != 3 or axis.shape[0] != K:
            raise ValueError(f"axis must be (K={K}, M, d), got {tuple(axis.shape)}")
        if weight_sim.shape != (K,) or weight_cls.shape != (K,):
            raise ValueError(f"weight_sim / weight_cls must be ({K},), got {tuple(weight_sim.shape)} / "
                             f"{tuple(weight_cls.shape)}")
        # scores place the scar from the generator alone (no branch on the attacked input), see Policy.for_scoring
        self.policy = policy.for_scoring() if callable(getattr(policy, "for_scoring", None)) else policy
        self.axis = axis
        self.weight_sim = weight_sim
        self.weight_cls = weight_cls
        self.offset = torch.zeros_like(weight_sim) if offset is None else offset
        self.weighting = weighting
        self.samples = _check_samples(samples)
        self.augment = augment
        self.pre_augment = pre_augment
        self.seed = int(seed)
        self.chunk_size = _check_chunk_size(chunk_size)

    @property
    def K(self) -> int:
        return int(self.policy.K)

    @classmethod
    def fit(cls, model: nn.Module, train_images: torch.Tensor, policy: PolicyLike, *, batch_size: int = 256,
            samples: int = 1, augment: Augment | None = None, pre_augment: Augment | None = None, seed: int = 0,
            chunk_size: int = 4096, device: torch.device | str | None = None,
            weighting: Literal["standardized", "official"] = "standardized",
            use_head: bool = True) -> "EnsembleScore":
        """Compute the training statistics (axis, weights) of the ensemble score.

        ``weighting`` (how the similarity and classification terms of chunk k are put on one scale):

        * ``"official"``: ``w_sim,k = 1 / mean ||p_k||``, ``w_cls,k = 1 / mean logit_k`` (CSI / COBRA code).
          Correct only when the mean training logit is clearly positive: after a short training run it is
          often ~0 or negative, and the classification term then flips sign or explodes. Measured on
          ``surfaces`` (32 px, CSI trained 20 epochs): metal 18.9 AUROC official vs 88.5 standardized.
        * ``"standardized"`` (default, radlib's correction): each term is standardised by its mean and std
          over the normal training images -- the similarity term leave-one-out (each training image's nearest
          *other* training image), so that no image is compared with itself -- i.e.
          ``w_sim,k = 1/std``, ``w_cls,k = 1/std`` and ``offset_k = -(mean_sim/std_sim + mean_cls/std_cls)``.
          Same ingredients and signs as the official score, a scale that stays valid for any training length.

        ``use_head=False`` drops the classification term (``w_cls = 0``): for models whose K-way head was never
        trained (``adv_contrastive``, ``supcon``, ``cobra`` with ``cls_weight=0``), whose logits are noise.

        Args:
            model: a :class:`radlib.models.ResNet18AD` (anything returning ``.projection`` and ``.logits``
                with ``logits.shape[1] >= policy.K``); run in eval mode, its modes restored afterwards.
            train_images: uint8 or float (M, C, H, W) normal training images (any device).
            policy: a :class:`radlib.pseudo_anomaly.Policy` (``.K``, ``.expand(x, generator=)``).
            batch_size: training images per forward pass (the pass holds ``K * batch_size`` images).
            samples: S, fixed augmentation samples averaged (official eval: 10).
            augment: applied to the K-times expanded batch, ``augment(x, generator=g)`` (official: random
                resized crop at scale 0.54). ``pre_augment``: applied before the expansion (official:
                random horizontal flip). Both may be None.
            seed: sample s uses ``torch.Generator`` seeded ``seed + s`` on every call.
            chunk_size: training-bank rows compared at a time when scoring.
            device: default the model's device.
        Returns:
            an :class:`EnsembleScore` on ``device`` holding axis (K, M, d) and weights (K,).
        """
        _check_images(train_images, "train_images")
        K = _check_policy(policy)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        device = torch.device(device) if device is not None else _model_device(model)
        if weighting not in ("standardized", "official"):
            raise ValueError(f"weighting must be 'standardized' or 'official', got {weighting!r}")
        if weighting == "standardized" and train_images.shape[0] < 3:
            raise ValueError("weighting='standardized' needs at least 3 training images")
        self = cls(model, policy, torch.zeros(K, 1, 1), torch.ones(K), torch.ones(K), samples=samples,
                   augment=augment, pre_augment=pre_augment, seed=seed, chunk_size=chunk_size, weighting=weighting)
        proj, logit = [], []
        with eval_mode(model), torch.no_grad():
            for start in range(0, train_images.shape[0], batch_size):
                xb = to_float(train_images[start:start + batch_size].to(device))
                p, lg = self.chunk_features(xb)
                proj.append(p)
                logit.append(lg)
        p = torch.cat(proj, dim=1)  # (K, M, d)
        lg = torch.cat(logit, dim=1)  # (K, M)
        norms = p.norm(dim=2)  # (K, M)
        self.axis = F.normalize(p, dim=2)
        if weighting == "standardized":
            sim_train = _leave_one_out_sim(p, self.axis, chunk_size)  # (K, M)
            s_mu, s_sd = sim_train.mean(dim=1), sim_train.std(dim=1).clamp_min(1e-8)
            l_mu, l_sd = lg.mean(dim=1), lg.std(dim=1).clamp_min(1e-8)
            self.weight_sim, self.weight_cls = 1.0 / s_sd, (1.0 / l_sd) * float(use_head)
            self.offset = -(s_mu / s_sd + (l_mu / l_sd) * float(use_head))
            return self
        self.weight_sim = 1.0 / norms.mean(dim=1)
        mean_logit = lg.mean(dim=1)
        if use_head and (bool((mean_logit.abs() < 1e-6).any()) or bool((mean_logit <= 0).any())):
            warnings.warn(f"EnsembleScore.fit: the mean training logit of the correct transform is "
                          f"{mean_logit.tolist()}; w_cls = 1/mean is huge or negative (as in the official "
                          f"code). Is the model trained?", RuntimeWarning, stacklevel=2)
        self.weight_cls = 1.0 / mean_logit if use_head else torch.zeros_like(mean_logit)
        return self

    def chunk_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample-averaged per-chunk projection (K, N, d) and correct-transform logit (K, N) of float x (N, C, H, W).

        Differentiable w.r.t. ``x``; the model must already be in the wanted mode (``__call__`` sets eval).
        """
        K, n = self.K, x.shape[0]
        p_sum = None
        l_sum = None
        for s in range(self.samples):
            g = make_generator(self.seed + s, x.device)
            xs = self.pre_augment(x, generator=g) if self.pre_augment is not None else x
            xe, _ = self.policy.expand(xs, generator=g)
            if xe.shape[0] != K * n:
                raise ValueError(f"policy.expand returned {xe.shape[0]} images for {n} inputs; expected K*N = {K * n}")
            if self.augment is not None:
                xe = self.augment(xe, generator=g)
            out = self.model(xe)
            if out.logits.shape[1] < K:
                raise ValueError(f"the model's transform head has {out.logits.shape[1]} outputs, the policy K={K}")
            p = out.projection.float().view(K, n, -1)
            lg = torch.diagonal(out.logits.float().view(K, n, -1)[:, :, :K], dim1=0, dim2=2).T  # (K, N)
            p_sum = p if p_sum is None else p_sum + p
            l_sum = lg if l_sum is None else l_sum + lg
        assert p_sum is not None and l_sum is not None
        return p_sum / self.samples, l_sum / self.samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, lg = self.chunk_features(x)  # (K, N, d), (K, N)
        idx = _chunked_argmax_dot(p.detach(), self.axis, self.chunk_size)  # (K, N)
        sim = _gather_dot(p, self.axis, idx)  # (K, N) = ||p|| * max cos
        per_chunk = self.weight_sim[:, None] * sim + self.weight_cls[:, None] * lg + self.offset[:, None]
        return -per_chunk.mean(dim=0)


def _leave_one_out_sim(p: torch.Tensor, axis: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """(K, M): ``<p_k(x_m), axis_k[m']>`` for each training image's most similar *other* training image m'."""
    K, M = axis.shape[:2]
    own = torch.arange(M, device=axis.device)
    out = []
    for k in range(K):  # K is 2 or 4
        top = _chunked_topk_dot(axis[k], axis[k], 2, chunk_size)  # (M, 2)
        other = torch.where(top[:, 0] == own, top[:, 1], top[:, 0])
        out.append((p[k] * axis[k][other]).sum(-1))
    return torch.stack(out)


def _check_policy(policy: Any) -> int:
    K = getattr(policy, "K", None)
    if not isinstance(K, int) or K < 1 or not callable(getattr(policy, "expand", None)):
        raise TypeError(f"policy must have an int .K >= 1 and an .expand(x, generator=) method, got {policy!r}")
    return K


def _check_samples(samples: int) -> int:
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    return samples


# --------------------------------------------------------------------------------------------- kNN
class KNNScore(AnomalyScore):
    """Mean cosine distance to the ``k`` nearest normalised training features (Mean-Shifted Contrastive style).

    ``self(x)``: float (N, C, H, W) in [0, 1] -> float32 (N,) in [0, 2]. The training bank is stored
    L2-normalised (M, d); see :func:`knn_distance`.
    """

    name = "knn"
    _tensor_attrs = ("bank",)

    def __init__(self, model: nn.Module, bank: torch.Tensor, *, k: int = 2, feature: FeatureName = "features",
                 chunk_size: int = 4096) -> None:
        super().__init__(model)
        if feature not in ("features", "projection"):
            raise ValueError(f"feature must be 'features' or 'projection', got {feature!r}")
        if bank.dim() != 2:
            raise ValueError(f"bank must be (M, d), got {tuple(bank.shape)}")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= bank.shape[0]:
            raise ValueError(f"k must be an int in [1, {bank.shape[0]}] (number of training images), got {k!r}")
        self.bank = F.normalize(bank.float(), dim=1)
        self.k = k
        self.feature = feature
        self.chunk_size = _check_chunk_size(chunk_size)

    @classmethod
    def fit(cls, model: nn.Module, train_images: torch.Tensor, *, k: int = 2, feature: FeatureName = "features",
            batch_size: int = 256, chunk_size: int = 4096,
            device: torch.device | str | None = None) -> "KNNScore":
        """Store the normalised ``feature`` of every training image (uint8/float (M, C, H, W))."""
        if feature not in ("features", "projection"):
            raise ValueError(f"feature must be 'features' or 'projection', got {feature!r}")
        bank = model_features(model, train_images, feature, batch_size=batch_size, device=device)
        return cls(model, bank, k=k, feature=feature, chunk_size=chunk_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = getattr(self.model(x), self.feature).float()
        return knn_distance(f, self.bank, self.k, self.chunk_size)


# --------------------------------------------------------------------------------------------- Mahalanobis
class MahalanobisScore(AnomalyScore):
    """Mahalanobis distance of the penultimate (or projection) features to a Gaussian fitted on training data.

    ``score(x) = sqrt((f(x) - mu)^T P (f(x) - mu))`` with the precision ``P`` of the shrunk covariance
    ``(1 - a) S + a * trace(S)/d * I`` (S the maximum-likelihood covariance, as sklearn). ``a`` is the
    Ledoit-Wolf estimate (``shrinkage="ledoit_wolf"``, sklearn's ``ledoit_wolf_shrinkage``) or a fixed
    float in [0, 1]. ``P`` is computed once, in float64, at fit time (pseudo-inverse, so ``a = 0`` with
    fewer images than dimensions still works). ``self(x)``: float (N, C, H, W) -> float32 (N,) >= 0.
    """

    name = "mahalanobis"
    _tensor_attrs = ("mean", "precision")

    def __init__(self, model: nn.Module, mean: torch.Tensor, precision: torch.Tensor, *,
                 feature: FeatureName = "features", shrinkage_used: float = float("nan")) -> None:
        super().__init__(model)
        if feature not in ("features", "projection"):
            raise ValueError(f"feature must be 'features' or 'projection', got {feature!r}")
        d = mean.shape[-1]
        if mean.shape != (d,) or precision.shape != (d, d):
            raise ValueError(f"mean must be (d,) and precision (d, d), got {tuple(mean.shape)} / "
                             f"{tuple(precision.shape)}")
        self.mean = mean.float()
        self.precision = precision.float()
        self.feature = feature
        self.shrinkage_used = float(shrinkage_used)

    @classmethod
    def fit(cls, model: nn.Module, train_images: torch.Tensor, *, feature: FeatureName = "features",
            shrinkage: float | Literal["ledoit_wolf"] = "ledoit_wolf", batch_size: int = 256,
            device: torch.device | str | None = None) -> "MahalanobisScore":
        """Fit mean and shrunk precision on the ``feature`` of the training images (M >= 2)."""
        if feature not in ("features", "projection"):
            raise ValueError(f"feature must be 'features' or 'projection', got {feature!r}")
        if train_images.shape[0] < 2:
            raise ValueError(f"train_images needs at least 2 images, got {train_images.shape[0]}")
        f = model_features(model, train_images, feature, batch_size=batch_size, device=device).double()
        mean, precision, a = gaussian_fit(f, shrinkage)
        return cls(model, mean, precision, feature=feature, shrinkage_used=a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = getattr(self.model(x), self.feature).float()
        diff = f - self.mean
        d2 = ((diff @ self.precision) * diff).sum(dim=1)
        return d2.clamp_min(1e-12).sqrt()


def gaussian_fit(f: torch.Tensor, shrinkage: float | Literal["ledoit_wolf"] = "ledoit_wolf"
                 ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mean (d,), precision (d, d) and the shrinkage used, for features f (M, d) (computed in float64)."""
    f = f.double()
    mean = f.mean(dim=0)
    xc = f - mean
    cov = xc.T @ xc / f.shape[0]
    if isinstance(shrinkage, str):
        if shrinkage != "ledoit_wolf":
            raise ValueError(f"shrinkage must be 'ledoit_wolf' or a float in [0, 1], got {shrinkage!r}")
        from sklearn.covariance import ledoit_wolf_shrinkage

        a = float(ledoit_wolf_shrinkage(xc.cpu().numpy(), assume_centered=True))
    else:
        a = float(shrinkage)
        if not (0.0 <= a <= 1.0) or math.isnan(a):
            raise ValueError(f"shrinkage must be 'ledoit_wolf' or a float in [0, 1], got {shrinkage!r}")
    d = cov.shape[0]
    mu = torch.trace(cov) / d
    shrunk = (1.0 - a) * cov + a * mu * torch.eye(d, dtype=cov.dtype, device=cov.device)
    precision = torch.linalg.pinv(shrunk, hermitian=True)
    return mean, precision, a
