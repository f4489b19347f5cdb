"""Tests for radlib.attacks: invariants (ball, clamp, determinism), analytic optima, attack strength vs.
random noise, restarts, APGD, the anomaly-score attacks, the torchattacks cross-check and bad inputs."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from torch import nn

from radlib.attacks import ScoreAsLogits, apgd, attack_score, pgd, random_noise
from radlib.attacks.engine import apgd_schedule  # reaching inside: the schedule is checked against the paper

TOL = 1e-6  # float rounding of x + d


# ---------------------------------------------------------------------------------------------------------
# toy models
# ---------------------------------------------------------------------------------------------------------
class ConvScore(nn.Module):
    """Tiny non-convex score: 3x16x16 -> (n,)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 4, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.c1(x))
        h = torch.sin(2.0 * self.c2(h))
        return h.flatten(1).mean(1) * 10.0


def linear_score(w: torch.Tensor):
    return lambda x: (x.flatten(1) * w.flatten()).sum(1)


def images(n: int = 6, shape=(3, 16, 16), seed: int = 0, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand((n, *shape), generator=g)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_in_ball(xa: torch.Tensor, x: torch.Tensor, eps: float, norm: str, clamp=(0.0, 1.0)) -> None:
    d = (xa - x).flatten(1)
    if norm == "linf":
        assert d.abs().max() <= eps + TOL
    else:
        assert (d.norm(dim=1) <= eps * (1 + 1e-5) + TOL).all()
    assert xa.min() >= clamp[0] and xa.max() <= clamp[1]


@pytest.fixture(scope="module")
def conv() -> ConvScore:
    return ConvScore().eval()


# ---------------------------------------------------------------------------------------------------------
# invariants (property tests)
# ---------------------------------------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(eps=st.floats(0.0, 0.5), steps=st.integers(0, 5), norm=st.sampled_from(["linf", "l2"]),
       seed=st.integers(0, 2**16), maximize=st.booleans(), random_start=st.booleans(),
       restarts=st.integers(1, 2), method=st.sampled_from(["pgd", "apgd"]))
def test_never_leaves_ball_or_clamp(eps, steps, norm, seed, maximize, random_start, restarts, method):
    model = ConvScore(seed % 3)
    x = images(4, seed=seed)
    seen: list[torch.Tensor] = []

    def loss_fn(xa):
        seen.append(xa.detach().clone())
        return model(xa)

    if method == "pgd":
        xa = pgd(loss_fn, x, eps=eps, steps=steps, norm=norm, maximize=maximize, random_start=random_start,
                 restarts=restarts, generator=gen(seed))
    else:
        xa = apgd(loss_fn, x, eps=eps, steps=steps * 3, norm=norm, maximize=maximize, generator=gen(seed))
    assert xa.shape == x.shape and xa.dtype == x.dtype and not xa.requires_grad
    for xi in [*seen, xa]:
        assert_in_ball(xi, x, eps, norm)


@settings(max_examples=15, deadline=None)
@given(eps=st.floats(0.01, 0.4), norm=st.sampled_from(["linf", "l2"]), seed=st.integers(0, 2**16),
       lo=st.floats(0.1, 0.3), width=st.floats(0.1, 0.5))
def test_custom_clamp_respected(eps, norm, seed, lo, width):
    hi = lo + width
    x = images(3, shape=(1, 8, 8), seed=seed, lo=lo, hi=hi)
    w = torch.randn(1, 8, 8, generator=gen(seed))
    for fn in (pgd, apgd):
        xa = fn(linear_score(w), x, eps=eps, steps=6, norm=norm, generator=gen(seed), clamp=(lo, hi))
        assert_in_ball(xa, x, eps, norm, clamp=(lo, hi))


def test_eps_zero_returns_x_exactly(conv):
    x = images(4)
    for norm in ("linf", "l2"):
        assert torch.equal(pgd(conv, x, eps=0.0, norm=norm, generator=gen(0)), x)
        assert torch.equal(pgd(conv, x, eps=0, restarts=3, norm=norm), x)
        assert torch.equal(apgd(conv, x, eps=0.0, steps=5, norm=norm), x)
        assert torch.equal(random_noise(x, 0.0, norm), x)
        assert torch.equal(attack_score(conv, x, torch.tensor([0, 1, 0, 1]), eps=0.0, norm=norm), x)


