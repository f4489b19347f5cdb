"""Self-checking exercises of the notebook series: ``check_exercise("01.1", my_function)``.

Each notebook ends with at least two exercises of the form *write this function*; the cell holds a scaffold with a
``# your code`` gap and a call of :func:`check_exercise`, which runs the student's function on seeded random inputs
and compares it with radlib's own implementation (or, where radlib has none, with the formula the notebook states).
An unsolved scaffold (it raises ``NotImplementedError``) prints one line and returns False, so the notebook runs
top to bottom; a wrong answer raises ``AssertionError`` with what differs. Reference solutions live in
``notebooks/solutions/``, and ``tests/test_exercises.py`` runs each through its check (and a plausible wrong answer,
which must fail). Every check runs in any profile in well under a second on a CPU.

>>> check_exercise("09.1", lambda values: (sum(values) / len(values), 0.0))
Traceback (most recent call last):
    ...
AssertionError: 09.1 mean_sd([1.0, 2.0, 4.0]): expected (2.3333333333333335, 1.5275252316519468), got (2.3333333333333335, 0.0)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .certify import PixelKNNScore, certified_auroc
from .knn import knn_distance
from .losses import opposite_pair_loss
from .losses.pairs import group_labels, pair_counts, pair_matrix, spurious_negatives
from .metrics import auroc, mean_std
from .optim import warmup_cosine
from .pseudo_anomaly import rotate
from .purify import keep_count

__all__ = ["EXERCISES", "Exercise", "check_exercise"]


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``key`` "NN.k" (notebook NN), the function the student writes, and its check."""

    key: str
    function: str  # the name the scaffold defines (and notebooks/solutions/NN_*.py)
    task: str
    check: Callable[[Callable[..., Any]], None]  # raises AssertionError for a wrong answer


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _close(key: str, what: str, got: Any, want: Any, atol: float = 1e-5) -> None:
    g = torch.as_tensor(got, dtype=torch.float64) if not isinstance(got, torch.Tensor) else got.detach().double()
    w = torch.as_tensor(want, dtype=torch.float64) if not isinstance(want, torch.Tensor) else want.detach().double()
    assert g.shape == w.shape, f"{key} {what}: expected shape {tuple(w.shape)}, got {tuple(g.shape)}"
    err = float((g - w).abs().max()) if g.numel() else 0.0
    assert err <= atol, f"{key} {what}: largest difference {err:.3g} from the reference (tolerance {atol:g})"


def _equal(key: str, what: str, got: Any, want: Any) -> None:
    assert got == want, f"{key} {what}: expected {want}, got {got}"


