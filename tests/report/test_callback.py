"""``UnlearningReport``: the JSON record (schema, fingerprint, hashes, privacy), the loss curve and the attack extension point."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, Subset
from toys import FORGET_CLASS, mlp

from lightning_unlearn import ForgetRetainDataModule, Unlearn, UnlearningModule
from lightning_unlearn._interfaces import UnlearningRun
from lightning_unlearn.methods import NPO, GradDiff, StepContext
from lightning_unlearn.metrics import structure_agreement, structure_subset
from lightning_unlearn.report import (
    REPORT_SCHEMA,
    ReportValidationError,
    UnlearningReport,
    model_hash,
    summary_sentences,
    validate_report,
)
from lightning_unlearn.report.callback import _roc, dumps_report
from lightning_unlearn.report.schema import load_report
from lightning_unlearn.tasks import ClassificationTask

from .conftest import make_datamodule, make_trainer, unlearn


class UserClassifier(pl.LightningModule):
    """A user's own module (no ``.model``, no ``.method``), unlearned by the ``Unlearn`` callback."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | set().union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value)) if value else set()
    return set()


# ------------------------------------------------------------------ schema
def test_report_validates_against_the_schema(run):
    report = run["json"]
    assert validate_report(report) is report
    assert load_report(run["dir"] / "report.json") == report
    assert run["callback"].report == report
    assert set(report) == set(REPORT_SCHEMA["required"])
    assert report["method"] == {"name": "graddiff", "class": "GradDiff", "hparams": GradDiff(retain_weight=2.0).hparams()}
    assert report["training"]["max_epochs"] == 3 and report["training"]["epochs"] == 3
    assert report["training"]["steps"] == run["trainer"].global_step > 0
    assert report["training"]["precision"] == "32-true"
    assert report["training"]["optimizer"]["class"] == "Adam" and report["training"]["optimizer"]["hparams"]["lr"] == 3e-3
    assert report["data"]["sizes"] == run["datamodule"].sizes()
    assert set(report["versions"]) >= {"python", "torch", "lightning", "lightning_unlearn", "numpy", "platform"}
    assert report["timings"]["unlearning_s"] > 0 and report["timings"]["evaluation_s"] > 0


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda r: r["metrics"]["unlearned"].update(UA="high"), r"at `metrics\.unlearned\.UA`: 'high' is not of type"),
        (lambda r: r.pop("request"), r"at `\(top level\)`: 'request' is a required property"),
        (lambda r: r["request"].update(indices=[1, 2, 3]), r"at `request`: Additional properties are not allowed \('indices'"),
        (lambda r: r["model"].update(hash_after="abc"), r"at `model\.hash_after`: 'abc' does not match"),
        (
            lambda r: r["mia_roc"]["curves"]["unlearned"]["tpr"].__setitem__(3, 1.5),
            r"at `mia_roc\.curves\.unlearned\.tpr\[3\]`: 1\.5 is greater than the maximum of 1",
        ),
        (lambda r: r["attacks"].append({"name": "", "result": {}}), r"at `attacks\[0\]\.name`"),
    ],
)
def test_broken_report_fails_validation_with_the_path(run, mutate, match):
    report = copy.deepcopy(run["json"])
    mutate(report)
    with pytest.raises(ReportValidationError, match=match):
        validate_report(report)


def test_load_report_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_report(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ReportValidationError, match="is not valid JSON"):
        load_report(tmp_path / "bad.json")


def test_json_is_compact_and_round_trips(run):
    text = (run["dir"] / "report.json").read_text()
    assert json.loads(text) == run["json"] and text == dumps_report(run["json"])
    assert '"step": [1, 2, 3' in text  # flat lists on one line


# ------------------------------------------------------------------ request fingerprint, hashes, privacy
def test_fingerprint_is_stable_across_runs_and_differs_between_requests(run, data, weights, tmp_path):
    again = unlearn(data, weights, tmp_path / "again", max_steps=2)
    report = json.loads((tmp_path / "again" / "report.json").read_text())
    assert report["request"] == run["json"]["request"]
    assert report["request"]["fingerprint"] == run["datamodule"].request.fingerprint
    assert report["request"] == {
        "kind": "forget_class",
        "description": "class 0",
        "count": 100,
        "dataset_size": 400,
        "fingerprint": again["datamodule"].request.fingerprint,
    }
    other = make_datamodule(data, forget_class=1).request.fingerprint
    fewer = make_datamodule(data, forget_indices=list(range(99))).request.fingerprint
    assert len({report["request"]["fingerprint"], other, fewer}) == 3


