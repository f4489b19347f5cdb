"""Glue for whole experiments: load data at a profile's size, train a method, fit its score, evaluate it.

The CLI, the demo, the benchmarks and the notebooks all call these, so an experiment is the same code
everywhere (no copy-pasted training or evaluation loops).

Example (a whole experiment in two calls, at toy sizes):
    >>> from radlib.pipeline import load_data, run_method
    >>> from radlib.profiles import get_profile
    >>> ds = load_data("digits", "0", 12, get_profile("smoke"), max_train=32, max_test=40)
    >>> run = run_method("csi", ds, "smoke", progress=False, epochs=1, width=4, attacks=["pgd-1@2/255"])
    >>> run.method, 0 <= run.eval.clean_auroc <= 100, run.eval.attacks[0].spec.name
    ('csi', True, 'pgd-1@2/255')
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import torch

from .cache import cache_dir, cached_eval, eval_key, is_complete, resolve_cache, writable_root
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .record import Provenance, data_identity, identity_differences
from .data import ADDataset, dataset_info, load
from .device import autocast_dtype, select_device, uses_channels_last
from .evaluate import AttackSpec, EvalResult, evaluate
from .specs import as_spec, standard_attacks
from .models import build_model
from .profiles import Profile, get_profile
from .purify import Purification, purify as purify_split
from .score import AnomalyScore, ScoreKind, fit_score
from .train import RunMismatch, TrainConfig, TrainResult, load_trained, train

__all__ = ["load_data", "default_attacks", "MethodRun", "run_method", "evaluate_checkpoint", "snapshot_epochs",
           "SNAPSHOTS_FILE", "untrained", "teaching_model", "score_protocol", "check_test_split"]


def load_data(name: str, category: str | None, image_size: int | None, profile: Profile, *, seed: int = 0,
              root: str | None = None, **options: Any) -> ADDataset:
    """:func:`radlib.data.load` at the profile's sizes.

    What the dataset declared when it registered (:func:`radlib.data.dataset_info`) decides the sizes:
    ``image_size=None`` picks ``low_res_size`` for ``resolution="low"`` data and ``image_size`` otherwise; a
    ``sizes="generated"`` set gets ``n_train``/``n_test`` images, a ``"capped"`` one is cut to
    ``max_train``/``max_test``.
    """
    info = dataset_info(name)
    if image_size is None:
        image_size = profile.low_res_size if info.resolution == "low" else profile.image_size
    if info.sizes == "generated":
        options = {"n_train": profile.n_train, "n_test": profile.n_test, **options}
    else:
        options = {"max_train": profile.max_train, "max_test": profile.max_test, **options}
    return load(name, normal=category, image_size=image_size, root=root, seed=seed, **options)


def score_protocol(profile: Profile, kind: ScoreKind = "own") -> dict[str, Any]:
    """What the score of :func:`run_method` was, for the protocol beside every number."""
    tta = "official (flip, jitter, grey, crop 0.54 at <= 64 px)" if profile.eval_augment else "none"
    return {"score_kind": kind, "score_samples": profile.eval_samples, "score_tta": tta}


def default_attacks(profile: Profile, image_size: int, steps: int | None = None) -> list[AttackSpec]:
    """The profile's headline attack: in+out L-inf PGD (8/255 at <= 64 px, 4/255 above)."""
    return [AttackSpec(method="pgd", mode="both", eps=profile.eps_for(image_size),
                       steps=steps if steps is not None else profile.eval_steps)]


@dataclass
class MethodRun:
    """A trained method, its fitted score, and its evaluation."""

    method: str
    train: TrainResult
    score: AnomalyScore
    eval: EvalResult
    cached: bool = False  # True when the weights came from a finished run in the checkpoint cache
    eval_cached: bool = False  # True when ``eval`` came from the cache entry (the same evaluation made before)
    #: the weights after some epochs (``run_method(snapshots=...)``): epoch -> CPU state dict; empty when not asked
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)


#: the file beside a run record that holds its snapshots (``run_method(snapshots=...)``)
SNAPSHOTS_FILE = "snapshots.pt"


