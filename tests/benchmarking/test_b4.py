"""B4's protocol pieces that need no trained model: the configs' settings build every method; the table's maths;
the Fréchet distance in the judge's feature space."""

from __future__ import annotations

import importlib

import pytest
import torch

from lightning_unlearn.benchmarking import b4


@pytest.mark.parametrize("name", b4.METHODS)
def test_every_b4_method_builds_from_its_config(name):
    settings = b4.method_settings(name)
    module, _, cls = settings["class_path"].rpartition(".")
    method = getattr(importlib.import_module(module), cls)(**settings["init_args"])
    assert method.name == name and "diffusion" in method.supported_tasks
    assert settings["lr"] > 0 and settings["max_steps"] > 0


def test_table_reports_mean_and_std_over_seeds():
    rows = [
        {"method": "original", "seed": 0, "seconds": 100.0, "forget_acc": 80.0, "paraphrase_acc": 70.0, "other_acc": 60.0},
        {"method": "esd", "seed": 0, "seconds": 10.0, "time_ratio": 0.1, "forget_acc": 10.0, "paraphrase_acc": 20.0, "other_acc": 50.0},
        {"method": "esd", "seed": 1, "seconds": 30.0, "time_ratio": 0.3, "forget_acc": 30.0, "paraphrase_acc": 20.0, "other_acc": 70.0},
    ]
    text = b4.table({"rows": rows})
    esd = next(line for line in text.splitlines() if line.startswith("| esd"))
    assert "| 2 |" in esd and "20.0 ± 14.1" in esd and "60.0 ± 14.1" in esd and "| 20 |" in esd
    assert "1 (training)" in text
    # rows recorded before the FID and memory columns show a dash there; newer rows their mean
    assert esd.endswith("| — | 20 | 0.200 ± 0.141 | — |")
    rows[1:] = [{**r, "other_fid": fid, "peak_rss_mb": mb, "start_rss_mb": 400.0} for r, fid, mb in zip(rows[1:], (1.0, 3.0), (500.0, 700.0))]
    esd = next(line for line in b4.table({"rows": rows}).splitlines() if line.startswith("| esd"))
    assert "| 2.0 ± 1.4 | 20 |" in esd and esd.endswith("| 200 |")  # the peak over the fit's start


def test_the_frechet_distance_is_zero_on_the_same_images_and_grows_with_the_gap():
    from lightning_unlearn.models.cnn import SmallCNN

    torch.manual_seed(0)
    judge = SmallCNN(image_size=b4.UNET["sample_size"]).eval()
    real = b4.real_images([0, 1, 2], per_concept=60)
    assert real.shape == (180, 1, 16, 16) and 0 <= float(real.min()) and float(real.max()) <= 1
    features = b4.JudgeFeatures(judge)
    assert features.num_features == judge.head.in_features
    torch.testing.assert_close(judge.head(features(real)), judge(real * 2 - 1))  # the judge's own features
    same = b4.judge_fid(judge, real, real)
    subset = b4.judge_fid(judge, real[::2], real)  # the same distribution, half the samples
    noise = b4.judge_fid(judge, torch.rand_like(real), real)
    assert abs(same) < 1e-6 < subset < 10 * subset < noise
