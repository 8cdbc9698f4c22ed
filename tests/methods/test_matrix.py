"""One matrix over every registered method: the invariants every unlearning method must keep.

Each method unlearns a toy problem (4-class Gaussian blobs, an MLP trained to 100% accuracy)
through ``UnlearningModule`` + ``Trainer`` with a ``ForgetRetainDataModule``, forgetting either
one whole class or a random 10% subset. A method registered in ``METHODS`` is picked up
automatically; give it toy settings in ``TOY_KWARGS`` only if its defaults do not suit the toy.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lightning_unlearn import ForgetRetainDataModule, UnlearningModule
from lightning_unlearn.methods import METHODS, RegexMask, SaliencyMask, UnlearningMethod
from lightning_unlearn.tasks import ClassificationTask

from ._toy import accuracy, batch, blobs, mlp, pretrained, snapshot, train_steps

ALL_METHODS = [n for n in METHODS.names() if "classification" in METHODS.get(n).supported_tasks]
#: Per-method settings for the toy problem (empty: the method's defaults).
TOY_KWARGS: dict[str, dict[str, Any]] = {
    # contributions at the toy MLP's hidden layer (the default "penultimate" is SmallCNN/ViT's)
    "roka": {"layer": "body"},
    # 4 toy classes: random unit anchors instead of a description set; features at the MLP's hidden layer
    "stake_the_points": {
        "anchors": torch.nn.functional.normalize(torch.randn(4, 16, generator=torch.Generator().manual_seed(0)), dim=-1),
        "layer": "body",
        "calibration_steps": 50,
        "proxy_eps": 3.0,  # the blobs are far apart: a wide radius for proxies that cross to other classes
    },
    # the paper's α = 10 forgets the class too but leaves the first layer's bias untouched; the matrix wants every
    # parameter to move
    "ssd": {"alpha": 2.0, "dampening": 0.5},
    # the toy MLP is trained to a tiny loss: a Newton step needs a small damping to move it
    "iu": {"damping": 1e-3},
    # at SCRUB's T = 4 the max passes raise the softened KL on the near-one-hot blob class without flipping its argmax
    # on some weight/data orders (here seed 0: forget 100% on one machine, 0% on another, from rounding alone); at T = 1
    # the class goes on seeds 0-3 (measured) for both
    "scrub": {"temperature": 1.0},
    "scrub_r": {"temperature": 1.0},
    # the toy MLP fits the blobs to a near-zero loss, so its retain Fisher is tiny: the noise scale that removes the
    # blob class (forget 7%, retain 99% measured) is α = 3e-5; at the default 1e-6 the zeroed class row alone leaves it
    "fisher": {"alpha": 3e-5},
}
#: Methods exempt from the forgetting check of ``test_forgetting_one_class``, with the reason (measured).
NO_TOY_FORGETTING = {
    # UNSIR's impair step (train on error-maximising noise labelled with the forget class) leaves the blob class at
    # 100% forget accuracy (its loss even falls), with Adam lr 1e-2 here and with the paper's SGD lr 0.02 / Adam;
    # its maths is checked in test_unsir
    "unsir": "the impair step does not remove a well-separated blob class",
}
KINDS = {
    # kind: (datamodule request, batch size, epochs)
    "class": ({"forget_class": 3}, 16, 5),
    "random": ({"forget_fraction": 0.1}, 8, 2),
}
LR = 1e-2


def _method(name: str, **kwargs: Any) -> UnlearningMethod:
    return METHODS.build(name, **{**TOY_KWARGS.get(name, {}), **kwargs})


def _accepts_a_mask(name: str) -> bool:
    """Every method takes ``mask``; the ones that build their own (RAZOR's edit set) refuse one with a ValueError."""
    assert "mask" in inspect.signature(METHODS.get(name)).parameters
    try:
        _method(name, mask=RegexMask(r"^head\."))
    except ValueError as err:
        assert "`mask` should be None" in str(err)
        return False
    return True


MASKABLE = [n for n in ALL_METHODS if _accepts_a_mask(n)]


def _datamodule(kind: str) -> ForgetRetainDataModule:
    request, batch_size, _ = KINDS[kind]
    return ForgetRetainDataModule(blobs(), batch_size=batch_size, retain_batch_size=32, seed=0, **request)


def _trainer(max_epochs: int, callbacks: list[Callback], **kwargs: Any) -> pl.Trainer:
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        max_epochs=max_epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=callbacks,
        **kwargs,
    )


