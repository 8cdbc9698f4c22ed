"""Every schedule and ``UnlearningModule`` under each ``Trainer(precision=...)`` that runs on a CPU.

``"bf16-true"`` / ``"64-true"`` convert the module's weights: the callback's own forget/retain batches, the
reference θ₀ (NPO, SCRUB), the monitor's scoring batches and the oracle must follow (they failed with a dtype
mismatch in the first matmul before). The mixed precisions keep float32 weights under autocast.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader
from toys import NetClassifier, class_forget_data, make_trainer, mlp

from lightning_unlearn import ForgetRetainDataModule, Unlearn, UnlearningEvaluation, UnlearningModule, evaluate
from lightning_unlearn.methods import NPO, SCRUB, SalUn

#: precision -> the dtype of the module's weights after the fit
PRECISIONS = {
    "32-true": torch.float32,
    "64-true": torch.float64,
    "bf16-true": torch.bfloat16,
    "bf16-mixed": torch.float32,
    # "16-mixed" needs a GPU: on a CPU Lightning runs it as "bf16-mixed" (with a warning)
}
METHODS = {
    "npo": NPO,  # reference on the forget batch
    "scrub": functools.partial(SCRUB, schedule="combined"),  # reference (teacher) on forget and retain batches, one step
    "salun": functools.partial(SalUn, threshold=0.5),  # parameter mask; masked-out entries must stay exact
}
ADAM = functools.partial(torch.optim.Adam, lr=1e-2)


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return class_forget_data(12, 1, 6, 2)


def _check(model: torch.nn.Module, before: dict[str, torch.Tensor], method: Any, dtype: torch.dtype, moved_exactly: bool) -> None:
    after = {k: v.detach() for k, v in model.state_dict().items()}
    assert {v.dtype for v in after.values()} == {dtype}
    assert all(bool(torch.isfinite(v).all()) for v in after.values())
    assert max(float((after[k].double() - before[k].double()).abs().max()) for k in after) > 0  # it unlearned
    if method.reference is not None:  # the reference follows the module's precision ...
        assert {p.dtype for p in method.reference.parameters()} == {dtype}
        for k, v in method.reference.state_dict().items():  # ... and still holds the weights from before
            torch.testing.assert_close(v, before[k.removeprefix("net.")].to(dtype), rtol=0, atol=0)
    if method.masks is not None and moved_exactly:
        for name, param in model.named_parameters():
            mask = method.masks.get(name)
            frozen = torch.ones_like(param, dtype=torch.bool) if mask is None else mask == 0
            assert torch.equal(param.detach()[frozen], before[name].to(dtype)[frozen]), name


@pytest.mark.parametrize("method_name", list(METHODS))
@pytest.mark.parametrize("schedule", ["interleaved", "before_training", "after_training"])
@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_unlearn_callback_in_every_precision(data, precision, schedule, method_name):
    net = mlp()
    net.load_state_dict(data["pretrained"])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    method = METHODS[method_name]()
    unlearn = Unlearn(
        method, forget=data["forget"], retain=data["retain"], schedule=schedule, batch_size=4, max_steps=2,
        optimizer=ADAM, progress_bar=False,
    )
    trainer = make_trainer(max_steps=2, precision=precision, callbacks=[unlearn])
    trainer.fit(NetClassifier(net), DataLoader(data["retain"], batch_size=8))
    _check(net, before, method, PRECISIONS[precision], moved_exactly=False)  # the user's own steps move every weight
    assert unlearn.steps == 2
    assert all(torch.isfinite(torch.tensor(v)) for v in unlearn.summary.values()) and "after/forget_acc" in unlearn.summary


@pytest.mark.parametrize("method_name", list(METHODS))
@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_unlearning_module_in_every_precision(data, precision, method_name, tmp_path):
    oracle = mlp(seed=1)
    torch.save(oracle.state_dict(), tmp_path / "oracle.pt")
    net = mlp()
    net.load_state_dict(data["pretrained"])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    method = METHODS[method_name]()
    dm = ForgetRetainDataModule(data["train"], data["test"], forget_class=0, batch_size=4)
    module = UnlearningModule(net, method, optimizer=ADAM, oracle=str(tmp_path / "oracle.pt"))
    trainer = make_trainer(max_steps=2, precision=precision, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    _check(module.model, before, method, PRECISIONS[precision], moved_exactly=True)
    assert all(torch.isfinite(torch.tensor(v)) for v in module.unlearning_summary.values()) and module.unlearning_summary
    metrics = trainer.test(module, datamodule=dm, verbose=False)[0]
    assert {"test/UA", "test/RA", "test/TA", "test/MIA", "test/mia_auc", "test/avg_gap"} <= metrics.keys()
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_evaluation_callback_and_evaluate_in_every_precision(data, precision):
    net = mlp()
    net.load_state_dict(data["pretrained"])
    evaluation = UnlearningEvaluation(forget=data["forget"], retain=data["retain"], test=data["test"])
    unlearn = Unlearn(NPO(), forget=data["forget"], batch_size=4, progress_bar=False, monitor=False)
    module = NetClassifier(net)
    make_trainer(max_steps=2, precision=precision, callbacks=[unlearn, evaluation]).fit(module, DataLoader(data["retain"], batch_size=8))
    assert {"forget_acc", "RA", "TA", "MIA", "mia_auc"} <= evaluation.metrics.keys()
    assert all(torch.isfinite(torch.tensor(v)) for v in evaluation.metrics.values())
    # after the fit, evaluate() takes the precision of the Trainer the module is attached to
    loaders = {split: DataLoader(data[split], batch_size=16) for split in ("forget", "retain", "test")}
    assert evaluate(module, loaders) == evaluation.metrics


@pytest.mark.slow
@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_report_in_every_precision(data, precision, tmp_path):
    """The report scores the unlearned model, the original and the oracle in the fit's precision."""
    from lightning_unlearn.report import UnlearningReport

    torch.save(data["pretrained"], tmp_path / "original.pt")
    torch.save(mlp(seed=1).state_dict(), tmp_path / "oracle.pt")
    module = UnlearningModule(mlp(), NPO(), optimizer=ADAM, original=str(tmp_path / "original.pt"), oracle=str(tmp_path / "oracle.pt"))
    dm = ForgetRetainDataModule(data["train"], data["test"], forget_class=0, batch_size=4)
    report = UnlearningReport(dirpath=tmp_path / "report")
    make_trainer(max_steps=2, precision=precision, limit_val_batches=0, callbacks=[report]).fit(module, datamodule=dm)
    metrics = json.loads((tmp_path / "report" / "report.json").read_text())["metrics"]
    for name in ("unlearned", "original", "oracle"):
        assert {"forget_acc", "RA", "TA", "MIA", "mia_auc"} <= metrics[name].keys(), name
    assert metrics["original"]["forget_acc"] == 100.0 and metrics["unlearned"]["forget_acc"] < 100.0