def test_hashes_before_and_after(run, weights):
    model = run["json"]["model"]
    assert model["hash_before"] != model["hash_after"]
    assert model["hash_before"] == model_hash(torch.load(weights["original"], weights_only=True))
    assert model["hash_after"] == model_hash(run["module"].model)
    assert model["original"] == str(weights["original"]) and model["oracle"] == str(weights["oracle"])
    assert model["num_parameters"] == sum(p.numel() for p in run["module"].model.parameters())


def test_model_hash_is_exact_and_device_independent():
    net = mlp(0)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    assert model_hash(net) == model_hash(state) == model_hash(dict(reversed(list(state.items()))))
    state["0.bias"][0] += 1e-7
    assert model_hash(state) != model_hash(net)
    half = {k: v.to(torch.bfloat16) for k, v in net.state_dict().items()}
    assert model_hash(half) != model_hash(net)
    with pytest.raises(TypeError, match="should be an nn.Module or a state dict, got list"):
        model_hash([1, 2])


def test_report_never_contains_forget_indices_or_data(run):
    request = run["datamodule"].request
    forget_inputs = torch.stack([run["datamodule"].forget_set[i][0] for i in range(5)])
    texts = [(run["dir"] / "report.json").read_text(), (run["dir"] / "report.html").read_text()]
    assert "indices" not in _keys(run["json"])
    for text in texts:
        compact = text.replace(" ", "").replace("\n", "")
        assert json.dumps(list(request.indices)).replace(" ", "") not in compact
        assert ",".join(map(str, request.indices[:10])) not in compact
        for value in forget_inputs.flatten().tolist()[:20]:
            assert repr(value) not in text and f"{value:.6f}" not in text


# ------------------------------------------------------------------ metrics, MIA curves, loss curve
def test_metrics_of_unlearned_original_and_oracle(run):
    metrics = run["json"]["metrics"]
    for name in ("unlearned", "original", "oracle"):
        assert {"forget_acc", "UA", "RA", "TA", "MIA", "mia_auc"} <= set(metrics[name])
    assert metrics["original"]["forget_acc"] > 95 and metrics["oracle"]["forget_acc"] < 5
    assert metrics["unlearned"]["forget_acc"] < metrics["original"]["forget_acc"]
    assert "avg_gap" in metrics["unlearned"] and "avg_gap" in metrics["original"] and "avg_gap" not in metrics["oracle"]


def test_structure_metrics_against_the_oracle(data, weights, tmp_path):
    """With a feature layer (the toy MLP's hidden ReLU is ``"1"``) every model gets the structure metrics."""
    result = unlearn(data, weights, tmp_path, callback=UnlearningReport(dirpath=tmp_path, structure_layer="1"))
    metrics = json.loads((result["dir"] / "report.json").read_text())["metrics"]
    assert metrics["oracle"]["knn_overlap"] == pytest.approx(1.0) and metrics["oracle"]["class_sim_corr"] == pytest.approx(1.0)
    # the same numbers as the library's structure_agreement on the same seeded subset of retained samples
    oracle = mlp()
    oracle.load_state_dict(torch.load(weights["oracle"], weights_only=True))
    retain = result["datamodule"].eval_dataloaders()["retain"].dataset
    expected = structure_agreement(result["module"].model, oracle, structure_subset(retain, 2000), layer="1")
    assert metrics["unlearned"]["knn_overlap"] == pytest.approx(expected["knn_overlap"], abs=1e-6)
    assert metrics["unlearned"]["class_sim_corr"] == pytest.approx(expected["class_sim_corr"], abs=1e-6)
    assert metrics["unlearned"]["knn_overlap"] < 1.0 and metrics["original"]["knn_overlap"] < 1.0
    assert "Neighbourhood agreement with oracle" in (result["dir"] / "report.html").read_text()


def test_structure_metrics_are_skipped_without_a_feature_layer(run):
    # "auto" looks for a submodule named `penultimate`; the toy MLP has none
    assert all("knn_overlap" not in (m or {}) for m in run["json"]["metrics"].values())


