"""JiT: the local Lipschitz loss around forget samples against its closed form."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.methods import METHODS, JiT, lipschitz_loss

from ._toy import batch, context, pretrained, unlearn_class


def test_registered():
    assert METHODS.get("jit") is JiT
    assert not JiT.needs_reference and JiT().retain_loss_kind == "none"  # zero-shot: no retain data


def test_lipschitz_loss_closed_form():
    inputs = torch.zeros(1, 2)
    outputs = torch.ones(1, 2)
    # two perturbations: ‖Δx‖ = 5 and 10, ‖Δf‖ = 1 and 6: mean of 1/5 and 6/10
    perturbed_inputs = torch.tensor([[[3.0, 4.0]], [[6.0, 8.0]]])
    perturbed_outputs = torch.tensor([[[1.0, 2.0]], [[1.0, 7.0]]])
    assert lipschitz_loss(outputs, perturbed_outputs, inputs, perturbed_inputs).item() == pytest.approx((0.2 + 0.6) / 2)


def test_perturbations_are_seeded_clipped_and_shaped():
    method = JiT(sigma=0.5, num_perturbations=4, seed=3)
    x = batch(n=5)[0]
    a, b, c = method.perturb(x, 0), method.perturb(x, 0), method.perturb(x, 1)
    assert a.shape == (4, *x.shape) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= x.min() and a.max() <= x.max()


def test_loss_against_the_closed_form():
    model, forget = pretrained(), batch(n=6, seed=1, label=3)
    method = JiT(sigma=0.3, num_perturbations=3, forget_weight=2.0)
    out = method.loss(context(method, model, forget, None, global_step=5))
    x = forget[0]
    xs = method.perturb(x, 5)
    with torch.no_grad():
        fx, fxs = model(x), torch.stack([model(xi) for xi in xs])
    expected = torch.stack(
        [((fx - fxs[n]).norm(dim=-1) / (x - xs[n]).norm(dim=-1)) for n in range(3)]
    ).mean()
    torch.testing.assert_close(out.parts["forget_loss"], expected)
    torch.testing.assert_close(out.loss, 2.0 * out.parts["forget_loss"])
    assert "retain_loss" not in out.parts
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_forgets_a_blob_class():
    forget_acc, retain_acc = unlearn_class(JiT(), steps=20)
    assert forget_acc <= 0.2 and retain_acc >= 0.9


def test_errors():
    with pytest.raises(ValueError, match=r"`sigma` should be > 0, got -1"):
        JiT(sigma=-1)
    with pytest.raises(ValueError, match=r"`num_perturbations` should be an int >= 1, got 0"):
        JiT(num_perturbations=0)
    method = JiT()
    with pytest.raises(TypeError, match="needs a floating-point input tensor, got Tensor"):
        method.loss(context(method, pretrained(), (torch.zeros(2, 8, dtype=torch.long), torch.zeros(2, dtype=torch.long)), None))