class _Recorder(Callback):
    """Weights when training starts (after the method's setup) and every step's loss."""

    def __init__(self) -> None:
        self.start: dict[str, torch.Tensor] = {}
        self.losses: list[float] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = snapshot(pl_module.model)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


@dataclass
class Run:
    method: UnlearningMethod
    module: UnlearningModule
    datamodule: ForgetRetainDataModule
    trainer: pl.Trainer
    original: dict[str, torch.Tensor]
    start: dict[str, torch.Tensor]
    end: dict[str, torch.Tensor]
    losses: list[float]

    def split_accuracy(self, weights: str) -> tuple[float, float]:
        """(forget, retain) accuracy of the ``"original"`` or ``"end"`` weights."""
        model = mlp()
        model.load_state_dict(getattr(self, weights))
        x, y = blobs().tensors
        forget = torch.zeros(len(y), dtype=torch.bool)
        forget[list(self.datamodule.request.indices)] = True
        return accuracy(model, x[forget], y[forget]), accuracy(model, x[~forget], y[~forget])


def _unlearn(
    name: str, kind: str, *, method_kwargs: dict[str, Any] | None = None, max_epochs: int | None = None, **trainer_kwargs: Any
) -> Run:
    torch.manual_seed(0)
    model = pretrained()
    original = snapshot(model)
    method = _method(name, **(method_kwargs or {}))
    module = UnlearningModule(model, method, optimizer=functools.partial(torch.optim.Adam, lr=LR))
    datamodule = _datamodule(kind)
    recorder = _Recorder()
    extra = trainer_kwargs.pop("callbacks", [])
    trainer = _trainer(max_epochs or KINDS[kind][2], [recorder, *extra], **trainer_kwargs)
    trainer.fit(module, datamodule=datamodule)
    return Run(method, module, datamodule, trainer, original, recorder.start, snapshot(model), recorder.losses)


@pytest.fixture(scope="module")
def unlearned():
    """``unlearned(name, kind)``: one unlearning run per (method, kind), shared by the tests below."""
    return functools.cache(_unlearn)


def test_matrix_covers_the_registry():
    assert {"ga", "graddiff", "npo", "rl", "salun", "scrub", "l1_sparse", "ft", "retrain"} <= set(ALL_METHODS)
    assert MASKABLE, "at least one method should accept a parameter mask"


# ---------------------------------------------------------------------------------- invariants
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("name", ALL_METHODS)
def test_losses_are_finite(unlearned, name, kind):
    run = unlearned(name, kind)
    _, batch_size, epochs = KINDS[kind]
    steps_per_epoch = math.ceil(len(run.datamodule.forget_set) / batch_size)  # mode="min_size"
    assert len(run.losses) == epochs * steps_per_epoch == run.trainer.global_step
    assert all(math.isfinite(v) for v in run.losses), run.losses
    assert all(bool(torch.isfinite(v).all()) for v in run.end.values())


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("name", ALL_METHODS)
def test_only_intended_parameters_move(unlearned, name, kind):
    run = unlearned(name, kind)
    masks = run.method.masks
    if masks is None:
        # no mask: every parameter is trained
        moved = [k for k in run.end if not torch.equal(run.end[k], run.start[k])]
        assert moved == list(run.end), f"{name} left parameters untouched: {set(run.end) - set(moved)}"
    else:
        # a mask (e.g. SalUn's saliency mask): entries outside it are bit-identical, some inside move
        assert set(masks) <= set(run.end)
        changed_inside = 0
        for key, before in run.start.items():
            after = run.end[key]
            mask = masks.get(key)
            if mask is None:
                assert torch.equal(after, before), f"{key} is outside the mask but changed"
                continue
            outside = mask == 0
            assert torch.equal(after[outside], before[outside]), f"masked-out entries of {key} changed"
            changed_inside += int((after[~outside] != before[~outside]).sum())
        assert changed_inside > 0
    if run.method.reference is not None:
        # the frozen reference is the model as unlearning found it, and it never moves
        for key, value in run.method.reference.state_dict().items():
            assert torch.equal(value, run.start[key])
        assert not run.method.reference.training
        assert not any(p.requires_grad for p in run.method.reference.parameters())


