"""B5's helpers: the deletion requests of the three regimes, the tuned rows and ablations, the target check."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.benchmarking import b5


@pytest.mark.parametrize("regime", b5.REGIMES)
def test_each_regime_deletes_what_it_says_with_seeded_requests(regime):
    data = b5.make_data(regime, 1, "quick")
    again = b5.make_data(regime, 1, "quick")
    assert torch.equal(data.forget_users, again.forget_users) and torch.equal(data.forget_items, again.forget_items)
    spec = b5.SCALES["quick"]
    if regime == "user":
        assert torch.unique(data.forget_users).numel() == spec["users"]
        assert not torch.isin(data.retain_users, data.forget_users).any()
    elif regime == "item":
        assert torch.unique(data.forget_items).numel() == spec["items"]
        assert not torch.isin(data.retain_items, data.forget_items).any()
    else:
        assert data.forget_users.numel() == spec["interactions"]
    assert not torch.equal(b5.make_data(regime, 2, "quick").forget_items, data.forget_items)


def test_rows_use_the_tuned_settings_and_ablate_one_part_each():
    rows = b5.method_rows(backbone="mf")
    assert rows["tru_rec"]["lr"] == b5.TUNED["mf"]["tru_rec"]["lr"]
    assert rows["tru_rec -gate"]["args"] == {**rows["tru_rec"]["args"], "rank_gate": False}
    assert rows["tru_rec -all"]["args"]["layer_isolation"] is False and rows["ga"]["args"] == {"retain_weight": 1.0}
    assert set(b5.method_rows(["ga"], backbone="lightgcn")) == {"ga"}
    with pytest.raises(ValueError, match="`methods` should be among"):
        b5.method_rows(["sisa"])


def _cell(seed, recall, hit, ratio):
    oracle = {"recall@20": 0.20, "forget_hit@20": 0.05, "time_ratio": 1.0}
    tru = {"recall@20": recall, "forget_hit@20": hit, "time_ratio": ratio}
    return {"backbone": "mf", "regime": "user", "seed": seed, "results": {"retrain": oracle, "tru_rec": tru}}


def test_target_check_uses_the_means_over_seeds():
    met = b5.target_check([_cell(1, 0.195, 0.06, 0.05), _cell(2, 0.193, 0.04, 0.07)])
    assert met[0]["met"] and met[0]["recall_gap"] == pytest.approx(-0.006) and met[0]["hit_gap"] == pytest.approx(0.0)
    assert not b5.target_check([_cell(1, 0.185, 0.05, 0.05)])[0]["met"]  # 1.5 points of Recall@20 lost
    assert not b5.target_check([_cell(1, 0.20, 0.08, 0.05)])[0]["met"]  # 3 points of hit rate above the oracle's
    assert not b5.target_check([_cell(1, 0.20, 0.05, 0.2)])[0]["met"]  # 20% of retraining time
    summary = b5.summarize([_cell(1, 0.19, 0.05, 0.1), _cell(2, 0.21, 0.05, 0.1)])
    assert summary["mf/user"]["tru_rec"]["recall@20"] == pytest.approx((0.20, 0.01 * 2**0.5))
    table = b5.markdown([_cell(1, 0.19, 0.05, 0.1)])
    assert "B5 target" in table and "| tru_rec | -1.0 / +0.0 |" in table and "| tru_rec -gate | — |" in table
