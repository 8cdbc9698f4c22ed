"""Diffusion: a text-conditioned ε-prediction denoiser (a ``diffusers`` UNet), the task behind benchmark B4.

Denoising diffusion (Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020, arXiv 2006.11239)
trains ``ε_θ(x_t, t, c)`` to predict the noise ``ε`` that made ``x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε`` from a clean image
``x_0`` (or, for Stable Diffusion, its VAE latent), conditioned on a prompt embedding ``c``. Every primitive a
method needs has a meaning here:

* per-sample loss: ``‖ε_θ(x_t, t, c) − ε‖²`` averaged over pixels (the DDPM "simple" loss), at a timestep and a
  noise drawn **once per batch** from the task's seeded generator and kept on the batch (keys ``"noise"`` and
  ``"timesteps"``): the model, the frozen reference, a teacher and the same model under another prompt all see the
  same ``x_t`` and ``t`` within a step. A batch may bring its own ``"noise"`` / ``"timesteps"``;
* ``targets``: the noise ε; a method may pass another ε-target to :meth:`per_sample_loss` (ESD's guided target,
  SPARE's and SalUn's surrogate-prompt prediction);
* log-likelihood: ``−loss`` (the ELBO up to per-timestep weights and constants), so GA / GradDiff / NPO run as is;
* KL to a reference: ``‖ε_θ − ε_ref‖² / T²`` per sample — the KL between the two models' Gaussian reverse steps
  ``p(x_{t−1}|x_t)`` is this squared distance times a factor that depends only on ``t`` (DDPM eq. 8–12); so the
  ``"kl"`` retain loss is distillation onto the original model;
* ``correct``: there is no label to get right. A sample counts as "correct" when the prediction explains more than
  half the noise's energy, ``‖ε_θ − ε‖² < correct_below·‖ε‖²`` — a denoising-quality proxy used only by the
  monitor's before/after line. Whether a *concept* is still generated is measured by a judge classifier on
  generated images (:mod:`lightning_unlearn.benchmarking.b4`);
* ``relabel``: not supported (``supports_relabel = False``); a classifier-only method (random labels, SalUn for
  classifiers, SSD, …) is refused by its ``supported_tasks`` with an error naming it. The diffusion versions of
  such ideas remap a concept to another prompt instead (``salun_diffusion``).

Batches are mappings: the image (``image_key``, ``[B, C, H, W]`` in ``[−1, 1]``) and the conditioning, either
prompt embeddings (``condition_key``, ``[B, L, D]``) or token ids (``input_ids_key``) that the task encodes with
its ``text_encoder`` (Stable Diffusion's CLIP). With a ``vae`` the image is encoded to latents first
(``latent_dist.mean · scaling_factor``). :meth:`from_pipeline` builds the task of a ``StableDiffusionPipeline``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_fraction, check_int, missing_extra
from lightning_unlearn.tasks.base import Task

__all__ = ["DiffusionOutput", "DiffusionTask", "denoising_mse"]

BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2"]
_BETA_SCHEDULES = {
    "linear": "DDPM's linear betas",
    "scaled_linear": "Stable Diffusion's (linear in √β)",
    "squaredcos_cap_v2": "the cosine schedule of Nichol & Dhariwal 2021",
}


def _import_diffusers() -> Any:
    try:
        import diffusers
    except ImportError:
        raise missing_extra("diffusers", "diffusion") from None
    return diffusers


def denoising_mse(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-sample mean squared error over every non-batch dimension, shape ``[B]`` (float32)."""
    if prediction.shape != target.shape:
        raise ValueError(f"The ε-prediction {tuple(prediction.shape)} and its target {tuple(target.shape)} should have one shape.")
    return (prediction.float() - target.float()).pow(2).flatten(1).mean(1)


@dataclass
class DiffusionOutput:
    """What :meth:`DiffusionTask.forward` returns: the ε-prediction and the noise it should match (both ``[B, ...]``)."""

    prediction: Tensor
    noise: Tensor