def test_mia_roc_curves_match_the_logged_auc(run):
    roc = run["json"]["mia_roc"]
    assert roc["members"] == "forget" and roc["nonmembers"] == "holdout"
    assert set(roc["curves"]) == {"unlearned", "original", "oracle"}
    for name, curve in roc["curves"].items():
        assert curve["auc"] == pytest.approx(run["json"]["metrics"][name]["mia_auc"], abs=1e-5)
        assert curve["fpr"][0] == 0 and curve["fpr"][-1] == 1 and curve["tpr"][-1] == 1
        assert all(a <= b for a, b in zip(curve["tpr"], curve["tpr"][1:]))


def test_roc_curve_agrees_with_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    members = torch.randn(40, generator=g).abs().round(decimals=1)
    nonmembers = (torch.randn(60, generator=g).abs() + 0.3).round(decimals=1)  # ties on purpose
    curve = _roc(members, nonmembers, points=1001)
    labels = [1] * 40 + [0] * 60
    scores = (-torch.cat([members, nonmembers])).tolist()
    assert curve["auc"] == pytest.approx(metrics.roc_auc_score(labels, scores), abs=1e-6)
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    area = sum((b - a) * (c + d) / 2 for a, b, c, d in zip(curve["fpr"], curve["fpr"][1:], curve["tpr"], curve["tpr"][1:]))
    assert area == pytest.approx(metrics.auc(fpr, tpr), abs=2e-3)


def test_loss_curve_has_one_point_per_step(run):
    curve = run["json"]["loss_curve"]
    assert curve["step"] == list(range(1, run["trainer"].global_step + 1))
    assert set(curve["series"]) == {"loss", "forget_loss", "retain_loss"}
    for name in ("forget_loss", "retain_loss"):
        assert len(curve["series"][name]) == len(curve["step"]) and all(v is not None for v in curve["series"][name])
    series = curve["series"]
    for total, forget, retain in zip(series["loss"], series["forget_loss"], series["retain_loss"]):
        assert total == pytest.approx(forget + 2.0 * retain, rel=1e-4, abs=1e-5)  # GradDiff(retain_weight=2)


def test_long_loss_curves_are_averaged_into_bins(data, weights, tmp_path):
    result = unlearn(
        data, weights, tmp_path, callback=UnlearningReport(dirpath=tmp_path, max_curve_points=5, evaluate_original=False)
    )
    report = result["callback"].report
    assert len(report["loss_curve"]["step"]) == 5 and report["loss_curve"]["step"][-1] == result["trainer"].global_step
    assert report["metrics"]["original"] is None and set(report["mia_roc"]["curves"]) == {"unlearned", "oracle"}


def test_original_from_the_fit_start_snapshot_and_no_oracle(data, weights, tmp_path):
    """Without ``original=``/``oracle=`` the original is the model as fit found it; explicit datasets have no fingerprint."""
    net = mlp()
    net.load_state_dict(torch.load(weights["original"], weights_only=True))
    module = UnlearningModule(net, GradDiff(), optimizer=lambda p: torch.optim.SGD(p, lr=0.05))
    callback = UnlearningReport(dirpath=tmp_path)
    labels = data["train"].tensors[1]
    forget = Subset(data["train"], torch.nonzero(labels == FORGET_CLASS).flatten().tolist())
    retain = Subset(data["train"], torch.nonzero(labels != FORGET_CLASS).flatten().tolist())
    dm = ForgetRetainDataModule(forget=forget, retain=retain, test=data["test"], batch_size=32)
    make_trainer(max_steps=3, callbacks=[callback]).fit(module, datamodule=dm)
    report = validate_report(json.loads((tmp_path / "report.json").read_text()))
    assert report["model"]["hash_before"] == model_hash(torch.load(weights["original"], weights_only=True))
    assert report["model"]["original"] is None and report["model"]["oracle"] is None
    assert report["metrics"]["oracle"] is None and report["metrics"]["original"]["forget_acc"] > 95
    assert "avg_gap" not in report["metrics"]["unlearned"]
    assert report["training"]["optimizer"]["class"] == "SGD" and report["training"]["max_steps"] == 3
    assert report["request"] == {
        "kind": "explicit",
        "description": "explicit forget and retain datasets",
        "count": 100,
        "dataset_size": None,
        "fingerprint": None,
    }
    assert report["mia_roc"]["nonmembers"] == "test"  # no holdout split: test stands in
    assert "no request fingerprint" in summary_sentences(report)[0]


