"""Structure metrics against hand-made cases and an independent computation (SciPy's Pearson r)."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from lightning_unlearn.metrics import class_similarity_agreement, knn_overlap, structure_agreement
from lightning_unlearn.metrics.structure import class_similarity, knn_sets


def _rotation(d: int, seed: int = 0) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed)))[0]


def test_knn_overlap_is_one_under_rotation_and_scaling_and_low_for_unrelated_spaces():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    assert knn_overlap(x, 5.0 * x @ _rotation(16)) == pytest.approx(1.0)
    unrelated = knn_overlap(x, torch.randn(300, 8, generator=torch.Generator().manual_seed(1)), k=10)
    assert unrelated < 0.1  # chance level is k / (N - 1) ≈ 0.03


def test_knn_overlap_on_a_hand_made_case():
    # unit 2-d vectors at angles 0, 10, 25, 90, 100 degrees: cosine neighbours follow the angles
    angles = torch.tensor([0.0, 10.0, 25.0, 90.0, 100.0]).deg2rad()
    a = torch.stack([angles.cos(), angles.sin()], dim=1)
    assert knn_sets(a, 1).flatten().tolist() == [1, 0, 1, 4, 3]
    b = a.clone()
    b[2] = torch.tensor([-1.0, 0.0])  # sample 2 moves far away: its nearest neighbour changes and it stops being 1's neighbour
    overlap = knn_overlap(a, b, k=1)
    expected = sum(x == y for x, y in zip(knn_sets(a, 1).flatten().tolist(), knn_sets(b, 1).flatten().tolist())) / 5
    assert overlap == pytest.approx(expected)
    assert overlap < 1.0


def test_class_similarity_agreement_matches_scipy_pearson():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(400) % 5
    a = torch.randn(400, 12, generator=g) + 2 * torch.randn(5, 12, generator=g)[labels]
    b = torch.randn(400, 7, generator=g) + 2 * torch.randn(5, 7, generator=g)[labels]
    sa, _ = class_similarity(a, labels)
    sb, _ = class_similarity(b, labels)
    off = ~torch.eye(5, dtype=torch.bool)
    expected = stats.pearsonr(sa[off].numpy(), sb[off].numpy()).statistic
    assert class_similarity_agreement(a, b, labels) == pytest.approx(float(expected), abs=1e-9)
    assert class_similarity_agreement(a, 3 * a @ _rotation(12), labels) == pytest.approx(1.0)


def test_structure_agreement_of_a_model_with_itself_and_with_a_scrambled_copy():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    other = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    x = torch.randn(200, 6)
    y = torch.arange(200) % 4
    loader = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 200, 50)]
    same = structure_agreement(model, model, loader, layer="1")
    assert same == {"knn_overlap": pytest.approx(1.0), "class_sim_corr": pytest.approx(1.0)}
    diff = structure_agreement(model, other, loader, layer="1")
    assert diff["knn_overlap"] < 0.9


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: knn_overlap(torch.randn(5, 2), torch.randn(6, 2)), "same N samples"),
        (lambda: knn_overlap(torch.randn(5, 2), torch.randn(5, 2), k=5), "`k` should be in"),
        (lambda: class_similarity_agreement(torch.randn(6, 2), torch.randn(6, 2), torch.tensor([0, 0, 0, 1, 1, 1])), "at least 3 classes"),
        (lambda: class_similarity_agreement(torch.randn(6, 2), torch.randn(6, 2), torch.arange(5)), "one entry per sample"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