class DiffusionTask(Task):
    """A denoiser called as ``model(x_t, t, encoder_hidden_states=c)`` (``diffusers.UNet2DConditionModel``; its
    ``.sample``, or a plain tensor, is the ε-prediction).

    Args:
        num_train_timesteps: ``T`` of the DDPM noise schedule (:class:`diffusers.DDPMScheduler`).
        beta_schedule: The schedule's betas: ``"linear"``, ``"scaled_linear"`` (Stable Diffusion) or
            ``"squaredcos_cap_v2"`` (cosine; this library's Fashion-MNIST UNet).
        beta_start, beta_end: The betas' range for the linear schedules.
        min_timestep, max_timestep: Timesteps are drawn uniformly from ``[min_timestep, max_timestep)``
            (``None``: ``num_train_timesteps``).
        image_key: Key of the images (or latents, with no ``vae``) in a batch.
        condition_key: Key of the prompt embeddings ``[B, L, D]``.
        input_ids_key: Key of token ids, encoded with ``text_encoder`` when the batch has no embeddings.
        label_key: Key of the concept labels (optional; the datamodule's class ids).
        correct_below: A sample is "correct" when ``‖ε_θ − ε‖² < correct_below·‖ε‖²`` (see the module docstring).
        seed: Seed of the generator that draws each batch's noise and timesteps.
        vae: Optional frozen ``AutoencoderKL``: images are encoded to latents (Stable Diffusion).
        text_encoder: Optional frozen text encoder (``CLIPTextModel``) for ``input_ids`` batches.
        tokenizer: Its tokenizer, for :meth:`encode_prompts` (surrogate prompts of SPARE/SalUn/RAZOR).
        prompt_encoder: A callable ``list[str] -> [N, L, D]`` for :meth:`encode_prompts` when there is no
            tokenizer (this library's MiniLM-conditioned UNet: :func:`lightning_unlearn.models.diffusion.prompt_embeddings`).
        scaling_factor: Latent scaling of the VAE (default: ``vae.config.scaling_factor``).
    """

    kind = "diffusion"
    supports_relabel = False

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_schedule: BetaSchedule = "squaredcos_cap_v2",
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        min_timestep: int = 0,
        max_timestep: int | None = None,
        image_key: str = "pixel_values",
        condition_key: str = "encoder_hidden_states",
        input_ids_key: str = "input_ids",
        label_key: str = "labels",
        correct_below: float = 0.5,
        seed: int = 0,
        vae: nn.Module | None = None,
        text_encoder: nn.Module | None = None,
        tokenizer: Any = None,
        prompt_encoder: Callable[[list[str]], Tensor] | None = None,
        scaling_factor: float | None = None,
    ) -> None:
        check_int("num_train_timesteps", num_train_timesteps, minimum=2)
        check_choice("beta_schedule", beta_schedule, _BETA_SCHEDULES)
        check_int("min_timestep", min_timestep, minimum=0)
        max_timestep = num_train_timesteps if max_timestep is None else max_timestep
        check_int("max_timestep", max_timestep, minimum=1)
        if not min_timestep < max_timestep <= num_train_timesteps:
            raise ValueError(
                f"`min_timestep` < `max_timestep` <= `num_train_timesteps` should hold, got {min_timestep!r}, "
                f"{max_timestep!r}, {num_train_timesteps!r}."
            )
        check_fraction("correct_below", correct_below)
        check_int("seed", seed, minimum=0)
        for name, value in (("image_key", image_key), ("condition_key", condition_key), ("input_ids_key", input_ids_key)):
            if not isinstance(value, str) or not value:
                raise TypeError(f"`{name}` should be a non-empty string, got {value!r}.")
        if prompt_encoder is not None and not callable(prompt_encoder):
            raise TypeError(f"`prompt_encoder` should be a callable list[str] -> Tensor or None, got {prompt_encoder!r}.")
        self.num_train_timesteps = num_train_timesteps
        self.beta_schedule = beta_schedule
        self.beta_start, self.beta_end = float(beta_start), float(beta_end)
        self.min_timestep, self.max_timestep = min_timestep, max_timestep
        self.image_key, self.condition_key, self.input_ids_key, self.label_key = image_key, condition_key, input_ids_key, label_key
        self.correct_below = float(correct_below)
        self.seed = seed
        self.vae = vae.eval().requires_grad_(False) if vae is not None else None
        self.text_encoder = text_encoder.eval().requires_grad_(False) if text_encoder is not None else None
        self.tokenizer = tokenizer
        self.prompt_encoder = prompt_encoder
        if scaling_factor is None and vae is not None:
            scaling_factor = float(getattr(getattr(vae, "config", None), "scaling_factor", 1.0))
        self.scaling_factor = 1.0 if scaling_factor is None else float(scaling_factor)
        self._generator = torch.Generator().manual_seed(seed)
        self._scheduler: Any = None

    @classmethod
    def from_pipeline(cls, pipeline: Any, **kwargs: Any) -> DiffusionTask:
        """The task of a ``diffusers.StableDiffusionPipeline`` (its scheduler's betas, VAE, CLIP text encoder and
        tokenizer); unlearn ``pipeline.unet`` with it. ``kwargs`` override the other arguments."""
        for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
            if getattr(pipeline, part, None) is None:
                raise TypeError(f"`pipeline` should be a StableDiffusionPipeline with a {part!r}; {type(pipeline).__name__} has none.")
        config = pipeline.scheduler.config
        schedule = config.get("beta_schedule", "scaled_linear")
        kwargs.setdefault("beta_schedule", schedule if schedule in _BETA_SCHEDULES else "scaled_linear")
        kwargs.setdefault("num_train_timesteps", int(config.get("num_train_timesteps", 1000)))
        kwargs.setdefault("beta_start", float(config.get("beta_start", 0.00085)))
        kwargs.setdefault("beta_end", float(config.get("beta_end", 0.012)))
        return cls(vae=pipeline.vae, text_encoder=pipeline.text_encoder, tokenizer=pipeline.tokenizer, **kwargs)

    # ------------------------------------------------------------------ the noise schedule
    @property
    def scheduler(self) -> Any:
        """The ``diffusers.DDPMScheduler`` that noises the images (built on first use)."""
        if self._scheduler is None:
            diffusers = _import_diffusers()
            self._scheduler = diffusers.DDPMScheduler(
                num_train_timesteps=self.num_train_timesteps,
                beta_schedule=self.beta_schedule,
                beta_start=self.beta_start,
                beta_end=self.beta_end,
                prediction_type="epsilon",
            )
        return self._scheduler

    def reseed(self, seed: int | None = None) -> None:
        """Restart the noise/timestep generator (from ``seed``, default the task's own)."""
        self._generator.manual_seed(self.seed if seed is None else seed)

    def draw(self, batch: Any) -> tuple[Tensor, Tensor]:
        """The batch's noise and timesteps: the ones it carries, else drawn now and stored on it (so every later
        forward on this batch uses the same ``x_t`` and ``t``)."""
        batch = self._check_batch(batch)
        x0 = self.clean(batch)
        noise, timesteps = batch.get("noise"), batch.get("timesteps")
        if noise is None:
            noise = torch.randn(x0.shape, generator=self._generator).to(device=x0.device, dtype=x0.dtype)
            batch["noise"] = noise
        if timesteps is None:
            timesteps = torch.randint(self.min_timestep, self.max_timestep, (x0.shape[0],), generator=self._generator)
            batch["timesteps"] = timesteps = timesteps.to(x0.device)
        if noise.shape != x0.shape:
            raise ValueError(f"`batch['noise']` should be shaped like the (latent) images {tuple(x0.shape)}, got {tuple(noise.shape)}.")
        return noise, timesteps.long()

    # ------------------------------------------------------------------ batch access
    def _check_batch(self, batch: Any) -> Any:
        if not isinstance(batch, Mapping):
            raise TypeError(
                f"A diffusion batch should be a mapping with {self.image_key!r} and {self.condition_key!r} (or "
                f"{self.input_ids_key!r}), e.g. from FashionMNISTConceptDataModule; got {type(batch).__name__}."
            )
        if self.image_key not in batch:
            raise KeyError(f"A diffusion batch should have the key {self.image_key!r}; it has {sorted(batch)}.")
        return batch

    def clean(self, batch: Any) -> Tensor:
        """``x_0``: the batch's images, or their VAE latents (cached on the batch under ``"latents"``)."""
        batch = self._check_batch(batch)
        if self.vae is None:
            return batch[self.image_key]
        if "latents" not in batch:
            self.vae.to(batch[self.image_key].device)
            with torch.no_grad():
                batch["latents"] = self.vae.encode(batch[self.image_key]).latent_dist.mean * self.scaling_factor
        return batch["latents"]

    def condition(self, batch: Any) -> Tensor:
        """The batch's prompt embeddings ``[B, L, D]`` (encoded from its token ids with the text encoder if needed)."""
        batch = self._check_batch(batch)
        if self.condition_key in batch:
            return batch[self.condition_key]
        if self.input_ids_key in batch and self.text_encoder is not None:
            ids = batch[self.input_ids_key]
            self.text_encoder.to(ids.device)
            with torch.no_grad():
                batch[self.condition_key] = self.text_encoder(ids)[0]
            return batch[self.condition_key]
        raise KeyError(
            f"A diffusion batch should have prompt embeddings {self.condition_key!r}, or token ids "
            f"{self.input_ids_key!r} with a `text_encoder` on the task; it has {sorted(batch)}."
        )

    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        """Embeddings ``[N, L, D]`` of ``prompts`` with the task's ``prompt_encoder`` or tokenizer + text encoder."""
        if isinstance(prompts, str) or not prompts:
            raise ValueError(f"`prompts` should be a non-empty list of strings, got {prompts!r}.")
        if self.prompt_encoder is not None:
            return self.prompt_encoder(list(prompts))
        if self.tokenizer is None or self.text_encoder is None:
            raise ValueError(
                "This DiffusionTask cannot encode prompts: give it `prompt_encoder=` (e.g. "
                "lightning_unlearn.models.diffusion.prompt_embeddings) or a `tokenizer` and `text_encoder` "
                "(DiffusionTask.from_pipeline)."
            )
        ids = self.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=self.tokenizer.model_max_length, return_tensors="pt").input_ids
        device = next(self.text_encoder.parameters()).device
        with torch.no_grad():
            return self.text_encoder(ids.to(device))[0]

    def with_condition(self, batch: Any, condition: Tensor) -> dict[str, Any]:
        """A shallow copy of ``batch`` with other prompt embeddings (``[B, L, D]``, or ``[1, L, D]`` / ``[L, D]``
        broadcast to the batch), keeping its noise and timesteps: ``ε(x_t, t, c')`` on the same ``x_t``."""
        self.draw(batch)
        self.clean(batch)
        size = self.batch_size(batch)
        condition = condition.to(self.clean(batch).device)
        if condition.dim() == 2:
            condition = condition.unsqueeze(0)
        if condition.dim() != 3 or condition.shape[0] not in (1, size):
            raise ValueError(f"`condition` should be [B={size}, L, D], [1, L, D] or [L, D], got {tuple(condition.shape)}.")
        copy = dict(batch)
        copy[self.condition_key] = condition.expand(size, -1, -1)
        return copy

    def targets(self, batch: Any) -> Tensor:
        """The supervision target of ε-prediction: the batch's noise."""
        return self.draw(batch)[0]

    def labels(self, batch: Any) -> Tensor | None:
        """The batch's concept labels (``label_key``), or ``None``."""
        return self._check_batch(batch).get(self.label_key)

    def batch_size(self, batch: Any) -> int:
        return int(self._check_batch(batch)[self.image_key].shape[0])

    # ------------------------------------------------------------------ primitives
    def predict(self, model: nn.Module, batch: Any) -> Tensor:
        """``ε_model(x_t, t, c)`` on the batch's (stored) noise and timesteps."""
        noise, timesteps = self.draw(batch)
        x0 = self.clean(batch)
        noisy = self.scheduler.add_noise(x0, noise, timesteps)
        out = model(noisy, timesteps, encoder_hidden_states=self.condition(batch))
        out = getattr(out, "sample", out)
        if isinstance(out, tuple):
            out = out[0]
        if not isinstance(out, Tensor) or out.shape != noise.shape:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"The denoiser should return an ε-prediction shaped like its input {tuple(noise.shape)}, got {shape}.")
        return out

    def forward(self, model: nn.Module, batch: Any) -> DiffusionOutput:
        return DiffusionOutput(self.predict(model, batch), self.draw(batch)[0])

    def per_sample_loss(self, outputs: DiffusionOutput, batch: Any, targets: Tensor | None = None) -> Tensor:
        """``mean‖ε_θ(x_t, t, c) − target‖²`` per sample, ``[B]``; the target is the noise unless ``targets`` (an
        ε-target shaped like the prediction) is given."""
        outputs = _check_outputs(outputs)
        return denoising_mse(outputs.prediction, outputs.noise if targets is None else targets)

    def kl_divergence(self, outputs: DiffusionOutput, reference_outputs: DiffusionOutput, batch: Any, temperature: float = 1.0) -> Tensor:
        """``‖ε_θ − ε_ref‖² / T²`` per sample (the Gaussian reverse steps' KL up to a per-timestep factor)."""
        if not temperature > 0:
            raise ValueError(f"`temperature` should be > 0, got {temperature!r}.")
        return denoising_mse(_check_outputs(outputs).prediction, _check_outputs(reference_outputs).prediction.detach()) / temperature**2

    def correct(self, outputs: DiffusionOutput, batch: Any) -> Tensor:
        """``‖ε_θ − ε‖² < correct_below · ‖ε‖²`` per sample (a denoising-quality proxy; no labels are involved)."""
        outputs = _check_outputs(outputs)
        return denoising_mse(outputs.prediction, outputs.noise) < self.correct_below * outputs.noise.float().pow(2).flatten(1).mean(1)

    def relabel(self, outputs: Any, batch: Any, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError(
            "DiffusionTask has no class labels to relabel: the target of a denoiser is the noise. Methods that relabel "
            "(RandomLabel, SalUn for classifiers) do not apply; use salun_diffusion, which remaps the concept's "
            "prompt to another concept."
        )

    def __repr__(self) -> str:
        extra = ", Stable Diffusion (VAE + text encoder)" if self.vae is not None else ""
        return f"DiffusionTask(T={self.num_train_timesteps}, beta_schedule={self.beta_schedule!r}, seed={self.seed}{extra})"


def _check_outputs(outputs: Any) -> DiffusionOutput:
    if not isinstance(outputs, DiffusionOutput):
        raise TypeError(f"Diffusion outputs should be a DiffusionOutput (from DiffusionTask.forward), got {type(outputs).__name__}.")
    return outputs

