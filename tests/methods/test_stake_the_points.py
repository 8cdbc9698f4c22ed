"""Stake the Points: proxies, calibration, each loss term against its closed form, both entry points, resume."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from toys import make_trainer

from lightning_unlearn import ForgetRetainDataModule, Unlearn, UnlearningModule
from lightning_unlearn.methods import StakeThePoints
from lightning_unlearn.tasks import ClassificationTask
from lightning_unlearn.tasks.base import capture_features

from ._toy import accuracy, batch, blobs, context, perturbed, pretrained, snapshot

ANCHORS = F.normalize(torch.randn(4, 16, generator=torch.Generator().manual_seed(0)), dim=-1)


def method(**kwargs) -> StakeThePoints:
    return StakeThePoints(**{"anchors": ANCHORS, "layer": "body", "calibration_steps": 100, "proxy_eps": 3.0, **kwargs})


def prepared(**kwargs) -> tuple[StakeThePoints, torch.nn.Module]:
    model, m = pretrained(), method(**kwargs)
    x, y = blobs().tensors
    m.setup(model, ClassificationTask(), [(x[y == 3], y[y == 3])])
    return m, model


def test_proxies_stay_in_the_ball_and_carry_the_originals_label():
    m, model = prepared(proxy_eps=3.0, proxy_steps=10)
    x, y = batch(16, label=3)
    x_adv, y_adv = m.proxies(ClassificationTask(), x, y)
    assert (x_adv - x).abs().max() <= 3.0 + 1e-6
    assert not torch.equal(x_adv, x)
    torch.testing.assert_close(y_adv, model(x_adv).argmax(1))  # labelled by the original's prediction
    assert (y_adv != y).float().mean() > 0.5  # a large enough radius crosses to the runner-up class


def test_calibrated_projector_classifies_by_anchor_similarity():
    m, model = prepared()
    x, y = batch(32, label=3)
    with capture_features(model, "body") as store:
        model(x)
    logits = m._similarity(m._projector_ori, store["out"])
    assert (logits.argmax(1) == y).float().mean() == 1.0
    assert m.projector is not m._projector_ori
    torch.testing.assert_close(m.projector.weight, m._projector_ori.weight)  # p_ω starts as p₀


def test_first_step_terms_match_their_closed_forms():
    m, model = prepared()
    x, y = batch(8, label=3)
    out = m.loss(context(m, model, forget=(x, y)))
    t = m.last_terms
    # θ = θ₀ and p_ω = p₀: the structures coincide and nothing has drifted
    assert t["align"] == pytest.approx(-1.0, abs=1e-6)
    assert t["reg"] == 0.0
    logits = model(x)
    expected_delete = -(F.cross_entropy(logits, y, reduction="none") * (logits.argmax(1) == y)).sum() / len(y)
    assert t["delete"] == pytest.approx(float(expected_delete), rel=1e-5)
    assert float(out.loss) == pytest.approx(t["delete"] + t["proxy"] + t["align"] + t["reg"], rel=1e-5)


def test_delete_term_ignores_forgotten_samples_only_when_asked():
    for stop in (True, False):
        m, model = prepared(stop_when_forgotten=stop)
        x, y = batch(8, label=3)
        y = y.clone()
        y[:4] = 0  # "forget samples" the model already gets wrong
        m.loss(context(m, model, forget=(x, y)))
        ce = F.cross_entropy(model(x), y, reduction="none")
        keep = (model(x).argmax(1) == y).float() if stop else torch.ones(8)
        assert m.last_terms["delete"] == pytest.approx(float(-(ce * keep).sum() / 8), rel=1e-5)


def test_importance_penalty_is_the_weighted_drift_from_the_original():
    m, model = prepared(importance_momentum=0.0)
    perturbed(model)
    x, y = batch(8, label=3)
    c = context(m, model, forget=(x, y))
    m.loss(c)
    reference = dict(m.reference.named_parameters())
    # with momentum 0 the importance is exactly this step's |∂L_align/∂ψ|
    penalty = sum(0.5 * (m._importance[n] * (p - reference[n]) ** 2).sum() for n, p in model.named_parameters())
    assert m.last_terms["reg"] == pytest.approx(float(penalty), rel=1e-5)
    assert m.last_terms["reg"] > 0
    assert any(v.abs().sum() > 0 for v in m._importance.values())


def test_anchor_count_must_match_the_classes():
    with pytest.raises(ValueError, match="anchors` has 3 classes but the model predicts 4"):
        prepared(anchors=ANCHORS[:3])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0}, "temperature"),
        ({"proxy_steps": -1}, "proxy_steps"),
        ({"importance_momentum": 1.0}, "importance_momentum"),
        ({"align_weight": -1}, "align_weight"),
        ({"anchors": "imagenet"}, "built-in description set"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        prepared(**kwargs)


def test_missing_layer_is_named():
    with pytest.raises(ValueError, match="`layer` should name a submodule"):
        prepared(layer="encoder")


@pytest.mark.parametrize("retain_loss", ["none", "nll"])
def test_module_forgets_and_trains_the_projector(retain_loss):
    torch.manual_seed(0)
    model = pretrained()
    m = method(retain_loss=retain_loss)
    module = UnlearningModule(model, m, optimizer=functools.partial(torch.optim.Adam, lr=1e-2))
    dm = ForgetRetainDataModule(blobs(), batch_size=16, forget_class=3, seed=0)
    make_trainer(max_epochs=4).fit(module, datamodule=dm)
    x, y = blobs().tensors
    assert accuracy(model, x[y == 3], y[y == 3]) < 0.2
    assert accuracy(model, x[y != 3], y[y != 3]) > 0.9
    assert not torch.equal(m.projector.weight, m._projector_ori.weight)  # p_ω was optimised


def test_module_resume_restores_the_projector_and_importance(tmp_path):
    def run(max_epochs: int, **fit_kwargs) -> tuple[StakeThePoints, torch.nn.Module]:
        model, m = pretrained(), method()
        module = UnlearningModule(model, m, optimizer=functools.partial(torch.optim.Adam, lr=1e-2))
        dm = ForgetRetainDataModule(blobs(), batch_size=16, forget_class=3, seed=0)
        make_trainer(max_epochs=max_epochs, enable_checkpointing=True, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)]).fit(
            module, datamodule=dm, **fit_kwargs
        )
        return m, model

    full, full_model = run(3)
    run(1)
    resumed, resumed_model = run(3, ckpt_path=tmp_path / "last.ckpt")
    for name, value in snapshot(full_model).items():
        torch.testing.assert_close(snapshot(resumed_model)[name], value, msg=name)
    torch.testing.assert_close(resumed.projector.weight, full.projector.weight)
    for name, value in full._importance.items():
        torch.testing.assert_close(resumed._importance[name], value, msg=name)
