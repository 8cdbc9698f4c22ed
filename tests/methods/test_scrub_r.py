"""SCRUB+R: SCRUB's steps, then the rewind to the kept model whose forget error is closest to held-out data's."""

from __future__ import annotations

import functools

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn import ForgetRetainDataModule, UnlearningModule
from lightning_unlearn.methods import METHODS, SCRUBR, per_class_errors, rewind_target
from lightning_unlearn.tasks import ClassificationTask

from ._toy import batch, blobs, context, perturbed, pretrained, setup


def test_registered():
    assert METHODS.get("scrub_r") is SCRUBR
    assert SCRUBR.needs_reference and SCRUBR.uses_forget


def test_steps_are_scrubs_alternating_ones():
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    method = SCRUBR(temperature=2.0, gamma=0.9, alpha=0.5, forget_weight=1.5, max_epochs=1)
    with pytest.warns(UserWarning, match="no held-out data"):
        setup(method, model, forget)
    perturbed(model, 0.3)
    log_t = torch.log_softmax(method.reference(forget[0]) / 2, -1)
    kl_f = 4 * (log_t.exp() * (log_t - torch.log_softmax(model(forget[0]) / 2, -1))).sum(-1).mean()
    out = method.loss(context(method, model, forget, retain, epoch=0))
    torch.testing.assert_close(out.loss, -1.5 * kl_f)
    log_t = torch.log_softmax(method.reference(retain[0]) / 2, -1)
    kl_r = 4 * (log_t.exp() * (log_t - torch.log_softmax(model(retain[0]) / 2, -1))).sum(-1).mean()
    out = method.loss(context(method, model, forget, retain, epoch=1))
    torch.testing.assert_close(out.loss, 0.9 * F.cross_entropy(model(retain[0]), retain[1]) + 0.5 * kl_r)
    assert [e for e, _ in method.checkpoints] == [1]  # the model at the end of epoch 0, kept at epoch 1's first step


def test_per_class_errors_and_target():
    model = pretrained()
    x, y = blobs().tensors
    with torch.no_grad():
        model.head.bias[2] += 100.0  # predicts class 2 everywhere
    errors, counts = per_class_errors(model, ClassificationTask(), [(x, y)], 4)
    torch.testing.assert_close(counts, torch.full((4,), 60.0))
    torch.testing.assert_close(errors, torch.tensor([60.0, 60.0, 0.0, 60.0]))
    # forget set: 3 samples of class 0 and 1 of class 2 -> target = 0.75 * 1.0 + 0.25 * 0.0
    assert rewind_target(torch.tensor([3.0, 0.0, 1.0, 0.0]), errors, counts) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="no sample of the forget set's classes"):
        rewind_target(torch.tensor([1.0, 0, 0, 0]), errors, torch.tensor([0.0, 5, 5, 5]))


def test_rewind_undoes_an_overshoot():
    """Forget error above the held-out error (the overshoot SCRUB+R targets): the kept model whose forget error matches
    the held-out one is restored."""
    model = pretrained()
    x, y = blobs().tensors
    x3 = x[y == 3]
    with torch.no_grad():
        logits = model(x3)
    others = logits.clone()
    others[:, 3] = float("-inf")
    margin = logits[:, 3] - others.max(-1).values
    order = margin.argsort()
    forget, holdout = (x3[order[:10]], torch.full((10,), 3)), (x3[order[-10:]], torch.full((10,), 3))
    method = SCRUBR()
    method.setup(model, ClassificationTask(), [forget], [(x[y != 3], y[y != 3])], holdout_loader=[holdout])
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    method.checkpoints = [(1, kept)]
    # the final model: class 3's logit lowered just enough to misclassify the 10 lowest-margin samples (the forget
    # set) and none of the 10 highest (held out): forget error 1, held-out error 0
    with torch.no_grad():
        model.head.bias[3] -= float(margin[order[9]] + margin[order[10]]) / 2
    method.on_run_end(model, ClassificationTask())
    candidates = {c["epoch"]: c for c in method.rewind_stats["candidates"]}
    assert candidates["final"]["forget_error"] == 1.0 and candidates["final"]["target"] == 0.0
    assert candidates[1]["forget_error"] == 0.0 and candidates[1]["target"] == 0.0
    assert method.rewind_stats["chosen"] == 1
    assert all(torch.equal(model.state_dict()[k], v) for k, v in kept.items())


def test_rewind_keeps_the_final_model_on_a_tie():
    model = pretrained()
    forget, holdout = batch(seed=1, label=3), batch(seed=2, label=3)
    method = SCRUBR()
    method.setup(model, ClassificationTask(), [forget], [batch(seed=3)], holdout_loader=[holdout])
    method.checkpoints = [(1, {k: v.clone() for k, v in model.state_dict().items()})]
    method.on_run_end(model, ClassificationTask())
    assert method.rewind_stats["chosen"] == "final"


def test_unlearning_module_rewinds_before_the_checkpoint(tmp_path):
    """End to end: the module gives the datamodule's test split as held-out data and the rewind runs at the last
    epoch's end, so the saved last.ckpt holds the chosen model."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    train, test = blobs(), blobs(per_class=20, seed=3)
    dm = ForgetRetainDataModule(train, test, forget_fraction=0.1, batch_size=8, retain_batch_size=32, seed=0, mode="max_size")
    method = SCRUBR(max_epochs=1)
    module = UnlearningModule(pretrained(), method, optimizer=functools.partial(torch.optim.Adam, lr=1e-2), monitor=False)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = pl.Trainer(max_epochs=3, logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", callbacks=[ckpt], num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    assert method.holdout_loader is not None
    assert [e for e, _ in method.checkpoints] == [1, 2]
    stats = method.rewind_stats
    assert [c["epoch"] for c in stats["candidates"]] == [1, 2, "final"]
    chosen = stats["chosen"]
    state = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    expected = dict(method.checkpoints)[chosen] if chosen != "final" else None
    for k, v in module.model.state_dict().items():
        assert torch.equal(state[f"model.{k}"], v)
        if expected is not None:
            assert torch.equal(v, expected[k])
