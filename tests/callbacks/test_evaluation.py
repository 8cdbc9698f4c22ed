"""``evaluate()`` and the ``UnlearningEvaluation`` callback."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, Dataset
from toys import accuracy, make_trainer

from lightning_unlearn import Unlearn, UnlearningEvaluation, evaluate
from lightning_unlearn.methods import NPO, GradDiff

ALL_KEYS = {"forget_acc", "UA", "RA", "TA", "MIA", "mia_auc"}


class ListLogger(Logger):
    """Keeps every ``log_metrics`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "list"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.logged.append((step, dict(metrics)))


def loaders(data: dict[str, Dataset], *splits: str) -> dict[str, DataLoader]:
    return {split: DataLoader(data[split], batch_size=64) for split in splits}


def check_ranges(metrics: dict[str, float]) -> None:
    for key, value in metrics.items():
        if key == "mia_auc":
            assert 0 <= value <= 1
        elif key != "avg_gap":
            assert 0 <= value <= 100, key


# ---------------------------------------------------------------------- evaluate()
def test_evaluate_reports_the_metrics_the_splits_allow(data, user_module):
    user_module.train()
    metrics = evaluate(user_module, loaders(data, "forget", "retain", "test"))
    assert set(metrics) == ALL_KEYS
    check_ranges(metrics)
    assert metrics["forget_acc"] == pytest.approx(accuracy(user_module, data["forget"]), abs=1e-3)
    assert metrics["RA"] == pytest.approx(accuracy(user_module, data["retain"]), abs=1e-3)
    assert metrics["TA"] == pytest.approx(accuracy(user_module, data["test"]), abs=1e-3)
    assert metrics["UA"] == pytest.approx(100 - metrics["forget_acc"], abs=1e-4)
    assert user_module.training  # the mode is restored

    assert set(evaluate(user_module, loaders(data, "forget", "retain"))) == {"forget_acc", "UA", "RA"}
    with_holdout = evaluate(user_module, {**loaders(data, "forget", "retain", "test"), "holdout": DataLoader(data["test"], batch_size=64)})
    assert set(with_holdout) == ALL_KEYS | {"holdout_acc"}
    assert with_holdout["holdout_acc"] == pytest.approx(metrics["TA"])


def test_evaluate_adds_avg_gap_from_oracle_metrics(data, user_module):
    metrics = evaluate(user_module, loaders(data, "forget", "retain", "test"))
    oracle = {"UA": 100.0, "RA": 100.0, "TA": 75.0, "MIA": 90.0, "forget_acc": 0.0}
    gapped = evaluate(user_module, loaders(data, "forget", "retain", "test"), oracle=oracle)
    expected = sum(abs(metrics[k] - oracle[k]) for k in ("UA", "RA", "TA", "MIA")) / 4
    assert gapped == pytest.approx({**metrics, "avg_gap": expected})
    # Only the keys both sides have are compared.
    partial = evaluate(user_module, loaders(data, "forget", "retain"), oracle=oracle)
    assert partial["avg_gap"] == pytest.approx((abs(metrics["UA"] - 100) + abs(metrics["RA"] - 100)) / 2)


def test_evaluate_rejects_unknown_splits(data, user_module):
    match = r"`loaders` keys should be among \['forget', 'retain', 'test', 'holdout'\], got \['train', 'valid'\]"
    with pytest.raises(ValueError, match=match):
        evaluate(user_module, {"forget": DataLoader(data["forget"]), "valid": DataLoader(data["test"]), "train": DataLoader(data["train"])})


# ---------------------------------------------------------------------- UnlearningEvaluation
def test_callback_evaluates_at_fit_end_and_logs(data, user_module):
    logger = ListLogger()
    callback = UnlearningEvaluation(data["forget"], data["retain"], DataLoader(data["test"], batch_size=32))
    trainer = make_trainer(max_epochs=2, limit_train_batches=1, callbacks=[callback], logger=logger)
    trainer.fit(user_module, DataLoader(data["retain"], batch_size=50))
    assert set(callback.metrics) == ALL_KEYS
    check_ranges(callback.metrics)
    assert callback.history == [{"epoch": 2, **callback.metrics}]
    assert (2, {f"unlearn_eval/{k}": v for k, v in callback.metrics.items()}) in logger.logged
    assert callback.metrics == pytest.approx(evaluate(user_module, loaders(data, "forget", "retain", "test")))


def test_callback_evaluates_every_epoch_and_sees_the_forgetting(data, user_module):
    evaluation = UnlearningEvaluation(
        data["forget"], data["retain"], data["test"], when="train_epoch_end", oracle_metrics={"UA": 100.0, "RA": 100.0}
    )
    unlearn = Unlearn(NPO(), data["forget"], batch_size=16, progress_bar=False)
    make_trainer(max_epochs=3, callbacks=[unlearn, evaluation]).fit(user_module, DataLoader(data["retain"], batch_size=50, shuffle=True))
    assert [h["epoch"] for h in evaluation.history] == [0, 1, 2]
    assert all(set(h) == ALL_KEYS | {"epoch", "avg_gap"} for h in evaluation.history)
    forget_acc = [h["forget_acc"] for h in evaluation.history]
    assert forget_acc[-1] < 30 and forget_acc[-1] <= forget_acc[0]
    assert all(h["RA"] > 95 for h in evaluation.history)


def test_callback_at_fit_end_sees_the_after_training_phase(data, user_module):
    evaluation = UnlearningEvaluation(data["forget"], data["retain"], data["test"])
    unlearn = Unlearn(
        GradDiff(), data["forget"], data["retain"], schedule="after_training", epochs=2, batch_size=16,
        optimizer=functools.partial(torch.optim.Adam, lr=1e-2), progress_bar=False,
    )
    trainer = make_trainer(max_epochs=1, limit_train_batches=1, callbacks=[unlearn, evaluation])
    trainer.fit(user_module, DataLoader(data["retain"], batch_size=50))
    assert unlearn.phase_done
    assert evaluation.metrics["forget_acc"] < 30 and evaluation.metrics["RA"] > 90


def test_callback_rejects_bad_when(data):
    with pytest.raises(ValueError, match=r"`when` should be one of \['fit_end', 'train_epoch_end'\], got 'epoch_end'"):
        UnlearningEvaluation(data["forget"], when="epoch_end")  # type: ignore[arg-type]


def test_run_evaluation_keeps_the_losses_behind_mia_auc(data, user_module):
    from lightning_unlearn.callbacks.evaluation import run_evaluation
    from lightning_unlearn.metrics import loss_mia_auc

    evaluator = run_evaluation(user_module, loaders(data, "forget", "retain", "test"))
    members, nonmembers = evaluator.membership_losses()

    def losses(split: str) -> torch.Tensor:
        x, y = next(iter(DataLoader(data[split], batch_size=len(data[split]))))
        return torch.nn.functional.cross_entropy(user_module(x), y, reduction="none").detach()

    torch.testing.assert_close(members, losses("forget"))
    torch.testing.assert_close(nonmembers, losses("test"))  # no holdout: the test split stands in
    assert evaluator.compute()["mia_auc"] == pytest.approx(loss_mia_auc(members, nonmembers))
