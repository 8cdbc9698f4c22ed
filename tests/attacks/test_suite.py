"""``run_attacks`` and the ``RobustnessAttacks`` callback: every attack on copies of the unlearned model and of
the oracle, recovery against the original, results in the loggers, the unlearning report and attacks.json."""

from __future__ import annotations

import copy
import json
import math

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader
from toys import FORGET_CLASS, blobs, fit_plain, make_trainer, mlp

from lightning_unlearn import ForgetRetainDataModule, UnlearningModule, UnlearningReport
from lightning_unlearn._interfaces import WeightFiles
from lightning_unlearn.attacks.callback import RobustnessAttacks
from lightning_unlearn.attacks.quantization import QuantizationAttack
from lightning_unlearn.attacks.relearning import RelearningAttack
from lightning_unlearn.attacks.suite import flat_result, run_attacks
from lightning_unlearn.methods import GradientAscent

from ._facts import facts_problem

# The relearning attacker of the masked-vs-oracle check (see _facts.py and test_relearning.py).
RELEARN = RelearningAttack(steps=10, lr=0.1, batch_size=16, optimizer="sgd", seed=0)


@pytest.fixture(scope="module")
def problem() -> dict:
    p = facts_problem()
    p["retain_loader"] = DataLoader(p["retain"], batch_size=64)
    return p


def test_relearning_brings_back_a_masked_forget_set_but_not_the_oracles(problem):
    """run_attacks on the masked model with the oracle as baseline: the same numbers as the attack-level test
    (masked recovery 0.94, oracle -0.14 measured), plus int8 quantization, which leaves the mask in place."""
    before = copy.deepcopy(problem["masked"].state_dict())
    result = run_attacks(
        problem["masked"], None, problem["forget"], retain=problem["retain_loader"], original=problem["original"],
        oracle=problem["oracle"], attacks=[QuantizationAttack(bits=8), RELEARN],
    )  # fmt: skip
    assert result["split"] == {"relearn": 32, "heldout": 32, "relearn_fraction": 0.5, "seed": 0}
    models = result["models"]
    assert models["original"]["forget_acc"] == 100.0 and models["unlearned"]["forget_acc"] == 0.0
    assert models["oracle"]["forget_acc"] <= 40.0
    relearn = result["attacks"][RELEARN.name]
    assert relearn["recovery_acc"] >= 0.8, relearn
    assert relearn["oracle_recovery_acc"] <= 0.3, relearn
    assert relearn["unlearned"]["RA"] >= 95.0  # the answers came back, not a collapse
    assert relearn["recovery_loss"] > 0.5, relearn
    int8 = result["attacks"]["int8-per-channel"]
    assert int8["recovery_acc"] <= 0.1, int8
    for key, value in problem["masked"].state_dict().items():
        assert torch.equal(value, before[key]), f"{key} was modified by an attack"


def test_without_the_original_there_is_no_recovery(problem):
    result = run_attacks(problem["masked"], None, problem["forget"], attacks=[QuantizationAttack(bits=8)])
    entry = result["attacks"]["int8-per-channel"]
    assert set(result["models"]) == {"unlearned"} and "oracle" not in entry
    assert math.isnan(entry["recovery_acc"]) and math.isnan(entry["recovery_loss"])
    flat = flat_result(result, "int8-per-channel")
    assert flat["unlearned/forget_acc"] == entry["unlearned"]["forget_acc"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"relearn_fraction": 1.0}, ValueError, "relearn_fraction"),
        ({"relearn_fraction": 0.0}, ValueError, "relearn_fraction"),
        ({"attacks": ["int4"]}, TypeError, "QuantizationAttack or RelearningAttack"),
    ],
)
def test_bad_arguments(problem, kwargs, error, match):
    with pytest.raises(error, match=match):
        run_attacks(problem["masked"], None, problem["forget"], **kwargs)
    if "attacks" in kwargs:
        with pytest.raises(error, match=match):
            RobustnessAttacks(**kwargs)


