"""SalUn: random labeling that updates only the top `threshold` fraction of salient weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.methods import METHODS, RandomLabel, SaliencyMask, SalUn

from ._toy import batch, blobs, context, pretrained, setup


def _forget():
    x, y = blobs().tensors
    return x[y == 3], y[y == 3]


def test_registered():
    assert METHODS.get("salun") is SalUn
    assert SalUn.uses_forget and not SalUn.needs_reference


def test_mask_is_a_global_saliency_mask():
    method = SalUn(threshold=0.3)
    assert isinstance(method.mask, SaliencyMask) and method.mask.threshold == 0.3 and method.mask.scope == "global"
    model, forget = pretrained(), _forget()
    setup(method, model, forget)
    # the gradient of the summed forget loss at the original weights, by hand
    F.cross_entropy(model(forget[0]), forget[1], reduction="sum").backward()
    grads = {n: p.grad.abs().flatten() for n, p in model.named_parameters()}
    model.zero_grad()
    kept = torch.cat([grads[n][method.masks[n].flatten() == 1] for n in grads])
    dropped = torch.cat([grads[n][method.masks[n].flatten() == 0] for n in grads])
    total = sum(g.numel() for g in grads.values())
    assert len(kept) == round(0.3 * total)
    assert float(kept.min()) >= float(dropped.max())


def test_layer_scope():
    method = SalUn(threshold=0.5, scope="layer")
    setup(method, pretrained(), _forget())
    for name, mask in method.masks.items():
        assert int(mask.sum()) == max(1, round(0.5 * mask.numel())), name


def test_forget_loss_is_random_labeling():
    model, forget, retain = pretrained(), batch(n=16, seed=1, label=3), batch(seed=2)
    salun, rl = SalUn(seed=3, retain_weight=0.7), RandomLabel(seed=3, retain_weight=0.7)
    a = salun.loss(context(salun, model, forget, retain, global_step=5))
    b = rl.loss(context(rl, model, forget, retain, global_step=5))
    torch.testing.assert_close(a.loss, b.loss)
    assert set(a.parts) == {"forget_loss", "retain_loss", "loss"}


def test_masked_gradients():
    model, forget = pretrained(), _forget()
    method = SalUn(threshold=0.5)
    setup(method, model, forget)
    method.loss(context(method, model, batch(label=3), batch(seed=2))).loss.backward()
    method.apply_mask(model)
    for name, p in model.named_parameters():
        assert bool((p.grad[method.masks[name] == 0] == 0).all())
    assert any(bool((p.grad != 0).any()) for p in model.parameters())


def test_hparams():
    hp = SalUn(threshold=0.2, scope="layer").hparams()
    assert hp["method"] == "salun" and hp["threshold"] == 0.2 and hp["scope"] == "layer"
    assert hp["mask"] == "SaliencyMask(threshold=0.2, scope='layer', max_batches=None)"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"threshold": 0.0}, ValueError, r"`threshold` should lie in \(0, 1\], got 0.0"),
        ({"threshold": 1.2}, ValueError, r"`threshold` should lie in \(0, 1\], got 1.2"),
        ({"threshold": None}, TypeError, "`threshold` should be a number, got NoneType None"),
        ({"scope": "model"}, ValueError, r"`scope` should be one of \['global', 'layer'\], got 'model'"),
        ({"retain_weight": -1}, ValueError, "`retain_weight` should be >= 0, got -1"),
        ({"retain_loss": "KL"}, ValueError, r"`retain_loss` should be one of \['kl', 'nll', 'none'\], got 'KL'"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        SalUn(**kwargs)
