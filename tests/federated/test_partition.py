"""Seeded IID and Dirichlet client splits."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.federated.partition import partition_clients

LABELS = torch.arange(2000) % 10


def test_iid_split_is_disjoint_balanced_and_seeded():
    parts = partition_clients(LABELS, 10, "iid", seed=3)
    assert sorted(len(p) for p in parts) == [200] * 10
    assert len(torch.cat(parts).unique()) == 2000
    again = partition_clients(LABELS, 10, "iid", seed=3)
    assert all(torch.equal(a, b) for a, b in zip(parts, again))
    assert not torch.equal(parts[0], partition_clients(LABELS, 10, "iid", seed=4)[0])


def test_dirichlet_split_is_skewed_and_capped():
    parts = partition_clients(LABELS, 10, "dirichlet", alpha=0.1, seed=0, samples_per_client=50)
    assert len(torch.cat(parts).unique()) == sum(len(p) for p in parts)
    assert max(len(p) for p in parts) <= 50
    # with alpha = 0.1 most clients hold few classes: the largest class share of some client is high
    top_share = max(float(torch.bincount(LABELS[p], minlength=10).max()) / len(p) for p in parts)
    assert top_share > 0.5
    iid_top = max(float(torch.bincount(LABELS[p], minlength=10).max()) / len(p) for p in partition_clients(LABELS, 10, "iid", seed=0))
    assert top_share > iid_top


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="scheme"):
        partition_clients(LABELS, 10, "shards")
    with pytest.raises(ValueError, match="num_clients"):
        partition_clients(LABELS, 1)