def test_steps_zero():
    x = images(3, shape=(1, 8, 8))
    f = linear_score(torch.ones(64))
    assert torch.equal(pgd(f, x, eps=0.1, steps=0, random_start=False), x)
    start = pgd(f, x, eps=0.1, steps=0, random_start=True, generator=gen(5))
    assert not torch.equal(start, x)
    assert_in_ball(start, x, 0.1, "linf")
    # the start point is exactly where a 1-step run starts: the engine draws it the same way
    seen = []
    pgd(lambda xa: seen.append(xa.detach().clone()) or f(xa), x, eps=0.1, steps=1, generator=gen(5))
    assert torch.equal(seen[0], start)


def test_determinism_same_seed(conv):
    x = images(4)
    for norm in ("linf", "l2"):
        a = pgd(conv, x, eps=0.05, steps=4, norm=norm, restarts=2, generator=gen(3))
        b = pgd(conv, x, eps=0.05, steps=4, norm=norm, restarts=2, generator=gen(3))
        c = pgd(conv, x, eps=0.05, steps=4, norm=norm, restarts=2, generator=gen(4))
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert torch.equal(apgd(conv, x, eps=0.05, steps=8, norm=norm, generator=gen(3)),
                           apgd(conv, x, eps=0.05, steps=8, norm=norm, generator=gen(3)))


# ---------------------------------------------------------------------------------------------------------
# correctness against independent references
# ---------------------------------------------------------------------------------------------------------
def naive_pgd_linf(loss_fn, x, eps, steps, alpha, sign):
    """Per-sample, per-pixel textbook PGD (no random start) -- a slow independent reference."""
    out = []
    for i in range(x.shape[0]):
        xi = x[i:i + 1].clone()
        xa = xi.clone()
        for _ in range(steps):
            xa.requires_grad_(True)
            (g,) = torch.autograd.grad(sign * loss_fn(xa).sum(), xa)
            xa = xa.detach() + alpha * g.sign()
            xa = torch.max(torch.min(xa, xi + eps), xi - eps).clamp(0, 1)
        out.append(xa)
    return torch.cat(out)


def test_pgd_matches_naive_reference(conv):
    x = images(4)
    for maximize in (True, False):
        ours = pgd(conv, x, eps=0.03, steps=5, alpha=0.01, random_start=False, maximize=maximize)
        ref = naive_pgd_linf(conv, x, 0.03, 5, 0.01, 1.0 if maximize else -1.0)
        assert torch.allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("maximize", [True, False])
def test_linear_loss_reaches_analytic_optimum(norm, maximize):
    # away from the [0,1] walls the optimum of w.x over the ball is x +- eps*sign(w) (linf), x +- eps*w/|w| (l2)
    x = images(5, shape=(1, 8, 8), lo=0.3, hi=0.7)
    w = torch.randn(64, generator=gen(1))
    s = 1.0 if maximize else -1.0
    eps = 0.1
    target = x + s * eps * (w.sign() if norm == "linf" else w / w.norm()).reshape(1, 1, 8, 8)
    xa = pgd(linear_score(w), x, eps=eps, steps=10, norm=norm, maximize=maximize, random_start=False)
    assert torch.allclose(xa, target, atol=1e-5)
    xa = apgd(linear_score(w), x, eps=eps, steps=20, norm=norm, maximize=maximize, generator=gen(0))
    assert torch.allclose(xa, target, atol=1e-4)


def test_l2_per_sample_norm():
    x = images(6, shape=(1, 8, 8), lo=0.2, hi=0.8)
    w = torch.randn(64, generator=gen(2))
    for eps in (0.05, 0.5):
        xa = pgd(linear_score(w), x, eps=eps, steps=10, norm="l2", generator=gen(0))
        n = (xa - x).flatten(1).norm(dim=1)
        assert (n <= eps * (1 + 1e-5)).all()
        assert (n >= 0.99 * eps).all()  # a linear objective pushes every sample to its own boundary
        # linf of an l2 attack is spread out, not concentrated on the boundary of the cube
        assert (xa - x).abs().max() < eps


