"""DiffusionTask: the ε-loss against its closed form, shared noise between model and reference, refusals."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.methods import SalUn, UnlearningMethod
from lightning_unlearn.tasks import DiffusionOutput, DiffusionTask
from tests.methods._diffusion_toy import images, task, tiny_unet


def _batch(n: int = 4) -> dict:
    data = images()
    return torch.utils.data.default_collate([data[i] for i in range(n)])


def test_per_sample_loss_is_the_ddpm_simple_loss_in_closed_form():
    t, model, batch = task(), tiny_unet(), _batch()
    out = t.forward(model, batch)
    noise, steps = batch["noise"], batch["timesteps"]
    abar = t.scheduler.alphas_cumprod[steps].view(-1, 1, 1, 1)
    x_t = abar.sqrt() * batch["pixel_values"] + (1 - abar).sqrt() * noise
    with torch.no_grad():
        expected_pred = model(x_t, steps, encoder_hidden_states=batch["encoder_hidden_states"]).sample
    torch.testing.assert_close(out.prediction.detach(), expected_pred, atol=1e-5, rtol=1e-5)
    expected = ((expected_pred - noise) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(t.per_sample_loss(out, batch).detach(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(t.log_likelihood(out, batch).detach(), -expected, atol=1e-5, rtol=1e-5)
    # another ε-target replaces the noise
    target = torch.zeros_like(noise)
    torch.testing.assert_close(t.per_sample_loss(out, batch, target).detach(), (expected_pred**2).mean(dim=(1, 2, 3)), atol=1e-5, rtol=1e-5)


def test_model_and_reference_see_the_same_noise_and_timesteps():
    t, batch = task(), _batch()
    model, copy = tiny_unet(), tiny_unet()
    a, b = t.forward(model, batch), t.forward(copy, batch)
    torch.testing.assert_close(a.prediction, b.prediction)
    assert torch.equal(a.noise, b.noise)
    assert float(t.kl_divergence(a, b, batch).detach().abs().max()) == 0.0
    # another prompt on the same x_t: the noise and timesteps are kept
    other = t.with_condition(batch, torch.zeros(1, 4, 16))
    assert other["noise"] is batch["noise"] and other["timesteps"] is batch["timesteps"]
    assert not torch.allclose(t.predict(model, other), a.prediction)
    # the seeded generator: a fresh task with the same seed draws the same noise for a fresh batch
    assert torch.equal(task().targets(_batch()), task().targets(_batch()))
    assert not torch.equal(task(seed=1).targets(_batch()), task().targets(_batch()))


def test_kl_is_the_squared_distance_over_temperature_and_correct_is_the_energy_proxy():
    t, batch = task(), _batch()
    noise = torch.ones(2, 1, 2, 2)
    a = DiffusionOutput(torch.zeros(2, 1, 2, 2), noise)
    b = DiffusionOutput(torch.full((2, 1, 2, 2), 2.0), noise)
    torch.testing.assert_close(t.kl_divergence(a, b, batch), torch.tensor([4.0, 4.0]))
    torch.testing.assert_close(t.kl_divergence(a, b, batch, temperature=2.0), torch.tensor([1.0, 1.0]))
    # MSE to ε = 1 (no explained energy) is not correct; a prediction within 0.5 of the energy is
    assert t.correct(a, batch).tolist() == [False, False]
    assert t.correct(DiffusionOutput(noise * 0.9, noise), batch).tolist() == [True, True]


def test_refusals_name_what_is_wrong():
    t = task()
    with pytest.raises(NotImplementedError, match="no class labels to relabel"):
        t.relabel(None, _batch())
    with pytest.raises(TypeError, match="should be a mapping"):
        t.batch_size((torch.zeros(1), torch.zeros(1)))
    with pytest.raises(KeyError, match="'pixel_values'"):
        t.draw({"x": torch.zeros(1)})
    with pytest.raises(KeyError, match="prompt embeddings"):
        t.condition({"pixel_values": torch.zeros(1, 1, 8, 8)})
    with pytest.raises(ValueError, match="`beta_schedule` should be one of"):
        DiffusionTask(beta_schedule="cosine")
    with pytest.raises(ValueError, match="`min_timestep` < `max_timestep`"):
        DiffusionTask(min_timestep=10, max_timestep=5)
    with pytest.raises(ValueError, match="cannot encode prompts"):
        DiffusionTask().encode_prompts(["a"])
    with pytest.raises(TypeError, match="DiffusionOutput"):
        t.per_sample_loss(torch.zeros(2), _batch())
    # a classifier-only method is refused by name
    method: UnlearningMethod = SalUn()
    with pytest.raises(TypeError, match="SalUn unlearns classifiers: it needs task=ClassificationTask"):
        method.setup(tiny_unet(), t)
