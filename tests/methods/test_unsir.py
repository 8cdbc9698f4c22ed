"""UNSIR: the error-maximising noise, the impair term and the repair phase against their closed forms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.methods import METHODS, UNSIR, learn_error_maximizing_noise
from lightning_unlearn.tasks import ClassificationTask

from ._toy import batch, blobs, context, pretrained


def test_registered():
    assert METHODS.get("unsir") is UNSIR
    assert not UNSIR.needs_reference and UNSIR().retain_loss_kind == "nll"


def _objective(model, noise, label, l2):
    flat = noise.flatten(0, 1)
    labels = torch.full((len(flat),), label)
    return -F.cross_entropy(model(flat), labels) + l2 * flat.pow(2).sum(1).mean()


def test_the_noise_maximises_the_forget_class_loss():
    model = pretrained()
    classes, shape = torch.tensor([3]), (16, 8)
    kwargs = {"lr": 0.1, "l2_weight": 0.1, "device": torch.device("cpu")}
    start = learn_error_maximizing_noise(model, ClassificationTask(), classes, shape, steps=0, generator=torch.Generator().manual_seed(0), **kwargs)
    noise = learn_error_maximizing_noise(model, ClassificationTask(), classes, shape, steps=30, generator=torch.Generator().manual_seed(0), **kwargs)
    assert start.shape == noise.shape == (1, 16, 8)
    with torch.no_grad():
        assert _objective(model, noise, 3, 0.1) < _objective(model, start, 3, 0.1)  # the objective it minimises fell
        assert F.cross_entropy(model(noise[0]), torch.full((16,), 3)) > F.cross_entropy(model(start[0]), torch.full((16,), 3))
    assert all(p.grad is None for p in model.parameters())  # the model is only read


def test_impair_then_repair():
    model, forget, retain = pretrained(), batch(n=8, seed=1, label=3), batch(n=16, seed=2)
    method = UNSIR(noise_batch_size=4, noise_steps=5, impair_epochs=1, forget_weight=0.5, retain_weight=2.0)
    method.setup(model, ClassificationTask(), [forget], [retain])
    assert method.forget_classes.tolist() == [3] and method.noise is None
    out = method.loss(context(method, model, forget, retain, epoch=0))
    assert method.noise.shape == (1, 4, 8)  # learnt at the first step
    labels = torch.full((4,), 3)
    impair = F.cross_entropy(model(method.noise[0]), labels)
    retain_ce = F.cross_entropy(model(retain[0]), retain[1])
    torch.testing.assert_close(out.parts["forget_loss"], impair.detach())
    torch.testing.assert_close(out.loss, 0.5 * impair + 2.0 * retain_ce)
    noise = method.noise.clone()
    repair = method.loss(context(method, model, forget, retain, epoch=1))  # after the impair epochs: retain only
    assert "forget_loss" not in repair.parts
    torch.testing.assert_close(repair.loss, 2.0 * retain_ce)
    method.loss(context(method, model, forget, retain, epoch=0, global_step=3))
    assert torch.equal(method.noise, noise)  # learnt once, kept in the method's state
    fresh = UNSIR()
    fresh.load_state_dict(method.state_dict())
    assert torch.equal(fresh.noise, noise) and fresh.forget_classes.tolist() == [3]


def test_random_sample_forgetting_impairs_every_class_in_the_forget_set():
    x, y = blobs().tensors
    method = UNSIR()
    with pytest.warns(UserWarning, match="UNSIR unlearns classes: the forget set holds 4 classes"):
        method.setup(pretrained(), ClassificationTask(), [(x[::10], y[::10])], [(x[1::10], y[1::10])])
    assert method.forget_classes.tolist() == [0, 1, 2, 3]


def test_errors():
    with pytest.raises(ValueError, match=r"`retain_loss` should be one of \['kl', 'nll'\], got 'none'"):
        UNSIR(retain_loss="none")
    with pytest.raises(ValueError, match=r"`noise_batch_size` should be an int >= 1, got 0"):
        UNSIR(noise_batch_size=0)
    with pytest.raises(ValueError, match=r"`noise_lr` should be > 0, got 0"):
        UNSIR(noise_lr=0)
    with pytest.raises(ValueError, match="pass the forget loader to `setup`"):
        UNSIR().setup(pretrained(), ClassificationTask(), None, None)
