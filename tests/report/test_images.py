"""The report's image view for a text-to-image diffusion model: PNG grids of the erased and kept prompts'
generations before (original), after (unlearned) and for the oracle, in report.json and report.html."""

from __future__ import annotations

import base64
import io
import json
from functools import partial

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from toys import make_trainer

from lightning_unlearn import UnlearningModule, UnlearningReport
from lightning_unlearn.methods import ESD
from lightning_unlearn.report import render_html, validate_report
from lightning_unlearn.report.images import image_grid, png_data_uri
from tests.methods._diffusion_toy import datamodule, task, tiny_unet

pytest.importorskip("diffusers")
PROMPTS = {"erased": ["concept 0"], "kept": ["concept 1", "concept 2"]}


def _png(uri: str):
    from PIL import Image

    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_the_report_shows_each_prompt_groups_generations_before_and_after(tmp_path):
    torch.save(tiny_unet().state_dict(), tmp_path / "original.pt")
    torch.save(tiny_unet(seed=1).state_dict(), tmp_path / "oracle.pt")
    module = UnlearningModule(
        tiny_unet(), ESD(parameters="xattn"), task=task(), original=str(tmp_path / "original.pt"), oracle=str(tmp_path / "oracle.pt"),
        optimizer=partial(torch.optim.Adam, lr=5e-2), monitor=False,
    )  # fmt: skip
    report = UnlearningReport(dirpath=tmp_path / "report", image_prompts=PROMPTS, images_per_prompt=3, image_steps=2, structure_layer=None)
    pl.seed_everything(0)
    make_trainer(max_steps=4, callbacks=[report]).fit(module, datamodule=datamodule())
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    validate_report(written)
    view = written["images"]
    assert {k: view[k] for k in ("per_prompt", "steps", "seed")} == {"per_prompt": 3, "steps": 2, "seed": 0}
    assert list(view["groups"]) == ["erased", "kept"] and view["groups"]["kept"]["prompts"] == PROMPTS["kept"]
    grids = view["groups"]["erased"]["grids"]
    assert list(grids) == ["original", "unlearned", "oracle"]
    # 8×8 generations enlarged 8× (to 64 px): one row per prompt, one column per generation
    assert _png(grids["original"]).size == (3 * 64, 64) and _png(view["groups"]["kept"]["grids"]["unlearned"]).size == (3 * 64, 2 * 64)
    # the same noise for every model: the original's grid is the original weights' generations, the unlearned one moved
    original = tiny_unet()
    expected = png_data_uri(image_grid(original, task(), PROMPTS["erased"], 3, 2, 3.0, 0))
    assert grids["original"] == expected and grids["unlearned"] != grids["original"]
    html = render_html(written)
    assert '<section id="images">' in html and grids["unlearned"] in html and "concept 2" in html
    assert "images" not in validate_report({k: v for k, v in written.items() if k != "images"})


def test_the_image_view_needs_a_pixel_space_diffusion_task_and_prompt_lists():
    from lightning_unlearn.tasks import ClassificationTask

    report = UnlearningReport(image_prompts=PROMPTS)
    with pytest.raises(MisconfigurationException, match="needs a DiffusionTask, got ClassificationTask"):
        report._check_image_task(ClassificationTask())
    with pytest.raises(MisconfigurationException, match="has a VAE"):
        report._check_image_task(task(vae=torch.nn.Conv2d(1, 1, 1)))
    with pytest.raises(TypeError, match=r"`image_prompts\['erased'\]` should be a non-empty list of non-empty prompt strings, got 'concept 0'"):
        UnlearningReport(image_prompts={"erased": "concept 0"})
    with pytest.raises(TypeError, match="`image_prompts` should be a non-empty dict"):
        UnlearningReport(image_prompts=["concept 0"])
    with pytest.raises(ValueError, match="`images_per_prompt`"):
        UnlearningReport(image_prompts=PROMPTS, images_per_prompt=0)