@pytest.mark.parametrize("norm,eps", [("linf", 4 / 255), ("l2", 0.3)])
def test_pgd_beats_random_noise(conv, norm, eps):
    x = images(8)
    base = conv(x)
    noise = conv(random_noise(x, eps, norm, generator=gen(0)))
    up = conv(pgd(conv, x, eps=eps, steps=10, norm=norm, generator=gen(0)))
    down = conv(pgd(conv, x, eps=eps, steps=10, norm=norm, maximize=False, generator=gen(0)))
    assert (up > noise).all() and (up > base).all()
    assert (down < noise).all() and (down < base).all()
    assert (up - base).mean() > 5 * (noise - base).abs().mean()


def test_random_noise_norms():
    x = images(4, lo=0.2, hi=0.8)
    d = random_noise(x, 0.1, "linf", generator=gen(0)) - x
    assert torch.allclose(d.abs(), torch.full_like(d, 0.1), atol=1e-6)
    d = random_noise(x, 0.5, "l2", generator=gen(0)) - x
    assert torch.allclose(d.flatten(1).norm(dim=1), torch.full((4,), 0.5), atol=1e-5)
    xc = torch.zeros(2, 1, 4, 4)
    assert random_noise(xc, 0.3, "linf", generator=gen(0)).min() >= 0


@pytest.mark.parametrize("maximize", [True, False])
def test_restarts_never_worse_than_first_run(conv, maximize):
    x = images(8)
    one = conv(pgd(conv, x, eps=0.05, steps=3, maximize=maximize, generator=gen(7))).detach()
    many = conv(pgd(conv, x, eps=0.05, steps=3, maximize=maximize, restarts=4, generator=gen(7))).detach()
    if maximize:
        assert (many >= one).all() and (many > one).any()
    else:
        assert (many <= one).all() and (many < one).any()


def test_apgd_at_least_comparable_to_pgd(conv):
    x = images(8, seed=3)
    base = conv(x)
    for norm, eps in (("linf", 8 / 255), ("l2", 0.5)):
        p = conv(pgd(conv, x, eps=eps, steps=20, norm=norm, generator=gen(0))).detach()
        a = conv(apgd(conv, x, eps=eps, steps=20, norm=norm, generator=gen(0))).detach()
        assert (a > base).all()
        assert a.mean() >= p.mean() - 0.01 * (p - base).abs().mean()  # comparable (here: better)
        am = conv(apgd(conv, x, eps=eps, steps=20, norm=norm, maximize=False, generator=gen(0))).detach()
        assert (am < base).all()


def test_apgd_checkpoints_follow_paper():
    # p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), w_j = p_j * N
    ps = [0.0, 0.22]
    while ps[-1] < 1:
        ps.append(ps[-1] + max(ps[-1] - ps[-2] - 0.03, 0.06))
    expected = [round(p * 100) for p in ps if p <= 1.0 + 1e-9]
    first, minimum, decr = apgd_schedule(100)
    ws, period = [0], first
    while ws[-1] + period <= 100:
        ws.append(ws[-1] + period)
        period = max(period - decr, minimum)
    assert ws == expected  # [0, 22, 41, 57, 70, 80, 87, 93, 99]


def test_apgd_halves_step_on_stall():
    # a loss that is flat (zero gradient) everywhere: no step is successful, the best point is the start
    x = images(3, shape=(1, 8, 8))
    seen = []

    def flat(xa):
        seen.append(xa.detach().clone())
        return (xa * 0).flatten(1).sum(1)

    xa = apgd(flat, x, eps=0.1, steps=10, generator=gen(0))
    assert torch.equal(xa, seen[0])  # best = start point (no strict improvement ever)


