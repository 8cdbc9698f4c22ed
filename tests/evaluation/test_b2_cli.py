"""``lightning-unlearn test`` prints benchmark B2's row: the CLI's LLMEvaluation numbers equal ``benchmarks/b2_llm.py``'s
on B2's quick configuration (its tiny Llama, tokenizer, data and evaluation settings).

The default test uses random tiny Llamas as target, oracle and pretrained model (seconds); the ``slow`` one trains
B2's quick pretrained / target / oracle models and unlearns the target with GradDiff first (about two minutes).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from lightning_unlearn.callbacks import LLMEvaluation
from lightning_unlearn.cli import UnlearnCLI
from lightning_unlearn.evaluation.llm import format_tofu_row
from lightning_unlearn.metrics.llm import forget_quality

SCALE, SEED = "quick", 0


@pytest.fixture(scope="module")
def b2() -> Any:
    """B2's protocol as benchmarks/b2_llm.py runs it (the script imports it from the package)."""
    from lightning_unlearn.benchmarking import b2

    return b2


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("b2cache")


@pytest.fixture(scope="module")
def backbone(b2, cache) -> Any:
    return b2.Backbone(SCALE, SEED, cache)


def _tokenizer_dir(cache: Path) -> str:
    """The folder where b2_llm's Backbone saved the quick scale's trained tokenizer."""
    folders = sorted(cache.glob("b2/tokenizer-*"))
    assert len(folders) == 1, folders
    return str(folders[0])


def _config(b2, tokenizer_dir: str, root: Path, original: str, oracle: str, callback: dict | None) -> Path:
    """A LightningCLI config of B2's quick scale: the tiny Llama with ``original`` weights, the oracle, B2's data."""
    spec, data = b2.SCALES[SCALE]["model"], b2.SCALES[SCALE]["data"]
    config = {
        "seed_everything": SEED,
        "trainer": {
            "accelerator": "cpu",
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(root),
            "callbacks": [callback] if callback else None,
        },
        "model": {
            "class_path": "lightning_unlearn.UnlearningModule",
            "init_args": {
                "model": {
                    "class_path": "evaluation._quick.tiny_model",
                    "init_args": {
                        "tokenizer_path": tokenizer_dir,
                        "hidden_size": spec["hidden_size"],
                        "num_layers": spec["num_layers"],
                        "num_heads": spec["num_heads"],
                        "seed": SEED,
                    },
                },
                "method": {"class_path": "lightning_unlearn.methods.GradDiff"},
                "task": {"class_path": "lightning_unlearn.tasks.CausalLMTask"},
                "original": original,
                "oracle": oracle,
            },
        },
        "data": {
            "class_path": "lightning_unlearn.datamodules.FictitiousAuthorsDataModule",
            "init_args": {
                "n_authors": data["n_authors"],
                "seed": SEED,
                "forget_fraction": data["forget_fraction"],
                "holdout_fraction": data["holdout_fraction"],
                "facts_per_author": data["facts_per_author"],
                "n_perturbed": data["n_perturbed"],
                "collate_fn": {
                    "class_path": "lightning_unlearn.tasks.QACollator",
                    "init_args": {
                        "tokenizer": {"class_path": "evaluation._quick.tokenizer", "init_args": {"path": tokenizer_dir}},
                        "max_length": b2.SCALES[SCALE]["max_length"],
                    },
                },
                "eval_batch_size": b2.SCALES[SCALE]["eval"]["batch_size"],
            },
        },
    }
    if callback is None:
        del config["trainer"]["callbacks"]
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _quick_callback(b2, pretrained: str, name: str) -> dict:
    ev = b2.SCALES[SCALE]["eval"]
    return {
        "class_path": "lightning_unlearn.callbacks.LLMEvaluation",
        "init_args": {
            "max_retain": ev["max_retain"],
            "max_new_tokens": ev["max_new_tokens"],
            "batch_size": ev["batch_size"],
            "gen_batch_size": ev["gen_batch_size"],
            "known_probes_of": pretrained,
            "name": name,
        },
    }


def _benchmark_row(b2, backbone, model_path: str, oracle_path: str, pretrained_path: str, cache: Path) -> dict[str, float]:
    """B2's row of ``model_path``, as benchmarks/b2_llm.py's main computes it (oracle first, then ``finish``'s forget quality)."""
    sets = b2.eval_sets(SCALE, SEED)
    probes = b2.known_probes(backbone, pretrained_path, "test", cache, b2.SCALES[SCALE]["eval"]["gen_batch_size"])
    oracle = b2.evaluate(b2.load_model(backbone, oracle_path), backbone, sets, probes, SCALE)
    row = b2.evaluate(b2.load_model(backbone, model_path), backbone, sets, probes, SCALE)
    return {**row["metrics"], "forget_quality": forget_quality(row["forget_truth_ratios"], oracle["forget_truth_ratios"])}


def _cli_test(config: Path, *extra: str) -> LLMEvaluation:
    cli = UnlearnCLI(args=["test", "--config", str(config), *extra])
    found = [cb for cb in cli.trainer.callbacks if isinstance(cb, LLMEvaluation)]
    assert len(found) == 1
    return found[0]