def test_default_dirpath_is_the_logger_folder(data, weights, tmp_path):
    logger = CSVLogger(tmp_path, name="logs")
    result = unlearn(data, weights, tmp_path, callback=UnlearningReport(), logger=logger, max_steps=2)
    assert result["callback"].json_path == Path(logger.log_dir) / "report.json"
    assert (Path(logger.log_dir) / "report.html").is_file()


def test_with_the_unlearn_callback_on_a_users_module(data, weights, tmp_path):
    net = mlp()
    net.load_state_dict(torch.load(weights["original"], weights_only=True))
    module = UserClassifier(net)
    dm = make_datamodule(data, forget_class=FORGET_CLASS, train_on="retain")
    unlearn_cb = Unlearn(NPO(), forget=dm.forget_set, batch_size=32, progress_bar=False)
    oracle = tmp_path / "user_oracle.pt"  # the user's module's own state dict keys ("net.*")
    torch.save({f"net.{k}": v for k, v in torch.load(weights["oracle"], weights_only=True).items()}, oracle)
    callback = UnlearningReport(dirpath=tmp_path, oracle=str(oracle))
    make_trainer(max_epochs=2, callbacks=[callback, unlearn_cb]).fit(module, datamodule=dm)
    report = callback.report
    assert report["method"]["class"] == "NPO" and report["method"]["hparams"] == NPO().hparams()
    assert report["model"]["class"] == "UserClassifier"
    assert report["model"]["hash_before"] == model_hash(
        {f"net.{k}": v for k, v in torch.load(weights["original"], weights_only=True).items()}
    )
    assert report["model"]["hash_after"] == model_hash(module)
    assert report["metrics"]["original"]["forget_acc"] > 95 and report["metrics"]["oracle"] is not None
    assert report["metrics"]["unlearned"]["forget_acc"] < report["metrics"]["original"]["forget_acc"]
    assert report["loss_curve"]["step"] and "loss" in report["loss_curve"]["series"]


class OwnUnlearningModule(pl.LightningModule):
    """Not an ``UnlearningModule``, but it has what the report reads (``_interfaces.UnlearningRun``): ``model``, ``task``,
    ``method``, ``original`` and ``oracle_path``; it runs the method's loss itself."""

    def __init__(self, original: str, oracle: str) -> None:
        super().__init__()
        self.model = mlp()
        self.model.load_state_dict(torch.load(original, weights_only=True))
        self.task = ClassificationTask()
        self.method = GradDiff(retain_weight=2.0)
        self.original, self.oracle_path = original, oracle

    def training_step(self, batch, batch_idx):
        ctx = StepContext(model=self.model, task=self.task, forget=batch.get("forget"), retain=batch.get("retain"))
        return self.method.loss(ctx).loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=3e-3)


def test_any_module_with_the_run_interface_gets_the_full_report(data, weights, tmp_path):
    module = OwnUnlearningModule(str(weights["original"]), str(weights["oracle"]))
    assert isinstance(module, UnlearningRun) and not isinstance(module, UnlearningModule)
    callback = UnlearningReport(dirpath=tmp_path)
    make_trainer(max_epochs=2, callbacks=[callback]).fit(module, datamodule=make_datamodule(data))
    report = callback.report
    assert report["method"] == {"name": "graddiff", "class": "GradDiff", "hparams": GradDiff(retain_weight=2.0).hparams()}
    assert report["model"]["original"] == str(weights["original"]) and report["model"]["oracle"] == str(weights["oracle"])
    assert report["metrics"]["original"]["forget_acc"] > 95 and report["metrics"]["oracle"] is not None


# ------------------------------------------------------------------ attacks (the extension point)
def test_add_attack_before_and_after_fit(data, weights, tmp_path):
    callback = UnlearningReport(dirpath=tmp_path)
    callback.add_attack(
        "LiRA", {"auc": 0.52, "tpr_at_1pct_fpr": torch.tensor(0.013), "shadow_models": 8}, "likelihood-ratio attack"
    )
    unlearn(data, weights, tmp_path, callback=callback, max_steps=2)
    assert callback.report["attacks"] == [
        {
            "name": "LiRA",
            "description": "likelihood-ratio attack",
            "result": {"auc": 0.52, "tpr_at_1pct_fpr": pytest.approx(0.013), "shadow_models": 8},
        }
    ]
    callback.add_attack("U-LiRA", {"auc": 0.5, "per_class": [0.5, 0.49]})
    on_disk = load_report(tmp_path / "report.json")
    assert [a["name"] for a in on_disk["attacks"]] == ["LiRA", "U-LiRA"]
    assert "U-LiRA" in (tmp_path / "report.html").read_text()


