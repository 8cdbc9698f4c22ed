"""The ``Unlearn`` callback and ``UnlearningReport`` on a user's own PennyLane LightningModule (written here, not the
library's model): forget Iris class 0 in a phase before the user's training continues on the retained samples."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from lightning_unlearn import AngleFeaturesDataModule, Unlearn, UnlearningReport
from lightning_unlearn.methods import GradDiff

QUIET = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")


class MyHybridClassifier(pl.LightningModule):
    """A user's own variational circuit (PennyLane templates) feeding a linear layer, unchanged by unlearning."""

    def __init__(self, n_qubits: int = 4, num_classes: int = 3) -> None:
        super().__init__()
        import pennylane as qml

        device = qml.device("default.qubit", wires=n_qubits)

        @qml.qnode(device, interface="torch", diff_method="backprop")
        def circuit(inputs, weights):
            qml.AngleEmbedding(inputs, wires=range(n_qubits), rotation="Y")
            qml.StronglyEntanglingLayers(weights, wires=range(n_qubits))
            return [qml.expval(qml.PauliZ(i)) for i in range(n_qubits)]

        self.vqc = qml.qnn.TorchLayer(circuit, {"weights": (1, n_qubits, 3)})
        self.classifier = nn.Sequential(nn.Linear(n_qubits, 16), nn.ReLU(), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.classifier(self.vqc(x.double()).float())

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)


def _accuracy(model, dataset) -> float:
    x = torch.stack([s[0] for s in dataset])
    y = torch.stack([s[1] for s in dataset])
    with torch.no_grad():
        return 100.0 * float((model(x).argmax(-1) == y).float().mean())


def test_unlearn_phase_and_report_on_a_users_own_pennylane_module(tmp_path: Path):
    pl.seed_everything(0)
    data = AngleFeaturesDataModule("iris", forget_class=0, train_on="all", batch_size=16)
    model = MyHybridClassifier()
    pl.Trainer(max_epochs=15, **QUIET).fit(model, data)
    before = _accuracy(model, data.forget_set)
    assert before > 90.0
    original = tmp_path / "original.pt"
    torch.save(model.state_dict(), original)

    phase = Unlearn(
        GradDiff(), forget=data.forget_set, retain=data.retain_set, schedule="before_training", epochs=2, batch_size=16,
        optimizer=partial(torch.optim.Adam, lr=0.05), progress_bar=False,
    )  # fmt: skip
    report = UnlearningReport(dirpath=str(tmp_path / "report"), original=str(original))
    retain_data = AngleFeaturesDataModule("iris", forget_class=0, train_on="retain", batch_size=16)
    pl.Trainer(max_epochs=1, callbacks=[phase, report], **QUIET).fit(model, retain_data)

    after = _accuracy(model, data.forget_set)
    assert after < before - 50.0
    assert phase.summary["after/forget_acc"] < phase.summary["before/forget_acc"]
    assert _accuracy(model, data.retain_set) > 60.0
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    text = json.dumps(written)
    assert '"forget_acc"' in text and '"original"' in text
    assert (tmp_path / "report" / "report.html").is_file()
