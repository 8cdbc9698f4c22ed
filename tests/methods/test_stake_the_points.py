"""Stake the Points: proxies, calibration, each loss term against its closed form, both entry points, resume."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from toys import make_trainer

from lightning_unlearn import ForgetRetainDataModule, UnlearningModule
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


def _independent_structure_terms(m: StakeThePoints, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """L_ret and L_align recomputed from the paper's formulas with plain torch (proxies are deterministic PGD)."""
    task = ClassificationTask()
    x_adv, y_adv = m.proxies(task, x, y)
    crossed = y_adv != y
    with capture_features(model, "body") as store:
        model(x_adv[crossed])
    v_unl = store["out"]
    with torch.no_grad(), capture_features(m.reference, "body") as ref_store:
        m.reference(x_adv[crossed])
    a = m._anchors
    s_unl = F.normalize(m.projector(v_unl), dim=-1) @ a.T
    s_ori = F.normalize(m._projector_ori(ref_store["out"]), dim=-1) @ a.T
    return {
        "proxy": F.cross_entropy(s_unl / m.temperature, y_adv[crossed]),
        "align": -(s_ori * s_unl).sum(1).div(s_ori.norm(dim=1) * s_unl.norm(dim=1)).mean(),
    }


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
    independent = _independent_structure_terms(m, model, x, y)
    assert t["proxy"] == pytest.approx(float(independent["proxy"]), rel=1e-5)
    assert t["proxy"] > 0
    assert float(out.loss) == pytest.approx(t["delete"] + t["proxy"] + t["align"] + t["reg"], rel=1e-5)


def test_structure_terms_after_drift_match_their_closed_forms():
    m, model = prepared()
    perturbed(model)
    with torch.no_grad():
        m.projector.weight.add_(0.1)
    x, y = batch(8, label=3)
    m.loss(context(m, model, forget=(x, y)))
    independent = _independent_structure_terms(m, model, x, y)
    assert m.last_terms["align"] == pytest.approx(float(independent["align"]), rel=1e-5)
    assert m.last_terms["align"] > -0.999  # the structures no longer coincide
    assert m.last_terms["proxy"] == pytest.approx(float(independent["proxy"]), rel=1e-5)


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
    m.loss(context(m, model, forget=(x, y)))
    # with momentum 0 the importance is exactly |∂L_align/∂ψ| at this step, computed here independently
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(_independent_structure_terms(m, model, x, y)["align"], list(params.values()), allow_unused=True)
    reference = dict(m.reference.named_parameters())
    penalty = 0.0
    for (name, p), g in zip(params.items(), grads):
        g = torch.zeros_like(p) if g is None else g  # the head does not reach the features
        torch.testing.assert_close(m.importance[name], g.abs(), rtol=1e-4, atol=1e-7, msg=name)
        penalty += float(0.5 * (g.abs() * (p - reference[name]) ** 2).sum())
    assert m.last_terms["reg"] == pytest.approx(penalty, rel=1e-4)
    assert m.last_terms["reg"] > 0


def test_importance_is_a_running_average():
    m, model = prepared(importance_momentum=0.5)
    perturbed(model)
    x, y = batch(8, label=3)
    m.loss(context(m, model, forget=(x, y)))
    first = {k: v.clone() for k, v in m.importance.items()}
    m.loss(context(m, model, forget=(x, y)))  # same batch and weights: the same gradient again
    for name, value in first.items():
        # I₁ = 0.5·0 + 0.5·g, I₂ = 0.5·I₁ + 0.5·g = 1.5·I₁
        torch.testing.assert_close(m.importance[name], 1.5 * value, rtol=1e-5, atol=1e-8, msg=name)


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
    def run(max_epochs: int, folder, **fit_kwargs) -> tuple[StakeThePoints, torch.nn.Module]:
        model, m = pretrained(), method()
        module = UnlearningModule(model, m, optimizer=functools.partial(torch.optim.Adam, lr=1e-2))
        dm = ForgetRetainDataModule(blobs(), batch_size=16, forget_class=3, seed=0)
        checkpoint = ModelCheckpoint(dirpath=folder, save_last=True)
        make_trainer(max_epochs=max_epochs, enable_checkpointing=True, callbacks=[checkpoint]).fit(module, datamodule=dm, **fit_kwargs)
        return m, model

    full, full_model = run(3, tmp_path / "full")
    first, _ = run(1, tmp_path / "first")
    assert not torch.equal(first.projector.weight, full.projector.weight)  # one epoch is not three
    resumed, resumed_model = run(3, tmp_path / "resumed", ckpt_path=tmp_path / "first" / "last.ckpt")
    for name, value in snapshot(full_model).items():
        torch.testing.assert_close(snapshot(resumed_model)[name], value, msg=name)
    torch.testing.assert_close(resumed.projector.weight, full.projector.weight)
    for name, value in full.importance.items():
        torch.testing.assert_close(resumed.importance[name], value, msg=name)


def test_test_from_a_checkpoint_without_the_methods_setup(tmp_path):
    """`trainer.test(ckpt_path=...)` never sets the method up; the projector's weights in the file are skipped."""
    model, m = pretrained(), method()
    module = UnlearningModule(model, m, optimizer=functools.partial(torch.optim.Adam, lr=1e-2))
    dm = ForgetRetainDataModule(blobs(), blobs(10, seed=3), batch_size=16, forget_class=3, seed=0)
    make_trainer(max_epochs=1, enable_checkpointing=True, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)]).fit(module, datamodule=dm)
    assert any(k.startswith("method_modules.projector") for k in torch.load(tmp_path / "last.ckpt", weights_only=True)["state_dict"])
    fresh = UnlearningModule(pretrained(), method())
    trainer = make_trainer()
    trainer.test(fresh, datamodule=dm, ckpt_path=tmp_path / "last.ckpt")
    for name, value in snapshot(model).items():
        torch.testing.assert_close(snapshot(fresh.model)[name], value, msg=name)
    assert "test/UA" in trainer.callback_metrics