def test_add_attack_errors():
    callback = UnlearningReport()
    with pytest.raises(ValueError, match="`name` should be a non-empty string, got ''"):
        callback.add_attack("", {})
    with pytest.raises(TypeError, match="`result` should be a mapping"):
        callback.add_attack("x", [0.5])
    with pytest.raises(
        TypeError, match=r"`result\['losses'\]` should be a number, string, boolean, None or a list of them, got Tensor"
    ):
        callback.add_attack("x", {"losses": torch.zeros(3)})


# ------------------------------------------------------------------ arguments, trainer context, state
def test_constructor_errors(tmp_path):
    with pytest.raises(ValueError, match=r"`mia_attack` should be one of \['logistic', 'svc'\], got 'SVC'"):
        UnlearningReport(mia_attack="SVC")
    with pytest.raises(ValueError, match="`max_curve_points` should be an int >= 2, got 1"):
        UnlearningReport(max_curve_points=1)
    with pytest.raises(FileNotFoundError, match="`oracle` weights file .* does not exist"):
        UnlearningReport(oracle=str(tmp_path / "nope.pt"))
    with pytest.raises(TypeError, match="`task` should be a lightning_unlearn Task or None, got str"):
        UnlearningReport(task="classification")
    with pytest.raises(ValueError, match="`structure_samples` should be an int >= 12, got 5"):
        UnlearningReport(structure_samples=5)


def test_needs_a_datamodule_with_eval_dataloaders(data, tmp_path):
    module = UnlearningModule(mlp(), GradDiff())
    loader = DataLoader(data["train"], batch_size=32)
    with pytest.raises(MisconfigurationException, match=r"evaluates on the datamodule.s `eval_dataloaders\(\)`.*got NoneType"):
        make_trainer(max_steps=1, callbacks=[UnlearningReport(dirpath=tmp_path)]).fit(module, train_dataloaders=loader)


def test_a_second_fit_starts_a_new_curve(data, weights, tmp_path):
    callback = UnlearningReport(dirpath=tmp_path)
    unlearn(data, weights, tmp_path, callback=callback, max_steps=2)
    unlearn(data, weights, tmp_path, callback=callback, max_steps=3)
    assert callback.report["loss_curve"]["step"] == [1, 2, 3]


def test_a_resumed_run_reports_the_whole_curve(data, weights, tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = unlearn(
        data, weights, tmp_path, callback=UnlearningReport(dirpath=tmp_path), max_epochs=1, callbacks_extra=[checkpoint]
    )
    steps_first = first["trainer"].global_step
    resumed = UnlearningReport(dirpath=tmp_path / "resumed")
    second = unlearn(
        data,
        weights,
        tmp_path,
        callback=resumed,
        max_epochs=3,
        callbacks_extra=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)],
        ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"),
    )
    assert second["trainer"].global_step == 3 * steps_first
    assert resumed.report["loss_curve"]["step"] == list(range(1, 3 * steps_first + 1))
    assert resumed.report["model"]["hash_before"] == model_hash(torch.load(weights["original"], weights_only=True))


def test_state_dict_keeps_the_curve_and_tolerates_old_checkpoints(run):
    state = run["callback"].state_dict()
    assert len(state["steps"]) == run["trainer"].global_step
    fresh = UnlearningReport()
    fresh.load_state_dict(state)
    assert fresh.state_dict()["series"] == state["series"]
    fresh.load_state_dict({})  # a checkpoint from before the callback existed
    assert fresh.state_dict()["steps"] == []


def test_import_is_light():
    """Importing the report package imports neither matplotlib nor jsonschema (torchmetrics may import matplotlib itself)."""
    code = (
        "import sys, lightning.pytorch, torchmetrics; before = set(sys.modules); import lightning_unlearn.report, "
        "lightning_unlearn.report.cli; print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('matplotlib', 'jsonschema')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_missing_extras_give_an_install_hint(run, monkeypatch):
    from lightning_unlearn.report import render_html

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'lightning-unlearn\[report\]'"):
        render_html(run["json"])
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    with pytest.raises(ImportError, match=r"`jsonschema`.*pip install 'lightning-unlearn\[report\]'"):
        validate_report(run["json"])
