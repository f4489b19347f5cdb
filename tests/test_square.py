"""The Square attack (radlib.attacks.square): budget, ball, monotone search, and the cross-check with torchattacks'
Square on a classifier built from a score with ScoreAsLogits; a gradient-masked score falls to it and not to PGD."""
import pytest
import torch
import torchattacks
from torch import nn

from radlib.attacks.engine import pgd
from radlib.attacks.on_score import ScoreAsLogits
from radlib.attacks.square import p_schedule, square
from radlib.data import load


@pytest.fixture(scope="module")
def setup():
    """64 digits at 16 px (grey), a fixed random CNN score centred at its median, the labels it predicts."""
    x = load("digits", None, image_size=16, channels=1, max_test=200).test.images[:64].float() / 255
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 1)).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    med = net(x).squeeze(1).median()

    def score(z):
        return net(z).squeeze(1) - med
    y = (score(x) > 0).long()
    clf = ScoreAsLogits(score).eval()

    def margin(z):  # the true class's logit minus the other's: < 0 = fooled
        lg = clf(z)
        return lg.gather(1, y[:, None]).squeeze(1) - lg.gather(1, (1 - y)[:, None]).squeeze(1)
    return x, y, clf, margin


@pytest.mark.parametrize("eps", [4 / 255, 8 / 255])
def test_square_agrees_with_torchattacks_on_a_classifier(setup, eps):
    """Success rate within 0.05 of torchattacks.Square (mean over seeds 0-2, 200 queries, p_init 0.8), and a
    remaining margin of the unfooled samples no larger (radlib keeps searching on every sample)."""
    x, y, clf, margin = setup
    ours, theirs, rest_ours, rest_theirs = [], [], [], []
    for seed in range(3):
        adv_t = torchattacks.Square(clf, norm="Linf", eps=eps, n_queries=200, p_init=0.8, seed=seed)(x, y)
        adv_o = square(lambda z: -margin(z), x, eps=eps, queries=200, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            m_t, m_o = margin(adv_t), margin(adv_o)
        assert float((adv_o - x).abs().max()) <= eps + 1e-6 and 0 <= float(adv_o.min()) and float(adv_o.max()) <= 1
        theirs.append(float((m_t < 0).float().mean()))
        ours.append(float((m_o < 0).float().mean()))
        rest_theirs.append(float(m_t.clamp(min=0).mean()))
        rest_ours.append(float(m_o.clamp(min=0).mean()))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    assert 0 < mean(theirs) < 1, theirs  # the budget leaves something to compare
    assert abs(mean(ours) - mean(theirs)) <= 0.05, (ours, theirs)
    assert mean(rest_ours) <= mean(rest_theirs) * 1.05, (rest_ours, rest_theirs)


def test_square_never_lowers_the_loss_and_stays_in_the_l2_ball(setup):
    x, _, _, margin = setup
    loss = lambda z: -margin(z)  # noqa: E731
    start = square(loss, x, eps=8 / 255, queries=1, generator=torch.Generator().manual_seed(0))
    longer = square(loss, x, eps=8 / 255, queries=60, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert bool((loss(longer) >= loss(start) - 1e-6).all())  # greedy: never below the starting stripes
    adv = square(loss, x, eps=0.5, queries=30, norm="l2", generator=torch.Generator().manual_seed(0))
    assert float((adv - x).flatten(1).norm(dim=1).max()) <= 0.5 + 1e-5
    assert torch.equal(square(loss, x, eps=0.0, queries=5), x)


def test_the_schedule_is_the_published_one():
    """p_init at the start, halved at 10, 50, 200, 500, 1000, ... of 10,000 queries (p_selection of the authors)."""
    assert [p_schedule(0.8, q, 10_000) for q in (10, 11, 50, 51, 200, 201, 500, 501, 1000, 1001, 9999)] == [
        0.8, 0.4, 0.4, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05, 0.025, 0.8 / 512]


def test_a_gradient_masked_score_falls_to_square_and_not_to_pgd(setup):
    """A score through torch.round has a zero gradient: PGD cannot move it, a search that only queries it can."""
    x, _, _, margin = setup
    masked = lambda z: torch.round(-margin(z) * 1e5) / 1e5  # noqa: E731  zero gradient almost everywhere
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        clean = masked(x)
    by_pgd = masked(pgd(masked, x, eps=8 / 255, steps=20, random_start=False, generator=gen))
    by_square = masked(square(masked, x, eps=8 / 255, queries=100, generator=gen))
    assert torch.equal(by_pgd, clean)  # the gradient attack does nothing
    assert float((by_square > clean).float().mean()) > 0.9  # the search raises the loss of almost every sample


@pytest.mark.parametrize("kw, match", [
    ({"queries": 0}, r"queries must be an int >= 1, got 0"),
    ({"p_init": 0.0}, r"p_init must be in \(0, 1\], got 0.0"),
    ({"eps": -1.0}, r"eps must be a finite number >= 0"),
])
def test_square_rejects_bad_arguments(setup, kw, match):
    x = setup[0]
    with pytest.raises(ValueError, match=match):
        square(lambda z: z.mean((1, 2, 3)), x, **{"eps": 0.1, **kw})