def snapshot_epochs(epochs: int, n: int = 6) -> list[int]:
    """Up to ``n`` epochs spread evenly over ``1 .. epochs``, the last one included (``epochs`` >= 1, ``n`` >= 1):
    where :func:`run_method` keeps the weights when ``snapshots=True``.

        >>> snapshot_epochs(10), snapshot_epochs(3), snapshot_epochs(10, n=1)
        ([1, 3, 5, 6, 8, 10], [1, 2, 3], [10])
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    k = min(n, epochs)
    if k == 1:
        return [epochs]
    return sorted({int(round(1 + i * (epochs - 1) / (k - 1))) for i in range(k)})


def _wanted_snapshots(snapshots: bool | Sequence[int], epochs: int) -> list[int]:
    if snapshots is True:
        return snapshot_epochs(epochs)
    if snapshots is False:
        return []
    if isinstance(snapshots, (str, bytes)) or not all(isinstance(e, int) and not isinstance(e, bool)
                                                       for e in snapshots):
        raise ValueError(f"snapshots must be True, False or a list of epochs (ints), got {snapshots!r}")
    bad = [e for e in snapshots if not 1 <= e <= epochs]
    if bad:
        raise ValueError(f"snapshot epochs must lie in 1..{epochs} (the run's epochs), got {bad}")
    return sorted(set(snapshots))


def _stored_snapshots(path: Path, cfg: TrainConfig, want: list[int]) -> dict[int, dict[str, torch.Tensor]] | None:
    """The wanted snapshots from ``path`` when it holds them all for this config; None otherwise (no file, a
    damaged one, another config, epochs missing): the run is then trained again to take them."""
    try:
        state = load_checkpoint(path, required=("config", "epochs"))
    except CheckpointError:
        return None
    held = state["epochs"]
    if state["config"] != asdict(cfg) or not isinstance(held, dict) or not set(want) <= set(held):
        return None
    return {e: held[e] for e in want}


def _train_run(cfg: TrainConfig, ds: ADDataset, profile: Profile, *, device: torch.device,
               out: str | Path | None, cache: bool | str | Path, progress: bool,
               on_epoch_end: Callable[[int, dict[str, float], Any], None] | None, snapshots: bool | Sequence[int],
               provenance: Provenance) -> tuple[TrainResult, bool, dict[int, dict[str, torch.Tensor]], Path | None]:
    """Train ``cfg`` on ``ds.train`` into ``out`` or the cache entry (:func:`run_method` says how), taking the
    wanted snapshots; returns the result, whether it came finished from the cache, the snapshots, and the cache
    entry (None without a cache)."""
    root = resolve_cache(cache)
    if root is not None:
        if out is not None:
            raise ValueError("give either out= (a run folder) or cache= (the checkpoint cache), not both")
        out = cache_dir(cfg, ds.train.images, root=writable_root(root), profile=profile.name)
    complete = out is not None and is_complete(out, cfg)  # one look at the run record
    cached = complete and root is not None
    want = _wanted_snapshots(snapshots, cfg.epochs)
    kept: dict[int, dict[str, torch.Tensor]] = {}
    hook, resume, taking = on_epoch_end, True, False
    if want:
        stored = _stored_snapshots(Path(out) / SNAPSHOTS_FILE, cfg, want) if complete else None  # type: ignore[arg-type]
        if stored is not None:
            kept = stored
        else:  # take them while training, from the first epoch (a resumed run would miss the earlier ones)
            cached, resume, taking = False, False, True

            def hook(epoch: int, means: dict[str, float], model: Any) -> None:
                if epoch in want:
                    kept[epoch] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                if on_epoch_end is not None:
                    on_epoch_end(epoch, means, model)
    try:
        res = train(cfg, ds, out=out, device=device, progress=progress and not cached, on_epoch_end=hook,
                    resume=resume, provenance=provenance)
    except (CheckpointError, RunMismatch) as e:  # what the entry holds; other errors are the caller's
        if root is None:
            raise
        raise CheckpointError(f"the cache entry {out} cannot be used ({e}); delete that folder and it is retrained"
                              ) from None
    if taking and out is not None:
        save_checkpoint({"config": asdict(cfg), "epochs": kept}, Path(out) / SNAPSHOTS_FILE)
    return res, cached, kept, (Path(out) if root is not None and out is not None else None)


def run_method(method: str, ds: ADDataset, profile: Profile | str | None = None, *, device: str | None = None,
               seed: int = 0, out: str | Path | None = None, attacks: Sequence[AttackSpec | str] | None = None,
               progress: bool = True, eval_batch_size: int = 128,
               on_epoch_end: Callable[[int, dict[str, float], Any], None] | None = None,
               score_kind: ScoreKind | None = None, purify: Purification | str | dict[str, Any] | None = None,
               cache: bool | str | Path = False, snapshots: bool | Sequence[int] = False,
               **overrides: Any) -> MethodRun:
    """Train ``method`` on ``ds.train`` with the profile's recipe, fit its score, evaluate clean + attacked.

    ``score_kind`` is passed to :func:`fit_score` (``"own"``: the method's score; ``"knn"``: feature kNN;
    ``"patch"``: the patch score; None: the profile's ``score``).
    ``purify``: clean a contaminated training split first (LLBNAD, :func:`radlib.purify.purify`): a scorer name
    (``"pixel_knn"`` or a method), a dict of :func:`~radlib.purify.purify` arguments, or a ready
    :class:`~radlib.purify.Purification` of ``ds.train``. The method then trains on, and its score is fitted
    on, the kept images only; ``eval.protocol["purification"]`` records the filter (precision, recall).
    ``overrides`` change :class:`~radlib.train.TrainConfig` fields (e.g. ``epochs=5``, ``cls_weight=0``);
    ``on_epoch_end`` is passed to :func:`~radlib.train.train` (live curves, snapshots).
    ``cache``: True (the default root) or a folder: train into :func:`radlib.cache.cache_dir` of the config and
    the (kept) training images, so a second call with the same config, data and radlib source loads the finished
    checkpoint instead of training (``MethodRun.cached``; ``train.seconds`` stays the original training time;
    ``on_epoch_end`` is not called for a cached run). Exclusive with ``out``.
    ``snapshots``: keep the weights after some epochs (``MethodRun.snapshots``, epoch -> CPU state dict): True =
    :func:`snapshot_epochs` of the run, or a list of epochs. With ``out`` or ``cache`` they are also written beside
    the run record (``snapshots.pt``, atomic) and a finished run serves them from there; a finished run without
    them is trained again from its first epoch to take them (training is seeded: the same weights on a CPU).
    """
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    score_kind = score_kind or profile.score
    check_test_split(ds)
    dev = select_device(device)
    loaded = ds  # the data set as given: its identity is recorded, with the purification
    if purify is not None:
        if not isinstance(purify, Purification):
            kw: dict[str, Any] = {"method": purify} if isinstance(purify, str) else dict(purify)
            kw.setdefault("profile", profile)
            kw.setdefault("seed", seed)
            purify = purify_split(ds, device=dev, progress=progress, **kw)
        ds = purify.apply(ds)
    cfg = TrainConfig.from_profile(profile, method=method, dataset=ds.name, image_size=ds.image_size,
                                   n_train=len(ds.train.images), category=ds.normal, channels=ds.channels,
                                   seed=seed, **overrides)
    res, cached, kept, entry = _train_run(cfg, ds, profile, device=dev, out=out, cache=cache, progress=progress,
                                          on_epoch_end=on_epoch_end, snapshots=snapshots,
                                          provenance=Provenance.of(loaded, profile, purify))
    score = fit_score(res, ds.train.images, samples=profile.eval_samples, seed=seed, kind=score_kind,
                      augment=profile.eval_augment)
    specs = [as_spec(a) for a in (attacks if attacks is not None else default_attacks(profile, ds.image_size))]
    key = eval_key(attacks=[asdict(s) for s in specs], test_images=ds.test.images, test_labels=ds.test.labels,
                   score_kind=score_kind, samples=profile.eval_samples, augment=profile.eval_augment, seed=seed,
                   batch_size=eval_batch_size, precision=profile.eval_precision, device=dev.type) if entry else ""
    # the entry keeps its evaluations: the same one again is read, not attacked again
    result, eval_cached = cached_eval(entry, key, lambda: evaluate(
        score, ds.test, attacks=specs, batch_size=eval_batch_size, device=dev, seed=seed,
        precision=profile.eval_precision))
    result.protocol.update(method=method, train_seconds=round(res.seconds, 2), profile=profile.name,
                           train_precision=_train_precision(cfg, dev), **score_protocol(profile, score_kind))
    if purify is not None:
        result.protocol["purification"] = purify.summary()
    return MethodRun(method, res, score, result, cached, eval_cached, kept)


def evaluate_checkpoint(ckpt: str | Path, *, attack: Literal["pgd", "apgd", "square", "standard", "none"] = "pgd",
                        steps: int = 10, eps: float = 8 / 255, mode: Literal["both", "in", "out"] = "both", restarts: int = 1, device: str | None = None,
                        max_test: int | None = None, root: str | None = None,
                        score_kind: ScoreKind | None = None, other_data: bool = False, queries: int = 1000,
                        surrogate: str | Path | None = None) -> EvalResult:
    """Evaluate a run written by ``radlib train`` (or :func:`run_method` with ``out=`` / ``cache=``) on its own
    test split, from its run record alone (:mod:`radlib.record`): the profile it was trained with (overrides
    included), the data rebuilt with the recorded arguments, the purified training split as the score's bank.

    The rebuilt data must be the data the run was trained on (same sizes, same SHA-256 of both splits); else a
    ValueError names every differing field. ``root``: read the data from another folder (a moved copy: the
    digests must still match). ``other_data=True`` evaluates on whatever the recorded arguments (and ``root``) load
    now, and the protocol says so (``data_matches_training``, ``data_differs``). ``max_test``: a seeded subset of
    that many test images, recorded in the protocol (``test_subset``). ``score_kind``: ``"own"``, ``"knn"``,
    ``"patch"`` (see :func:`fit_score`) or None (the training profile's ``score``).

    ``attack``: ``"pgd"``, ``"apgd"`` (``steps`` iterations), ``"square"`` (``queries`` queries), ``"standard"``
    (:func:`radlib.specs.standard_attacks`: APGD-``steps`` with ``restarts`` restarts, Square-``queries``, a transfer
    PGD-``steps`` from ``surrogate`` when given, and their per-sample worst case) or ``"none"``. ``surrogate``:
    another run's checkpoint whose score (same kind, fitted on the same training split) transfer attacks are
    crafted on."""
    names = ["surrogate"] if surrogate is not None else []
    if attack == "standard":
        attacks = standard_attacks(eps, steps=steps, restarts=restarts, queries=queries, surrogates=names)
    elif attack == "none":
        attacks = []
    else:  # validated before any loading
        attacks = [AttackSpec(method=attack, mode=mode, eps=eps, steps=queries if attack == "square" else steps,
                              restarts=restarts, surrogate=names[0] if names else None)]
    if max_test is not None and (isinstance(max_test, bool) or not isinstance(max_test, int) or max_test < 2):
        raise ValueError(f"max_test must be an int >= 2 (a normal and an anomaly), got {max_test!r}")
    res = load_trained(ckpt, device=device)
    record = res.record
    assert record is not None
    if record.data is None or record.data.get("load") is None:
        raise CheckpointError(f"{ckpt} was trained on images given in memory: radlib cannot rebuild its data; fit "
                              f"its score with radlib.score.fit_score and evaluate it with radlib.evaluate.evaluate")
    profile = record.profile_object()
    score_kind = score_kind or profile.score
    load_args = dict(record.data["load"])
    if root:
        load_args["root"] = str(Path(root).resolve())
    ds = load(**load_args)
    differs = identity_differences(record.data, data_identity(ds))
    if differs and not other_data:
        raise ValueError(f"{ckpt} was trained on other data than the data set rebuilt now from "
                         f"{load_args.get('root') or load_args['name']} ({'; '.join(differs)}); evaluate on the "
                         f"training data, or pass --other-data (other_data=True) to evaluate on this data anyway")
    if record.purification is not None:  # the score's bank is the purified training split
        if differs:
            raise ValueError(f"{ckpt} was trained on a purified split of other data ({'; '.join(differs)}): its kept "
                             f"rows name images of the training data only")
        ds = replace(ds, train=ds.train.subset(torch.tensor(record.purification["kept"], dtype=torch.long)))
    subset = None
    if max_test is not None and max_test < len(ds.test):
        n_all = len(ds.test)
        keep = torch.randperm(n_all, generator=torch.Generator().manual_seed(record.config.seed))[:max_test]
        ds = replace(ds, test=ds.test.subset(keep.sort().values))
        subset = f"{max_test} of {n_all} test images (seed {record.config.seed})"
    check_test_split(ds)
    cfg = record.config
    score = fit_score(res, ds.train.images, samples=profile.eval_samples, seed=cfg.seed, kind=score_kind,
                      augment=profile.eval_augment)
    surrogates = None
    if surrogate is not None:
        other = load_trained(surrogate, device=device)
        surrogates = {"surrogate": fit_score(other, ds.train.images, samples=profile.eval_samples, seed=cfg.seed,
                                             kind=score_kind, augment=profile.eval_augment)}
    result = evaluate(score, ds.test, attacks=attacks, device=res.model.transform_head.weight.device,
                      seed=cfg.seed, precision=profile.eval_precision, surrogates=surrogates)
    result.protocol.update(method=cfg.method, checkpoint=str(ckpt), **score_protocol(profile, score_kind),
                           surrogate=None if surrogate is None else str(surrogate),
                           dataset=ds.name, category=ds.normal, root=load_args.get("root"), image_size=ds.image_size,
                           channels=ds.channels, n_train=len(ds.train), n_test=len(ds.test),
                           data_matches_training=not differs, data_differs=differs, test_subset=subset,
                           trained_profile=profile.name)
    return result


def check_test_split(ds: ADDataset) -> None:
    """Raise ValueError *before* any training when the test split cannot give an AUROC (it needs normals and
    anomalies)."""
    n_anom = int((ds.test.labels == 1).sum())
    n_norm = len(ds.test.labels) - n_anom
    if n_anom == 0 or n_norm == 0:
        raise ValueError(f"the test split of {ds.name}/{ds.normal} has {n_norm} normal and {n_anom} anomalous "
                         f"images; an AUROC needs both (raise max_test / n_test)")


def _train_precision(cfg: TrainConfig, device: torch.device) -> str:
    amp = autocast_dtype(device, cfg.amp)
    layout = " + channels_last" if uses_channels_last(device, cfg.channels_last, cfg.width) else ""
    names = {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + grad scaler", None: "fp32"}
    return names.get(amp, str(amp)) + layout


def untrained(cfg: TrainConfig, *, device: str | torch.device | None = None) -> TrainResult:
    """The network ``train(cfg, ...)`` would start from (same seed, same initial weights), untrained, in eval
    mode, as a :class:`TrainResult` (0 s, no history) so :func:`fit_score` can score with it: the random-init
    reference that training has to beat. The global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        dev = select_device(device)
        model = build_model(cfg.model_config(), device=dev,
                            channels_last=uses_channels_last(dev, cfg.channels_last, cfg.width))
    return TrainResult(model.eval(), cfg, [], 0.0, None, None, cfg.policy())


def teaching_model(ds: ADDataset, profile: Profile, *, device: str | torch.device | None = None, seed: int = 0,
                   max_epochs: int = 10, method: str = "csi", cache: bool | str | Path = False
                   ) -> tuple[torch.nn.Module, str]:
    """A feature extractor for the notebooks' pictures, in eval mode, and a one-line description of it.

    ``smoke``: a random-init ResNet-18 of width 16 (instant; its features reflect raw image statistics only).
    Other profiles: ``method`` trained on ``ds`` with the profile's recipe for at most ``max_epochs`` epochs.
    ``cache``: as :func:`run_method`'s; within ``max_epochs`` the config is the one ``run_method(method, ds,
    profile, seed=seed)`` trains, so either call loads what the other trained.
    """
    n = len(ds.train.images)
    capped = {"epochs": max_epochs} if profile.epochs_for(n) > max_epochs else {}
    cfg = TrainConfig.from_profile(profile, method=method, dataset=ds.name, image_size=ds.image_size, n_train=n,
                                   category=ds.normal, channels=ds.channels, seed=seed, **capped)
    if profile.name == "smoke":
        return untrained(cfg, device=device).model, f"random-init ResNet-18 (width {cfg.width})"
    res, *_ = _train_run(cfg, ds, profile, device=select_device(device), out=None, cache=cache, progress=False,
                         on_epoch_end=None, snapshots=False, provenance=Provenance.of(ds, profile, None))
    return res.model.eval(), f"{method.upper()} trained {cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''}"
