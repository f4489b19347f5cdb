"""The bar beside every robust number: detectors that learn nothing, evaluated like the trained ones.

A robust AUROC means little on its own. Two detectors need no training and set the bar a trained one must clear:

- the **pixel kNN** (:class:`radlib.certify.PixelKNNScore`): mean L2 distance to the 2 nearest normal training
  images in pixel space, with the AUROC it is *certified* to keep under any L-inf attack of that eps (a lower bound
  no attack can beat, :func:`radlib.certify.certified_auroc`);
- the **untrained network**: the network training starts from, scored the same way as the trained detectors.

:func:`reference_rows` evaluates both with the trained detectors' attacks, seed and test split;
:func:`verdict` says, from the numbers of the run, whether raw pixels or learning win and why.

Example:
    >>> from radlib.pipeline import load_data
    >>> from radlib.profiles import get_profile
    >>> from radlib.reference import reference_rows
    >>> p = get_profile("smoke")
    >>> ds = load_data("digits", "0", 12, p, max_train=24, max_test=30)
    >>> refs = reference_rows(ds, p, ["pgd-2@4/255"], untrained_network=False)
    >>> ref = refs["pixel kNN"]
    >>> ref.certified_under("pgd-2@4/255") <= ref.eval.auroc_under("pgd-2@4/255") <= ref.eval.clean_auroc
    True
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from .cache import cached_eval, eval_key, reference_dir, resolve_cache, source_digest, writable_root
from .certify import PixelKNNScore, certified_auroc
from .data import ADDataset
from .device import select_device
from .evaluate import EvalResult, evaluate
from .metrics import format_eps
from .profiles import Profile
from .score import ScoreKind, fit_score
from .specs import AttackSpec, as_spec

__all__ = ["Reference", "reference_rows", "verdict"]


@dataclass
class Reference:
    """A detector that learns nothing, evaluated with the same attacks as the trained ones.

    ``certified`` maps an attack's name to the AUROC (%) the detector is certified to keep under any attack in that
    L-inf ball; None where no certificate exists (the untrained network).
    """

    name: str
    eval: EvalResult
    certified: dict[str, float] | None = None

    def certified_under(self, attack_name: str) -> float | None:
        """The certified AUROC (%) under the named attack, or None."""
        return None if self.certified is None else self.certified.get(attack_name)


def reference_rows(ds: ADDataset, profile: Profile, attacks: Sequence[AttackSpec | str], *,
                   device: str | torch.device | None = None, seed: int = 0, score_kind: ScoreKind | None = None,
                   untrained_network: bool = True, method: str = "cobra", pixel_knn: bool = True,
                   cache: bool | str | os.PathLike[str] = False, **overrides: object) -> dict[str, Reference]:
    """``{"pixel kNN": ..., "untrained network": ...}``, evaluated clean and under ``attacks`` on ``ds.test`` with
    ``seed``, as :func:`radlib.pipeline.run_method` evaluates a trained detector.

    The untrained network is the profile's ``method`` network (with the :class:`~radlib.train.TrainConfig`
    ``overrides``, e.g. ``width=32``) at its initialisation for ``seed`` (exactly the weights training would start
    from), scored with ``score_kind`` (default the profile's; ``"own"`` becomes the feature kNN: an untrained head
    carries no signal). Certificates exist for L-inf attacks only. ``pixel_knn`` / ``untrained_network``: which
    rows to compute.
    ``cache``: True (the checkpoint cache's root, :mod:`radlib.cache`) or a folder: keep each row's evaluation
    (with its certificate) in :func:`radlib.cache.reference_dir` of the data set, keyed by everything that decides
    it (the training and test images, the attacks, the seed, the untrained network's config and score, the device
    type, the radlib source), so a notebook asking for rows another one computed reads them instead of attacking.
    """
    from .pipeline import untrained  # pipeline builds on everything; import it late
    from .train import TrainConfig
    dev = select_device(device)
    specs = [as_spec(a) for a in attacks]
    root = resolve_cache(cache)
    entry = None if root is None else reference_dir(ds.name, ds.normal, root=writable_root(root))
    facts = dict(source=source_digest(), train_images=ds.train.images, test_images=ds.test.images,
                 test_labels=ds.test.labels, attacks=[asdict(s) for s in specs], seed=seed, device=dev.type)

    def kept(compute: Callable[[], EvalResult], **row: object) -> EvalResult:
        return cached_eval(entry, eval_key(**facts, **row) if entry else "", compute)[0]

    rows: dict[str, Reference] = {}
    if pixel_knn:
        def pixel() -> EvalResult:
            knn = PixelKNNScore.fit(ds.train.images, k=2, device=dev)
            res = evaluate(knn, ds.test, attacks=specs, device=dev, seed=seed)
            res.protocol["certified_auroc"] = {s.name: certified_auroc(*knn.bounds(ds.test.images, s.eps),
                                                                       ds.test.labels)
                                               for s in specs if s.norm == "linf"}
            return res

        res = kept(pixel, row="pixel kNN", k=2)
        rows["pixel kNN"] = Reference("pixel kNN (no training)", res, dict(res.protocol["certified_auroc"]))
    if untrained_network:
        kind = score_kind or profile.score
        kind = "knn" if kind == "own" else kind
        cfg = TrainConfig.from_profile(profile, method=method, dataset=ds.name, image_size=ds.image_size,
                                       n_train=len(ds.train.images), category=ds.normal, channels=ds.channels,
                                       seed=seed, **overrides)

        def network() -> EvalResult:
            score = fit_score(untrained(cfg, device=dev), ds.train.images, kind=kind, seed=seed)
            return evaluate(score, ds.test, attacks=specs, device=dev, seed=seed, precision=profile.eval_precision)

        rows["untrained network"] = Reference(
            f"untrained network ({kind} score)",
            kept(network, row="untrained network", config=asdict(cfg), kind=kind, precision=profile.eval_precision))
    return rows


def _mean(res: EvalResult | Sequence[EvalResult], attack_name: str) -> tuple[float, float]:
    """(mean clean AUROC, mean AUROC under ``attack_name``) over one result or one per seed."""
    results = [res] if isinstance(res, EvalResult) else list(res)
    return (float(np.mean([r.clean_auroc for r in results])),
            float(np.mean([r.auroc_under(attack_name) for r in results])))


def verdict(trained: Mapping[str, EvalResult | Sequence[EvalResult]], refs: Mapping[str, Reference],
            attack_name: str) -> str:
    """Two or three sentences, from this run's numbers, on whether raw pixels or learning win under ``attack_name``
    and why. ``trained`` maps a label to one result or one per seed (means are compared); ``refs`` is
    :func:`reference_rows`' output."""
    if not trained:
        raise ValueError("no trained detectors to compare")
    if "pixel kNN" not in refs:
        raise ValueError("refs must hold the 'pixel kNN' row (reference_rows)")
    means = {label: _mean(r, attack_name) for label, r in trained.items()}
    best = max(means, key=lambda lb: means[lb][1])
    b_clean, b_rob = means[best]
    pix = refs["pixel kNN"]
    p_clean, p_rob = pix.eval.clean_auroc, pix.eval.auroc_under(attack_name)
    cert = pix.certified_under(attack_name)
    spec = pix.eval[attack_name].spec
    at = f"in+out PGD-{spec.steps} at {format_eps(spec.eps)}" if spec.mode == "both" else spec.name
    cert_txt = f", certified {cert:.1f}" if cert is not None else ""
    text = (f"Under {at} the most robust trained detector here, {best}, keeps {b_rob:.1f} AUROC ({b_clean:.1f} "
            f"clean); the pixel kNN, which learns nothing, keeps {p_rob:.1f} ({p_clean:.1f} clean{cert_txt})")
    if "untrained network" in refs:
        u = refs["untrained network"].eval
        text += f" and the untrained network {u.auroc_under(attack_name):.1f} ({u.clean_auroc:.1f} clean)"
    text += ". "
    if b_rob > p_rob and b_clean >= p_clean:
        text += (f"Learning earns its place: {b_rob - p_rob:+.1f} points over raw pixels under attack. Pixel distances "
                 "fail where normal images differ from each other everywhere (on a texture: its random phase, "
                 "lighting, grain) while a defect covers a few per cent of the image: the nearest normal image is far away "
                 "for every test image, defective or not, so the detector has to learn what normal looks like.")
    elif p_rob >= b_rob and p_clean >= max(b_clean, 80.0):
        text += (f"Raw pixels win by {p_rob - b_rob:+.1f} points under attack. They win where the images are small, "
                 "aligned and alike and a defect changes many pixels: the distance to the nearest normal image is "
                 "then already a strong detector, and one with a certificate, which no trained detector here has. "
                 "Learning is needed where that distance fails (textures, notebook 00 and 08).")
    elif p_rob >= b_rob:
        text += (f"No trained detector here beats raw pixels under attack ({p_rob - b_rob:+.1f} points for the "
                 f"pixels), although the pixels detect little ({p_clean:.1f} clean): nothing in this run has learned a "
                 "robust notion of normal yet (too short a training, or the wrong recipe for these images).")
    else:
        text += (f"Under attack the trained detector is ahead ({b_rob - p_rob:+.1f} points), but raw pixels are better "
                 f"on clean images ({p_clean - b_clean:+.1f}): a trade-off, not a win; report both.")
    return text