@pytest.mark.parametrize("name", MASKABLE)
def test_regex_mask_trains_only_the_head(name):
    run = _unlearn(name, "random", method_kwargs={"mask": RegexMask(r"^head\.")}, max_epochs=1, limit_train_batches=2)
    assert set(run.method.masks) == {"head.weight", "head.bias"}
    for key in run.start:
        same = torch.equal(run.end[key], run.start[key])
        assert same == key.startswith("body."), f"{key}: {'unchanged' if same else 'changed'}"


@pytest.mark.parametrize("name", MASKABLE)
def test_masked_out_entries_stay_bit_identical_under_adamw(name):
    """A saliency mask (partly masked tensors) and AdamW's weight decay: the entries outside the mask keep their
    exact values, the engine's ``after_optimizer_step`` re-imposing them after every step."""
    model = pretrained()
    method = _method(name, mask=SaliencyMask(threshold=0.3))
    forget, retain = batch(n=16, seed=5, label=3), batch(n=32, seed=6)
    method.setup(model, ClassificationTask(), [forget], [retain])
    before = snapshot(model)  # after setup: Retrain re-initialises the weights there
    params = [p for p in model.parameters() if p.requires_grad] + method.parameters()
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=0.1)
    train_steps(method, model, optimizer, forget, retain, 4)
    changed_inside = 0
    for key, value in before.items():
        keep = method.masks[key] != 0
        assert not keep.all(), f"{key}: the toy mask should leave some entries out"
        assert torch.equal(model.state_dict()[key][~keep], value[~keep]), f"masked-out entries of {key} moved"
        changed_inside += int((model.state_dict()[key][keep] != value[keep]).sum())
    assert changed_inside > 0 or not method.uses_forget and method.retain_weight == 0


@pytest.mark.parametrize("name", ALL_METHODS)
def test_forgetting_one_class(unlearned, name):
    run = unlearned(name, "class")
    forget_before, retain_before = run.split_accuracy("original")
    forget_after, retain_after = run.split_accuracy("end")
    assert forget_before == retain_before == 1.0
    assert retain_after >= 0.9, f"{name} lost retain accuracy: {retain_after:.2f}"
    if getattr(run.method, "reinitialize", False):
        # retraining starts from fresh weights and never sees the forgotten class
        assert all(not torch.equal(run.start[k], run.original[k]) for k in run.start)
        assert forget_after <= 0.2
    elif name in NO_TOY_FORGETTING:
        assert forget_after <= forget_before, f"{name}: {NO_TOY_FORGETTING[name]}"
    elif run.method.uses_forget:
        assert forget_after <= 0.2, f"{name} did not forget the class: forget accuracy {forget_after:.2f}"
    else:
        # FT-like methods never see the forget set; they only have to keep the retain accuracy,
        # and start from the original weights
        assert all(torch.equal(run.start[k], run.original[k]) for k in run.start)


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
@pytest.mark.parametrize("name", ALL_METHODS)
def test_checkpoint_round_trip(name, tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    run = _unlearn(name, "class", max_epochs=1, limit_train_batches=2, enable_checkpointing=True, callbacks=[checkpoint])
    path = tmp_path / "last.ckpt"
    state = torch.load(path, map_location="cpu", weights_only=False)
    assert state["ForgetRetainDataModule"]["fingerprint"] == run.datamodule.request.fingerprint

    fresh = UnlearningModule(mlp(seed=123), _method(name))
    fresh.load_state_dict(state["state_dict"])
    for key, value in run.module.model.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[key], value), key

    # resuming continues the same run
    resumed = UnlearningModule(pretrained(), _method(name), optimizer=functools.partial(torch.optim.Adam, lr=LR))
    trainer = _trainer(2, [], limit_train_batches=2)
    trainer.fit(resumed, datamodule=_datamodule("class"), ckpt_path=path)
    assert trainer.global_step == 4
    assert all(bool(torch.isfinite(p).all()) for p in resumed.model.parameters())
