"""Adversarial attacks in pixel space: one PGD engine, APGD, attacks on an anomaly score, interop.

Modules: :mod:`.engine` (PGD, APGD, the step-size rule), :mod:`.on_score` (attacks on a score, interop,
random noise), :mod:`.training` (ATPT, ATNT, RTP, and the three as one batched PGD).

Everything here works on float images ``x`` of shape (N, C, H, W) (any (N, ...) works) with values in the
``clamp`` range ([0, 1] by default); ``eps`` and step sizes are in the same pixel units (``8/255`` ...).
The model's normalisation lives inside the model (:class:`radlib.models.ResNet18AD`), so nothing here normalises.

- :func:`pgd` -- projected gradient ascent/descent (Madry et al. 2018) on any differentiable loss; L-inf or
  L2, random start, per-sample best-of-``restarts``. It is the single engine behind the COBRA training attacks
  (ATPT / ATNT / RTP are thin closures over it) and the evaluation attacks on the anomaly score.
- :func:`apgd` -- Auto-PGD (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness with an
  ensemble of diverse parameter-free attacks"), the step-size-free PGD inside AutoAttack.
- :func:`attack_score` -- in-attack (normals, label 0: push the score up) and out-attack (anomalies, label 1:
  push it down) on an anomaly score, as one attack with a per-sample sign.
- :class:`ScoreAsLogits` -- turns a score into 2-class logits so that untargeted attacks of other libraries
  (torchattacks, ART, AutoAttack) perform exactly the in/out attacks.
- :func:`random_noise` -- same-norm random perturbation, the baseline any attack must beat.

Model mode is the caller's business: the attacks only differentiate w.r.t. the input
(``torch.autograd.grad(loss, x_adv)``), never touch ``requires_grad`` of parameters and never accumulate
``.grad`` of weights. COBRA attacks the model in **eval** mode (BatchNorm running statistics), both during
training (ATPT/ATNT/RTP) and at test time; put the model in eval mode before calling. Gradients are enabled
inside the attacks, so they also work when called under ``torch.no_grad()``.

There are no host synchronisations (``.item()``, boolean indexing) inside the step loops; input validation
(value range, labels) syncs once per call, before the loop.

Example:
    >>> import torch
    >>> from radlib.attacks import pgd
    >>> x = torch.full((2, 3), 0.5)
    >>> adv = pgd(lambda a: a.sum(1), x, eps=0.1, steps=3, generator=torch.Generator().manual_seed(0))
    >>> bool(((adv - x).abs() <= 0.1 + 1e-6).all()), bool((adv > x).all())
    (True, True)
"""
from __future__ import annotations

from .engine import ATTACK_METHODS, MODES, NORMS, apgd, pgd, step_size
from .on_score import ScoreAsLogits, attack_score, random_noise
from .training import TRAINING_ATTACKS, atnt, atpt, random_chunk_cycle, rtp, training_attacks

__all__ = ["pgd", "apgd", "step_size", "attack_score", "ScoreAsLogits", "random_noise", "atpt", "atnt", "rtp",
           "random_chunk_cycle", "training_attacks", "TRAINING_ATTACKS", "NORMS", "MODES", "ATTACK_METHODS"]