def _scores_labels(seed: int, n: int = 60, ties: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    g = _g(seed)
    labels = (torch.rand(n, generator=g) < 0.4).long()
    labels[0], labels[1] = 0, 1
    scores = torch.randn(n, generator=g) + labels
    return (scores.mul(2).round() / 2 if ties else scores), labels


# ------------------------------------------------------------------------------------------------ 00 quickstart
def _check_00_1(f: Callable) -> None:
    for seed in range(3):
        s, y = _scores_labels(seed)
        _close("00.1", f"pairwise_auroc (seed {seed}, with ties)", f(s, y), auroc(s, y))
    y = torch.tensor([0, 0, 1, 1])
    _close("00.1", "a perfect detector", f(torch.tensor([0.0, 1.0, 2.0, 3.0]), y), 100.0)
    _close("00.1", "a perfectly inverted detector", f(torch.tensor([3.0, 2.0, 1.0, 0.0]), y), 0.0)


def _check_00_2(f: Callable) -> None:
    s, y = _scores_labels(3, ties=False)
    attacked = s + torch.randn(s.shape, generator=_g(4))
    want = torch.where(y == 0, attacked, s)
    _close("00.2", "in_attack_scores", f(s, attacked, y), want)


# ------------------------------------------------------------------------------------ 01 detection under attack
def _check_01_1(f: Callable) -> None:
    for seed in range(3):
        s, y = _scores_labels(10 + seed, n=200)
        _close("01.1", f"rank_auroc (seed {seed}, with ties)", f(s, y), auroc(s, y))


def _check_01_2(f: Callable) -> None:
    g = _g(11)
    x0 = torch.rand(4, 1, 6, 6, generator=g)
    x = (x0 + (torch.rand(x0.shape, generator=g) - 0.5) * 0.05).clamp(0, 1)
    grad = torch.randn(x0.shape, generator=g)
    eps, alpha = 0.03, 0.01
    for sign in (1.0, -1.0):
        want = torch.minimum(torch.maximum(x + sign * alpha * grad.sign(), x0 - eps), x0 + eps).clamp(0, 1)
        _close("01.2", f"pgd_step with sign {sign:+.0f}", f(x, grad, x0, eps, alpha, sign), want, atol=1e-6)


# ------------------------------------------------------------------------------------------ 02 pseudo-anomalies
def _check_02_1(f: Callable) -> None:
    for n, k in ((3, 4), (5, 2), (1, 1)):
        _close("02.1", f"chunk_labels({n}, {k})", f(n, k), group_labels(n, k))


def _check_02_2(f: Callable) -> None:
    x = torch.rand(8, 3, 5, 5, generator=_g(21))
    k = torch.tensor([0, 1, 2, 3, 5, -1, 2, 1])
    _close("02.2", "rotate_each (k per image, taken mod 4)", f(x, k), rotate(x, k), atol=0.0)


# ------------------------------------------------------------------------------------ 03 spurious negative pairs
def _check_03_1(f: Callable) -> None:
    for n, k, v in ((4, 4, 2), (3, 2, 3), (1, 4, 2), (5, 1, 2)):
        want = {key: val for key, val in pair_counts(pair_matrix(n, k, v)).items() if key != "self"}
        got = f(n, k, v)
        _equal("03.1", f"pair_kind_counts({n}, {k}, {v})", {key: int(val) for key, val in dict(got).items()}, want)


def _check_03_2(f: Callable) -> None:
    for n, k, v in ((3, 4, 2), (2, 2, 3)):
        got = torch.as_tensor(f(n, k, v))
        assert got.dtype == torch.bool, f"03.2 spurious_mask: expected a bool matrix, got {got.dtype}"
        _close("03.2", f"spurious_mask({n}, {k}, {v})", got.long(), spurious_negatives(n, k, v).long(), atol=0)


# ------------------------------------------------------------------------------------------- 04 opposite pairs
def _check_04_1(f: Callable) -> None:
    z = torch.randn(12, 7, generator=_g(41))
    u = F.normalize(z, dim=1)
    _close("04.1", "cosine_matrix", f(z), u @ u.T)


def _check_04_2(f: Callable) -> None:
    for v, k, n in ((2, 4, 3), (1, 2, 5)):
        z = torch.randn(v * k * n, 6, generator=_g(42 + v))
        _close("04.2", f"opposite_term (V={v}, K={k}, N={n})", f(z, v, k), opposite_pair_loss(z, v, k))


# ------------------------------------------------------------------------------------- 05 adversarial training
def _check_05_1(f: Callable) -> None:
    x = torch.rand(64, 1, 8, 8, generator=_g(51))
    eps = 0.05
    a, b = f(x, eps, _g(0)), f(x, eps, _g(0))
    assert isinstance(a, torch.Tensor) and a.shape == x.shape, "05.1 random_start: one image per input image"
    d = a - x
    assert float(d.abs().max()) <= eps + 1e-6, "05.1 random_start: the start must lie in the eps ball"
    assert float(a.min()) >= 0 and float(a.max()) <= 1, "05.1 random_start: the start must stay in [0, 1]"
    assert torch.equal(a, b), "05.1 random_start: the same generator seed must give the same start"
    assert not torch.equal(a, f(x, eps, _g(1))), "05.1 random_start: another seed must give another start"
    inside = (x > eps) & (x < 1 - eps)  # uniform on [-eps, eps] where clamping cannot bite
    mean_abs = float(d[inside].abs().mean())
    assert abs(mean_abs - eps / 2) < 0.1 * eps, f"05.1 random_start: |delta| should be uniform on [0, eps] " \
        f"(mean eps/2 = {eps / 2:.4f}), got mean {mean_abs:.4f}"


def _check_05_2(f: Callable) -> None:
    for total, warm in ((100, 10), (50, 0), (7, 3)):
        for step in range(total + 1):
            _close("05.2", f"lr_factor({step}, {total}, {warm})", f(step, total, warm),
                   warmup_cosine(step, total, warm), atol=1e-9)


# -------------------------------------------------------------------------------------------- 06 robust evaluation
def _check_06_1(f: Callable) -> None:
    s, y = _scores_labels(61, ties=False)
    attacked = s.unsqueeze(0) + torch.randn(3, s.numel(), generator=_g(62))
    want = torch.where(y == 0, attacked.max(0).values, attacked.min(0).values)
    _close("06.1", "worst_case_scores", f(attacked, y), want)


def _check_06_2(f: Callable) -> None:
    for seed in range(3):
        s, y = _scores_labels(63 + seed, ties=False)
        width = torch.rand(s.shape, generator=_g(seed))
        _close("06.2", f"certified_from_bounds (seed {seed})", f(s - width, s + width, y),
               certified_auroc(s - width, s + width, y))


# -------------------------------------------------------------------------------------- 07 interactive embeddings
def _check_07_1(f: Callable) -> None:
    clean = torch.randn(20, 8, generator=_g(71))
    attacked = clean + 0.5 * torch.randn(20, 8, generator=_g(72))
    _close("07.1", "cosine_shift", f(clean, attacked), 1 - F.cosine_similarity(clean, attacked, dim=1))


def _check_07_2(f: Callable) -> None:
    normal = torch.randn(30, 8, generator=_g(73)) * torch.rand(30, 1, generator=_g(75)) * 3
    anomaly = torch.randn(25, 8, generator=_g(74)) + 1
    mu = [F.normalize(v, dim=1).mean(0) for v in (normal, anomaly)]
    _close("07.2", "class_gap", f(normal, anomaly), 1 - F.cosine_similarity(mu[0], mu[1], dim=0))


# ------------------------------------------------------------------------------------- 08 industrial inspection
def _check_08_1(f: Callable) -> None:
    delta = torch.randn(5, 3, 6, 6, generator=_g(81)) * 0.01
    mask = torch.rand(5, 1, 6, 6, generator=_g(82)) < 0.3
    energy = (delta ** 2).sum(1, keepdim=True)
    want = (energy * mask).flatten(1).sum(1) / energy.flatten(1).sum(1)
    _close("08.1", "energy_in_mask", f(delta, mask), want)


def _check_08_2(f: Callable) -> None:
    train = torch.rand(30, 1, 5, 5, generator=_g(83))
    test = torch.rand(8, 1, 5, 5, generator=_g(84))
    for k in (1, 3):
        _close("08.2", f"pixel_knn (k={k})", f(test, train, k), PixelKNNScore.fit(train, k=k)(test), atol=1e-4)


# ------------------------------------------------------------------------------------- 09 baselines and ablations
def _check_09_1(f: Callable) -> None:
    for values in ([1.0, 2.0, 4.0], [70.5], [3.0, 3.0]):
        got = tuple(float(v) for v in f(values))
        want = mean_std(values)
        assert len(got) == 2 and all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(got, want)), \
            f"09.1 mean_sd({values}): expected {want}, got {got}"