def test_no_weight_grads_and_works_under_no_grad(conv):
    x = images(3)
    for p in conv.parameters():
        p.grad = None
    with torch.no_grad():
        xa = pgd(conv, x, eps=0.03, steps=2, generator=gen(0))
        xb = apgd(conv, x, eps=0.03, steps=4, generator=gen(0))
        xc = attack_score(conv, x, torch.tensor([0, 1, 0]), eps=0.03, steps=2, generator=gen(0))
    assert not torch.equal(xa, x) and not torch.equal(xb, x) and not torch.equal(xc, x)
    assert all(p.grad is None and p.requires_grad for p in conv.parameters())


def test_scalar_loss_allowed_for_single_run(conv):
    x = images(3)
    xa = pgd(lambda xa: conv(xa).mean(), x, eps=0.03, steps=3, random_start=False)
    ref = pgd(conv, x, eps=0.03, steps=3, random_start=False)  # mean vs sum: same sign of the gradient
    assert torch.allclose(xa, ref, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# attacks on an anomaly score
# ---------------------------------------------------------------------------------------------------------
def test_attack_score_in_and_out(conv):
    x = images(10, seed=1)
    labels = torch.tensor([0, 1] * 5)
    s0 = conv(x).detach()
    for method in ("pgd", "apgd"):
        xa = attack_score(conv, x, labels, eps=4 / 255, steps=8, method=method, generator=gen(0))
        s1 = conv(xa).detach()
        assert (s1[labels == 0] > s0[labels == 0]).all()
        assert (s1[labels == 1] < s0[labels == 1]).all()
        assert_in_ball(xa, x, 4 / 255, "linf")
    assert torch.equal(xa, attack_score(conv, x, labels, eps=4 / 255, steps=8, method=method,
                                            generator=gen(0)))  # deterministic


def test_attack_score_is_pgd_with_per_sample_sign(conv):
    # one pass with loss = sign * score (sign +1 normal, -1 anomaly) from the same random starts
    x = images(6, seed=2)
    labels = torch.tensor([0, 0, 1, 1, 0, 1])
    sign = 1 - 2 * labels.float()
    xa = attack_score(conv, x, labels, eps=2 / 255, steps=6, generator=gen(0))
    ref = pgd(lambda t: sign * conv(t), x, eps=2 / 255, steps=6, generator=gen(0))
    assert torch.allclose(xa, ref, atol=1e-6)


@pytest.mark.parametrize("mode", ["in", "out"])
def test_attack_score_mode_filters(conv, mode):
    x = images(8, seed=4)
    labels = torch.tensor([0, 1, 1, 0, 0, 1, 0, 1])
    attacked = labels == (0 if mode == "in" else 1)
    xa = attack_score(conv, x, labels, eps=0.03, steps=3, mode=mode, generator=gen(1))
    assert torch.equal(xa[~attacked], x[~attacked])
    assert ((xa[attacked] - x[attacked]).flatten(1).abs().amax(1) > 0).all()
    both = attack_score(conv, x, labels, eps=0.03, steps=3, mode="both", generator=gen(1))
    assert torch.allclose(xa[attacked], both[attacked], atol=1e-6)  # starts drawn for the whole batch


class _PositionScore(torch.nn.Module):
    """A score whose value depends on each row's position in the batch (as the ensemble score's seeded draws
    do); it records the batch sizes it is called with."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.sizes = inner, []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        return self.inner(x) * (1.0 + torch.arange(x.shape[0], dtype=x.dtype, device=x.device))


@pytest.mark.parametrize("method", ["pgd", "apgd"])
@pytest.mark.parametrize("mode", ["in", "out"])
def test_attack_score_in_out_score_the_full_batch(conv, method, mode):
    # the score is attacked exactly as it is evaluated: every call sees all rows, in their places
    x = images(7, seed=5)
    labels = torch.tensor([0, 1, 0, 0, 1, 1, 0])
    pos = _PositionScore(conv)
    part = attack_score(pos, x, labels, eps=0.03, steps=4, method=method, mode=mode, restarts=2, generator=gen(2))
    assert set(pos.sizes) == {7}
    attacked = labels == (0 if mode == "in" else 1)
    assert torch.equal(part[~attacked], x[~attacked])
    both = attack_score(pos, x, labels, eps=0.03, steps=4, method=method, restarts=2, generator=gen(2))
    assert torch.allclose(part[attacked], both[attacked], atol=1e-6)  # rows do not interact through the score
    sign = 1 - 2 * labels.float()
    with torch.no_grad():  # the attack raised the objective of the attacked rows *at their own positions*
        assert ((sign * pos(part))[attacked] > (sign * pos(x))[attacked]).all()


def test_attack_score_restarts_improve(conv):
    x = images(8, seed=6)
    labels = torch.tensor([0, 1] * 4)
    sign = 1 - 2 * labels.float()
    one = sign * conv(attack_score(conv, x, labels, eps=0.03, steps=2, generator=gen(3))).detach()
    many = sign * conv(attack_score(conv, x, labels, eps=0.03, steps=2, restarts=3, generator=gen(3))).detach()
    assert (many >= one).all()


def test_score_as_logits_derivation(conv):
    x = images(5)
    s = conv(x).detach()
    logits = ScoreAsLogits(conv)(x).detach()
    assert logits.shape == (5, 2)
    assert torch.allclose(logits.softmax(1)[:, 1], torch.sigmoid(s), atol=1e-6)
    ce0 = F.cross_entropy(logits, torch.zeros(5, dtype=torch.long), reduction="none")
    ce1 = F.cross_entropy(logits, torch.ones(5, dtype=torch.long), reduction="none")
    assert torch.allclose(ce0, F.softplus(s), atol=1e-5) and torch.allclose(ce1, F.softplus(-s), atol=1e-5)
    # a plain function gets a placeholder parameter so torchattacks can find a device
    wrapped = ScoreAsLogits(lambda t: t.flatten(1).sum(1))
    assert next(wrapped.parameters()).device == torch.device("cpu")
    assert list(ScoreAsLogits(conv).parameters()) == list(conv.parameters())


def test_score_as_logits_ce_pgd_equals_attack_score(conv):
    # untargeted CE-PGD on the wrapped score == radlib in/out attack (same iterates, no random start)
    x = images(6, seed=7)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    wrapped = ScoreAsLogits(conv)
    ce = pgd(lambda xa: F.cross_entropy(wrapped(xa), labels, reduction="none"), x, eps=0.03, steps=5,
             random_start=False)
    sign = 1 - 2 * labels.float()
    ours = pgd(lambda xa: sign * conv(xa), x, eps=0.03, steps=5, random_start=False)
    assert torch.allclose(ce, ours, atol=1e-6)


def test_torchattacks_cross_check():
    torchattacks = pytest.importorskip("torchattacks")
    torch.manual_seed(0)  # torchattacks draws from the global RNG (unused here: random_start=False)
    model = ConvScore(1).eval()
    n = 40
    x = images(n, seed=8)
    labels = (torch.arange(n) % 2).long()
    # make the toy detector informative: anomalies are brighter, and the score rewards brightness a bit
    x = torch.where(labels.view(-1, 1, 1, 1).bool(), x * 0.96 + 0.04, x * 0.96)

    def score(t):
        return model(t) + 20.0 * t.flatten(1).mean(1)

    eps, steps, alpha = 2 / 255, 5, 0.5 / 255
    clean_auc = roc_auc_score(labels.numpy(), score(x).detach().numpy())
    atk = torchattacks.PGD(ScoreAsLogits(score), eps=eps, alpha=alpha, steps=steps, random_start=False)
    x_ta = atk(x, labels)
    x_rl = attack_score(score, x, labels, eps=eps, steps=steps, alpha=alpha, generator=gen(0))
    x_rl_nors = torch.cat([  # radlib pgd with random_start=False on each group, as torchattacks does
        pgd(score, x[labels == 0], eps=eps, steps=steps, alpha=alpha, random_start=False),
        pgd(score, x[labels == 1], eps=eps, steps=steps, alpha=alpha, random_start=False, maximize=False)])
    lab_sorted = torch.cat([labels[labels == 0], labels[labels == 1]])
    auc_ta = roc_auc_score(labels.numpy(), score(x_ta).detach().numpy())
    auc_rl = roc_auc_score(lab_sorted.numpy(), score(x_rl_nors).detach().numpy())
    auc_rl_rs = roc_auc_score(labels.numpy(), score(x_rl).detach().numpy())
    assert clean_auc > 0.9 and auc_ta < clean_auc - 0.3
    assert abs(auc_ta - auc_rl) <= 0.01
    assert auc_rl_rs < clean_auc - 0.3  # radlib's default (random start) attack also breaks the toy
    x_ta_sorted = torch.cat([x_ta[labels == 0], x_ta[labels == 1]])
    assert (x_ta_sorted - x_rl_nors).abs().max() < 1e-5  # identical iterates


# ---------------------------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------------------------
def test_bad_inputs(conv):
    x = images(2)
    lab = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="eps"):
        pgd(conv, x, eps=-0.1)
    with pytest.raises(ValueError, match="eps"):
        apgd(conv, x, eps=float("nan"))
    with pytest.raises(ValueError, match="steps"):
        pgd(conv, x, eps=0.1, steps=-1)
    with pytest.raises(ValueError, match="steps"):
        apgd(conv, x, eps=0.1, steps=-3)
    with pytest.raises(ValueError, match="norm"):
        pgd(conv, x, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="norm"):
        random_noise(x, 0.1, "linf2")
    with pytest.raises(ValueError, match="mode"):
        attack_score(conv, x, lab, eps=0.1, mode="sideways")
    with pytest.raises(ValueError, match="method"):
        attack_score(conv, x, lab, eps=0.1, method="fgsm")
    with pytest.raises(ValueError, match="restarts"):
        pgd(conv, x, eps=0.1, restarts=0)
    with pytest.raises(ValueError, match="scalar"):
        pgd(lambda t: conv(t).sum(), x, eps=0.1, restarts=2)
    with pytest.raises(ValueError, match="scalar"):
        pgd(lambda t: conv(t).sum(), x, eps=0.1, steps=0, restarts=2)
    with pytest.raises(ValueError, match="per-sample"):
        apgd(lambda t: conv(t).sum(), x, eps=0.1, steps=3)
    with pytest.raises(ValueError, match="shape"):
        pgd(lambda t: conv(t)[:1], x, eps=0.1)
    with pytest.raises(ValueError, match="clamp range"):
        pgd(conv, x * 2, eps=0.1)
    with pytest.raises(ValueError, match="clamp range"):
        apgd(conv, x - 0.5, eps=0.1)
    with pytest.raises(ValueError, match="clamp range"):
        attack_score(conv, x + 1, lab, eps=0.1)
    with pytest.raises(ValueError, match="labels"):
        attack_score(conv, x, torch.tensor([0, 2]), eps=0.1)
    with pytest.raises(ValueError, match="labels"):
        attack_score(conv, x, torch.tensor([0, 1, 0]), eps=0.1)
    with pytest.raises(ValueError, match="rho"):
        apgd(conv, x, eps=0.1, rho=0.0)
    with pytest.raises(TypeError, match="floating"):
        pgd(conv, (x * 255).to(torch.uint8), eps=0.1)
    with pytest.raises(ValueError, match="clamp"):
        pgd(conv, x, eps=0.1, clamp=(1.0, 0.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_generator_with_cuda_input():
    model = ConvScore().cuda().eval()  # test-only: library code never calls .cuda()
    x = images(4).cuda()
    a = pgd(model, x, eps=0.03, steps=3, generator=gen(0)).cpu()
    b = pgd(model.cpu(), x.cpu(), eps=0.03, steps=3, generator=gen(0))
    assert a.device.type == "cpu" and torch.allclose(a, b, atol=1e-4)
    model.cuda()
    c = apgd(model, x, eps=0.03, steps=5, generator=torch.Generator(device="cuda").manual_seed(0))
    assert c.is_cuda
    assert_in_ball(c, x, 0.03, "linf")
