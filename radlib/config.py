"""The one config path: :class:`TrainConfig` (everything a training run needs, as plain data) and the one
mapping from a :class:`~radlib.profiles.Profile` to it (:data:`PROFILE_FIELDS`, :meth:`TrainConfig.from_profile`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .methods import get_method
from .models import ModelConfig
from .profiles import Profile
from .data import dataset_info
from .pseudo_anomaly import Policy, policy_for

__all__ = ["TrainConfig", "PROFILE_FIELDS"]

#: Profile field -> TrainConfig field: the one mapping between the two (:meth:`TrainConfig.from_profile`; a test
#: checks it field by field). Besides these, a profile sets ``epochs`` (its step budget), ``image_size`` and ``crop``
#: (by the dataset's resolution).
PROFILE_FIELDS: dict[str, str] = {
    "batch_size": "batch_size", "lr": "lr", "optimizer": "optimizer", "warmup_epochs": "warmup_epochs",
    "train_attack_steps": "attack_steps", "train_eps": "eps", "width": "width", "amp": "amp",
    "opposite_weight": "opposite_weight",
}


@dataclass
class TrainConfig:
    """Everything a run needs, as plain data (stored in every checkpoint).

    The defaults are a runnable recipe: the ``cpu`` profile's (AdamW 2e-3 with one warm-up epoch, batch 16,
    width 16, 2-step training attacks at 8/255, opposite-pair weight 2) for 10 epochs on 32 px ``surfaces``;
    ``TrainConfig() == TrainConfig.from_profile(get_profile("cpu"), epochs=10)``. Build configs from a profile
    (:meth:`from_profile`) to get a profile's sizes.

    Example:
        >>> from radlib.train import TrainConfig
        >>> cfg = TrainConfig(method="csi", dataset="digits", image_size=16)
        >>> cfg.adversarial, cfg.policy().K, cfg.optimizer
        (False, 4, 'adam')

    Attributes:
        method: a name of :data:`radlib.methods.METHODS`.
        dataset: dataset name used to pick the pseudo-anomaly policy (``policy_for(dataset)``).
        category: the normal class / category trained on (recorded so a checkpoint can be evaluated alone).
        epochs, batch_size: N images per step (the step sees K*N per view).
        steps_per_epoch: None = one pass over the training set (at least 1 step); an int resamples that many
            batches per epoch (the paper's MVTec recipe resamples 10,000 images per epoch).
        optimizer: ``lars`` (paper), ``sgd`` or ``adam``; lr is the peak lr after warm-up.
        warmup_epochs: linear warm-up from ``lr * warmup_start`` (the paper: x10 over 10 epochs), then cosine to 0.
        temperature: NT-Xent temperature (0.5 in the paper; msc uses ``msc_temperature``).
        nt_xent_reduction: ``"anchors"`` (official scale: per anchor, the sum over its V-1 positives) or
            ``"pairs"`` (the mean over (anchor, positive) pairs: the same scale for 2 and 4 views).
        eps, attack_steps, attack_alpha, attack_norm: training attacks (paper: L-inf 8/255, 10 steps;
            ``attack_alpha=None`` = :func:`radlib.attacks.step_size`, ``2.5 * eps / steps``).
        opposite_weight: weight of the opposite-pair term (methods with ``opposite``: ``cobra``); radlib's own
            term, so no official value: 2.0 in the ``cpu`` recipe, 1.0 in the other profiles
            (:attr:`radlib.profiles.Profile.opposite_weight`).
        cls_weight: weight of the K-way head's cross-entropy (0 drops the head's loss).
        crop: random resized crop in the SimCLR augmentation (paper: low-resolution data only).
        amp: bf16 autocast where the hardware runs bf16 natively (CUDA with bf16 tensor cores; CPUs with
            AVX512-BF16 or AMX), see :func:`radlib.device.autocast_dtype`; fp32 elsewhere.
        channels_last: NHWC memory format (CUDA; CPUs with oneDNN), see
            :func:`radlib.device.uses_channels_last` and the CPU rows of ``benchmarks/RESULTS.md``.
        width: ResNet-18 width (64 standard; smaller for CPU smoke runs).
        checkpoint_every: write ``last.pt`` every this many epochs (and always at the end).
    """

    method: str = "cobra"
    dataset: str = "surfaces"
    category: str | None = None
    image_size: int = 32
    channels: int = 3
    epochs: int = 10
    batch_size: int = 16
    steps_per_epoch: int | None = None
    optimizer: str = "adam"
    lr: float = 2e-3
    warmup_epochs: int = 1
    warmup_start: float = 0.1
    weight_decay: float = 1e-6
    temperature: float = 0.5
    nt_xent_reduction: Literal["pairs", "anchors"] = "anchors"
    eps: float = 8 / 255
    attack_steps: int = 2
    attack_alpha: float | None = None
    attack_norm: str = "linf"
    opposite_weight: float = 2.0
    cls_weight: float = 1.0
    msc_temperature: float = 0.25
    msc_angular_weight: float = 0.0
    crop: bool = False
    augment_strength: float = 1.0
    amp: bool = True
    channels_last: bool = True
    width: int = 16
    seed: int = 0
    checkpoint_every: int = 1
    log_every: int = 10

    def __post_init__(self) -> None:
        get_method(self.method)
        for name in ("epochs", "batch_size", "attack_steps", "width", "checkpoint_every", "log_every"):
            if getattr(self, name) < (0 if name == "attack_steps" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.warmup_epochs < 0 or (self.steps_per_epoch is not None and self.steps_per_epoch < 1):
            raise ValueError(f"warmup_epochs must be >= 0 and steps_per_epoch >= 1 or None, got warmup_epochs="
                             f"{self.warmup_epochs}, steps_per_epoch={self.steps_per_epoch}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= 2**32 - 1:
            raise ValueError(f"seed must be an integer in [0, {2**32 - 1}], got {self.seed!r}")
        if not 0 <= self.eps <= 1:
            raise ValueError(f"eps must be in [0, 1] (pixel units, e.g. 8/255), got {self.eps}")
        if self.lr <= 0 or self.temperature <= 0:
            raise ValueError(f"lr and temperature must be > 0, got lr={self.lr}, temperature={self.temperature}")
        if self.nt_xent_reduction not in ("anchors", "pairs"):
            raise ValueError(f"nt_xent_reduction must be 'anchors' or 'pairs', got {self.nt_xent_reduction!r}")
        if self.attack_norm not in ("linf", "l2"):
            raise ValueError(f"attack_norm must be 'linf' or 'l2', got {self.attack_norm!r}")

    @property
    def adversarial(self) -> bool:
        return get_method(self.method).adversarial and self.attack_steps > 0 and self.eps > 0

    def policy(self) -> Policy | None:
        """The pseudo-anomaly policy of ``dataset`` (None for methods without pseudo-anomalies, e.g. ``msc``)."""
        return policy_for(self.dataset) if get_method(self.method).pseudo_anomalies else None

    def model_config(self) -> ModelConfig:
        """The :class:`~radlib.models.ModelConfig` that :func:`train` builds for this run."""
        policy = self.policy()
        mean = (0.5,) * self.channels
        return ModelConfig(num_transforms=policy.K if policy else 1, image_size=self.image_size, width=self.width,
                           in_channels=self.channels, mean=mean, std=mean)

    @classmethod
    def from_profile(cls, profile: Profile, method: str = "cobra", dataset: str = "surfaces",
                     image_size: int | None = None, n_train: int | None = None, **overrides: Any) -> "TrainConfig":
        """The profile's sizes for ``method`` on ``dataset`` (``overrides`` win). ``n_train``: the number of
        training images, which turns a profile's ``train_steps`` budget into epochs (:meth:`Profile.epochs_for`)."""
        low_res = dataset_info(dataset).resolution == "low"
        size = image_size or (profile.low_res_size if low_res else profile.image_size)
        base: dict[str, Any] = {field: getattr(profile, name) for name, field in PROFILE_FIELDS.items()}
        base.update(method=method, dataset=dataset, image_size=size, epochs=profile.epochs_for(n_train), crop=low_res)
        base.update(overrides)
        return cls(**base)