def _check_09_2(f: Callable) -> None:
    bank = torch.randn(40, 16, generator=_g(91))
    queries = torch.randn(6, 16, generator=_g(92)) * 3
    for k in (1, 5):
        _close("09.2", f"knn_cosine_score (k={k})", f(queries, bank, k), knn_distance(queries, bank, k))


# ----------------------------------------------------------------------------------- 10 contaminated training data
def _check_10_1(f: Callable) -> None:
    contaminated = torch.zeros(20, dtype=torch.bool)
    contaminated[[2, 5, 7, 11]] = True
    for dropped, want in (([2, 5, 9], (200 / 3, 50.0)), ([2, 5, 7, 11], (100.0, 100.0)), ([0, 1], (0.0, 0.0))):
        got = tuple(float(v) for v in f(torch.tensor(dropped), contaminated))
        _close("10.1", f"precision_recall(dropped={dropped})", got, want)


def _check_10_2(f: Callable) -> None:
    scores = torch.randn(23, generator=_g(101))
    for keep in (0.8, 0.5, 0.05):
        want = scores.argsort()[:keep_count(len(scores), keep)].sort().values
        got = torch.as_tensor(f(scores, keep))
        _equal("10.2", f"keep_lowest(keep={keep})", got.tolist(), want.tolist())