def test_callback_logs_reports_and_writes_the_attacks(tmp_path):
    """GA through UnlearningModule on the blobs with the original and oracle on disk; the callback attacks the
    result when fit ends (the wiring: loggers, the report, attacks.json; not the size of the recovery)."""
    train, test = blobs(100, seed=1), blobs(50, seed=2)
    x, y = train.tensors
    keep = y != FORGET_CLASS
    original, oracle = tmp_path / "original.pt", tmp_path / "oracle.pt"
    torch.save(fit_plain(mlp(seed=0), x, y, steps=100).state_dict(), original)
    torch.save(fit_plain(mlp(seed=0), x[keep], y[keep], steps=100).state_dict(), oracle)
    relearn = RelearningAttack(steps=5, lr=1e-2)
    module = UnlearningModule(
        mlp(seed=0), GradientAscent(), optimizer=lambda p: torch.optim.Adam(p, lr=1e-2), original=str(original), oracle=str(oracle)
    )
    dm = ForgetRetainDataModule(train, test, forget_class=FORGET_CLASS, batch_size=25)
    attacks = RobustnessAttacks(attacks=[QuantizationAttack(bits=4, group_size=8), relearn], dirpath=str(tmp_path / "attacks"))
    report = UnlearningReport(dirpath=str(tmp_path / "report"))
    trainer = make_trainer(max_epochs=1, callbacks=[report, attacks], logger=CSVLogger(tmp_path, name="csv"))
    trainer.fit(module, datamodule=dm)
    weights = {k: v.clone() for k, v in module.model.state_dict().items()}

    assert set(attacks.results["attacks"]) == {"int4-g8", relearn.name}
    assert set(attacks.results["models"]) == {"unlearned", "original", "oracle"}
    written = json.loads((tmp_path / "attacks" / "attacks.json").read_text())
    assert written["attacks"][relearn.name]["unlearned"]["forget_acc"] == attacks.results["attacks"][relearn.name]["unlearned"]["forget_acc"]
    on_report = json.loads((tmp_path / "report" / "report.json").read_text())["attacks"]
    assert [a["name"] for a in on_report] == ["int4-g8", relearn.name]
    assert "recovery_acc" in on_report[1]["result"] and "oracle/forget_acc" in on_report[1]["result"]
    logged = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert f"attack/{relearn.name}/recovery_acc" in logged and "attack/int4-g8/unlearned/forget_acc" in logged
    for key, value in module.model.state_dict().items():  # the unlearned weights are untouched by the attacks
        assert torch.equal(value, weights[key])


def test_callback_takes_the_network_before_unlearning_as_the_original_when_there_is_no_original_path():
    """A model unlearned as given (UnlearningModule without `original`, e.g. a pretrained LM): the callback copies
    the network when fit is set up, so recovery is still measured against the model before unlearning."""
    train, test = blobs(100, seed=1), blobs(50, seed=2)
    x, y = train.tensors
    trained = fit_plain(mlp(seed=0), x, y, steps=100)
    forget = y == FORGET_CLASS
    with torch.no_grad():
        before_acc = (trained(x[forget]).argmax(-1) == y[forget]).float().mean().item()
    module = UnlearningModule(copy.deepcopy(trained), GradientAscent(), optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    dm = ForgetRetainDataModule(train, test, forget_class=FORGET_CLASS, batch_size=25)
    attacks = RobustnessAttacks(attacks=[RelearningAttack(steps=5, lr=1e-2)], relearn_fraction=0.5)
    make_trainer(max_epochs=1, callbacks=[attacks]).fit(module, datamodule=dm)

    models = attacks.results["models"]
    assert set(models) == {"unlearned", "original"}
    assert before_acc > 0.9 and models["original"]["forget_acc"] > 0.9  # the trained model, not the unlearned one
    assert models["unlearned"]["forget_acc"] < models["original"]["forget_acc"]
    assert math.isfinite(flat_result(attacks.results, attacks.attacks[0].name)["recovery_acc"])
    assert attacks._original is None  # the copy is released after the attacks


class _OwnModule(pl.LightningModule):
    """Not an ``UnlearningModule``: GA on the forget batches, with the ``original``/``oracle_path`` files of
    ``_interfaces.WeightFiles``."""

    def __init__(self, original: str, oracle: str) -> None:
        super().__init__()
        self.model = mlp(seed=0)
        self.original, self.oracle_path = original, oracle

    def training_step(self, batch, batch_idx):
        x, y = batch["forget"]
        return -torch.nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=1e-2)


def test_the_callback_reads_the_weight_files_of_any_module_with_them(tmp_path):
    train, test = blobs(100, seed=1), blobs(50, seed=2)
    x, y = train.tensors
    keep = y != FORGET_CLASS
    original, oracle = tmp_path / "original.pt", tmp_path / "oracle.pt"
    torch.save(fit_plain(mlp(seed=0), x, y, steps=100).state_dict(), original)
    torch.save(fit_plain(mlp(seed=0), x[keep], y[keep], steps=100).state_dict(), oracle)
    module = _OwnModule(str(original), str(oracle))
    module.model.load_state_dict(torch.load(original, weights_only=True))
    assert isinstance(module, WeightFiles) and not isinstance(module, UnlearningModule)
    attacks = RobustnessAttacks(attacks=[RelearningAttack(steps=5, lr=1e-2)], relearn_fraction=0.5)
    dm = ForgetRetainDataModule(train, test, forget_class=FORGET_CLASS, batch_size=25)
    make_trainer(max_epochs=1, limit_val_batches=0, callbacks=[attacks]).fit(module, datamodule=dm)
    assert set(attacks.results["models"]) == {"unlearned", "original", "oracle"}
