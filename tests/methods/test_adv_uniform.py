"""ADV-UNIFORM: L_f = ½[KL(u ‖ p_θ(x_f)) + KL(u ‖ p_θ(x'_f))], x' = x − ε·sign(∇_x KL(u ‖ p_θ(x)))."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.methods import METHODS, AdvUniform, uniform_kl

from ._toy import batch, context, perturbed, pretrained


def test_registered():
    assert METHODS.get("adv_uniform") is AdvUniform
    assert AdvUniform.uses_forget and not AdvUniform.needs_reference


def test_uniform_kl_closed_form():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    p = torch.softmax(logits, -1)
    want = (1 / 3 * (torch.log(torch.tensor(1 / 3)) - torch.log(p))).sum(-1)
    torch.testing.assert_close(uniform_kl(logits), want)
    assert float(uniform_kl(logits)[1]) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5])
def test_loss_against_a_hand_made_fgsm_step(epsilon):
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    perturbed(model, 0.3)
    method = AdvUniform(epsilon=epsilon, forget_weight=2.0)
    out = method.loss(context(method, model, forget, retain))
    x = forget[0].clone().requires_grad_(True)
    log_p = torch.log_softmax(model(x), -1)
    kl = (-math.log(4) - log_p.mean(-1)).sum()
    (grad,) = torch.autograd.grad(kl, x)
    x_adv = forget[0] - epsilon * grad.sign()
    want_f = 0.5 * (uniform_kl(model(forget[0])).mean() + uniform_kl(model(x_adv)).mean())
    ce_r = F.cross_entropy(model(retain[0]), retain[1])
    torch.testing.assert_close(out.loss, 2.0 * want_f + ce_r)
    # the FGSM step moves toward uniform: the perturbed term is not larger than the clean one (a small step)
    if epsilon == 0.1:
        with torch.no_grad():
            assert float(uniform_kl(model(x_adv)).mean()) < float(uniform_kl(model(forget[0])).mean())


def test_mapping_batches_keep_their_other_entries():
    model, forget = pretrained(), batch(seed=1, label=3)
    method = AdvUniform()
    from lightning_unlearn.tasks import ClassificationTask

    task = ClassificationTask()
    mapped = {"inputs": forget[0], "targets": forget[1], "ids": torch.arange(len(forget[1]))}
    replaced = task.with_inputs(mapped, forget[0] + 1)
    assert set(replaced) == {"inputs", "targets", "ids"} and torch.equal(replaced["inputs"], forget[0] + 1)
    out = method.loss(context(method, model, mapped, None))
    assert torch.isfinite(out.loss)


def test_integer_inputs_are_refused():
    model = pretrained()
    method = AdvUniform()
    forget = (torch.zeros(2, 8, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match="floating-point tensor"):
        method.loss(context(method, model, forget, None))


def test_epsilon_error():
    with pytest.raises(ValueError, match="`epsilon` should be >= 0, got -0.1"):
        AdvUniform(epsilon=-0.1)