EXERCISES: dict[str, Exercise] = {e.key: e for e in (
    Exercise("00.1", "pairwise_auroc", "AUROC (percent) as the fraction of (anomaly, normal) pairs ranked right, "
             "ties 1/2", _check_00_1),
    Exercise("00.2", "in_attack_scores", "the scores an in-attack leaves: normals attacked, anomalies clean",
             _check_00_2),
    Exercise("01.1", "rank_auroc", "AUROC from the Mann-Whitney U statistic (average ranks)", _check_01_1),
    Exercise("01.2", "pgd_step", "one L-inf PGD step on the score, projected on the ball and [0, 1]", _check_01_2),
    Exercise("02.1", "chunk_labels", "the labels of Policy.expand: chunk-major, k for chunk k", _check_02_1),
    Exercise("02.2", "rotate_each", "rotate each image by its own number of quarter turns", _check_02_2),
    Exercise("03.1", "pair_kind_counts", "count the ordered pairs of each kind in a COBRA batch", _check_03_1),
    Exercise("03.2", "spurious_mask", "the (M, M) mask of spurious negative pairs", _check_03_2),
    Exercise("04.1", "cosine_matrix", "all pairwise cosine similarities of a batch of projections", _check_04_1),
    Exercise("04.2", "opposite_term", "COBRA's bounded opposite-pair term (margin 0, t = 0.1)", _check_04_2),
    Exercise("05.1", "random_start", "PGD's random start: uniform in the eps ball, clipped to [0, 1], seeded",
             _check_05_1),
    Exercise("05.2", "lr_factor", "the warm-up + cosine learning-rate factor of radlib's training", _check_05_2),
    Exercise("06.1", "worst_case_scores", "the per-sample worst case over several attacks", _check_06_1),
    Exercise("06.2", "certified_from_bounds", "the certified AUROC from per-image score bounds", _check_06_2),
    Exercise("07.1", "cosine_shift", "how far an attack moves each projection (1 - cos)", _check_07_1),
    Exercise("07.2", "class_gap", "the cosine distance between the normal and anomaly centroids", _check_07_2),
    Exercise("08.1", "energy_in_mask", "the share of a perturbation's energy inside the defect mask", _check_08_1),
    Exercise("08.2", "pixel_knn", "the pixel kNN score: mean L2 distance to the k nearest training images",
             _check_08_2),
    Exercise("09.1", "mean_sd", "mean and sample standard deviation over seeds", _check_09_1),
    Exercise("09.2", "knn_cosine_score", "the feature kNN score of the cpu profile: mean (1 - cos) to the k "
             "nearest training features", _check_09_2),
    Exercise("10.1", "precision_recall", "precision and recall of a purification's dropped set", _check_10_1),
    Exercise("10.2", "keep_lowest", "the indices a purification keeps: the lowest-scoring fraction keep",
             _check_10_2),
)}


def check_exercise(key: str, answer: Callable[..., Any]) -> bool:
    """Check ``answer`` for exercise ``key`` ("NN.k"). True (and one line) when it is right; False (and one line)
    while it raises ``NotImplementedError`` (the scaffold); AssertionError with what differs when it is wrong.

    Raises:
        KeyError: an unknown key (the message lists the known ones); TypeError: ``answer`` is not callable.
    """
    if key not in EXERCISES:
        raise KeyError(f"no exercise {key!r}; known: {', '.join(EXERCISES)}")
    if not callable(answer):
        raise TypeError(f"check_exercise({key!r}, ...) needs your function, got {type(answer).__name__}")
    ex = EXERCISES[key]
    try:
        ex.check(answer)
    except NotImplementedError:
        print(f"exercise {key} ({ex.function}) is not solved yet: fill in the `# your code` gap and run the cell")
        return False
    print(f"exercise {key} ({ex.function}): correct")
    return True