def _assert_same(cli_metrics: dict[str, float], bench: dict[str, float]) -> None:
    assert set(cli_metrics) == set(bench)
    for key, value in bench.items():
        assert math.isclose(cli_metrics[key], value, rel_tol=0, abs_tol=1e-9), (key, cli_metrics[key], value)


def _save(model: torch.nn.Module, path: Path) -> str:
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, path)
    return str(path)


@pytest.fixture(scope="module")
def random_weights(b2, backbone, tmp_path_factory) -> dict[str, str]:
    """Random tiny Llamas of B2's quick architecture: distinct target, oracle and pretrained weights."""
    from lightning_unlearn.models import tiny_llama

    folder = tmp_path_factory.mktemp("weights")
    spec, tok = b2.SCALES[SCALE]["model"], backbone.tokenizer
    out = {}
    for offset, kind in enumerate(("target", "oracle", "pretrained")):
        model = tiny_llama(
            len(tok),
            hidden_size=spec["hidden_size"],
            num_layers=spec["num_layers"],
            num_heads=spec["num_heads"],
            seed=SEED + 1 + offset,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
        out[kind] = _save(model, folder / f"{kind}.pt")
    return out


def test_cli_test_prints_the_benchmark_row(b2, backbone, cache, random_weights, tmp_path, capsys):
    w = random_weights
    expected = _benchmark_row(b2, backbone, w["target"], w["oracle"], w["pretrained"], tmp_path)
    config = _config(b2, _tokenizer_dir(cache), tmp_path, w["target"], w["oracle"], _quick_callback(b2, w["pretrained"], "target"))
    callback = _cli_test(config)
    _assert_same(callback.metrics, expected)
    assert format_tofu_row(expected, "target") in capsys.readouterr().out


def test_cli_adds_the_evaluation_with_b2_full_settings(b2, backbone, cache, random_weights, tmp_path, capsys):
    """A config without the callback (as configs/authors_smollm2/*.yaml): `test` adds it with B2's full-scale
    evaluation settings and the config's model, built afresh, as the pretrained model of the probes."""
    w = random_weights
    config = _config(b2, _tokenizer_dir(cache), tmp_path, w["target"], w["oracle"], None)
    callback = _cli_test(config)
    full = b2.SCALES["full"]["eval"]
    assert (callback.max_retain, callback.max_new_tokens, callback.batch_size, callback.gen_batch_size) == (
        full["max_retain"],
        full["max_new_tokens"],
        full["batch_size"],
        full["gen_batch_size"],
    )
    assert isinstance(callback.known_probes_of, torch.nn.Module) and callback.general_knowledge == "known"
    assert "forget_quality" in callback.metrics and "mia_loss" in callback.metrics
    assert format_tofu_row(callback.metrics, "original") in capsys.readouterr().out  # no --ckpt_path: the `original` weights


def test_llm_evaluation_errors():
    with pytest.raises(ValueError, match="`general_knowledge='known'` .* needs `known_probes_of`"):
        LLMEvaluation()
    with pytest.raises(ValueError, match=r"`general_knowledge` should be one of \['all', 'known', 'none'\], got 'some'"):
        LLMEvaluation(general_knowledge="some")
    with pytest.raises(ValueError, match=r"`perturbed_template` should be one of \['answer', 'paraphrase'\], got 'x'"):
        LLMEvaluation(general_knowledge="none", perturbed_template="x")
    with pytest.raises(ValueError, match="`max_retain` should be an int >= 1 or None, got 0"):
        LLMEvaluation(general_knowledge="none", max_retain=0)


@pytest.mark.slow
def test_cli_equals_benchmark_on_the_quick_run(b2, backbone, cache, tmp_path):
    """B2 --quick end to end: the trained quick models, GradDiff unlearned with B2's settings, then the CLI's `test`
    of the unlearned weights against b2_llm's scoring of the same model."""
    pretrained = b2.get_trained(b2.PRETRAINED, SCALE, SEED, backbone, cache, None, log=lambda *a: None)
    target = b2.get_trained(b2.TARGET, SCALE, SEED, backbone, cache, pretrained, log=lambda *a: None)
    oracle = b2.get_trained(b2.ORACLE, SCALE, SEED, backbone, cache, pretrained, log=lambda *a: None)
    hp, _ = b2.resolve_hparams(SCALE, "graddiff")
    model, _, _ = b2.run_method("graddiff", hp, SCALE, SEED, backbone, target["path"], None)
    unlearned = _save(model, tmp_path / "graddiff.pt")
    expected = _benchmark_row(b2, backbone, unlearned, oracle["path"], pretrained["path"], tmp_path)
    assert expected["gk_acc"] > 0  # the pretrained quick model knows some probes: gk_acc is part of the comparison
    config = _config(b2, _tokenizer_dir(cache), tmp_path, unlearned, oracle["path"], _quick_callback(b2, pretrained["path"], "graddiff"))
    _assert_same(_cli_test(config).metrics, expected)
