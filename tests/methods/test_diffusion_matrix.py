"""Every diffusion method end to end: through ``UnlearningModule`` + ``Trainer`` on the tiny MiniLM-style UNet, and on
a tiny, randomly initialised ``StableDiffusionPipeline`` (CLIP text encoder, UNet, VAE latents) built from configs
(nothing downloaded), so that the same methods run unchanged on SD-1.5."""

from __future__ import annotations

import json

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import Dataset

from lightning_unlearn import ForgetRetainDataModule, UnlearningModule
from lightning_unlearn.methods import METHODS
from lightning_unlearn.tasks import DiffusionTask
from tests.methods._diffusion_toy import datamodule, task, tiny_unet

DIFFUSION_METHODS = [n for n in METHODS.names() if METHODS.get(n).supported_tasks == ("diffusion",)]
QUIET = dict(
    max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
    limit_val_batches=0, num_sanity_val_steps=0, accelerator="cpu",
)  # fmt: skip


def test_the_four_diffusion_methods_are_registered():
    assert sorted(DIFFUSION_METHODS) == ["esd", "razor_diffusion", "salun_diffusion", "spare"]


def _fit(unet, method, task_, dm) -> UnlearningModule:
    module = UnlearningModule(unet, method, task=task_, optimizer=lambda p: torch.optim.Adam(p, 1e-2), monitor=False)
    pl.Trainer(max_steps=2, **QUIET).fit(module, datamodule=dm)
    return module


@pytest.mark.parametrize("name", DIFFUSION_METHODS)
def test_method_runs_through_the_module_and_moves_only_what_it_should(name):
    pl.seed_everything(0)
    unet = tiny_unet()
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    method = METHODS.build(name)
    module = _fit(unet, method, task(), datamodule())
    after = {k.replace(".base_layer", ""): v for k, v in module.model.state_dict().items()}  # SPARE's LoRA wraps layers
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved or name == "spare"
    if name == "spare":  # the base weights stay, LoRA moved
        assert not moved
        lora = [k for k in after if "lora_B" in k]
        assert lora and any(float(after[k].abs().max()) > 0 for k in lora)
    elif method.masks is not None:  # masked entries keep their values exactly
        for k in moved:
            mask = method.masks.get(k)
            assert mask is not None, k
            assert torch.equal(after[k][mask == 0], before[k][mask == 0])


# ---------------------------------------------------------------------------------------- Stable Diffusion
def _tiny_sd(tmp_path):
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    chars = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), model_max_length=16, pad_token="!")
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=2))
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4, norm_num_groups=4, sample_size=16)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=32, attention_head_dim=4, norm_num_groups=4)
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000, clip_sample=False)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)


class _PromptedImages(Dataset):
    """RGB images in [−1, 1] with token ids of "concept <k>"-style prompts; ``targets`` serves ``forget_class``."""

    def __init__(self, tokenizer, n: int = 12) -> None:
        g = torch.Generator().manual_seed(3)
        self.targets = torch.arange(n) % 3
        self.images = torch.tanh(torch.randn(n, 3, 16, 16, generator=g) + self.targets.view(-1, 1, 1, 1) - 1.0)
        names = ["sneaker", "bag", "dress"]
        self.ids = tokenizer([f"a photo of a {names[int(t)]}" for t in self.targets], padding="max_length", max_length=16, truncation=True, return_tensors="pt").input_ids

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        return {"pixel_values": self.images[i], "input_ids": self.ids[i], "labels": self.targets[i]}


@pytest.mark.parametrize("name", DIFFUSION_METHODS)
def test_method_unlearns_a_tiny_stable_diffusion_pipeline_end_to_end(name, tmp_path):
    pipe = _tiny_sd(tmp_path)
    pl.seed_everything(0)
    dm = ForgetRetainDataModule(_PromptedImages(pipe.tokenizer), forget_class=0, batch_size=4, retain_batch_size=4, seed=0)
    sd_task = DiffusionTask.from_pipeline(pipe)
    assert sd_task.beta_schedule == "scaled_linear" and sd_task.vae is pipe.vae
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    kwargs = {"surrogate": "a photo of a bag"} if name != "esd" else {}
    module = _fit(pipe.unet, METHODS.build(name, **kwargs), sd_task, dm)
    after = module.model.state_dict()
    changed = [k for k in after if k not in before or not torch.equal(before[k], after[k])]
    assert changed
    images = pipe("a photo of a sneaker", num_inference_steps=2, height=16, width=16, output_type="pt", generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (1, 3, 16, 16) and torch.isfinite(images).all()
