"""Benchmark B2's protocol (TOFU-style unlearning of fictitious authors), shared by ``benchmarks/b2_llm.py``,
``benchmarks/b2_attacks.py`` and ``benchmarks/b3_entity.py`` (through :mod:`lightning_unlearn.benchmarking.b3`).

The pretrained model is fine-tuned on forget + retain authors (the *target*) and on the retain authors only (the
*oracle*), both cached on disk keyed by their recipe and data (:func:`get_trained`); every method then unlearns the
forget authors from the cached target (:func:`run_method`) and is scored by the package's
:class:`~lightning_unlearn.evaluation.llm.TofuEvaluator` (:func:`evaluate`).

Where the settings come from:

* **full scale** (SmolLM2-135M-Instruct): the shipped configs. A row's unlearning settings are
  ``configs/authors_smollm2/<row>.yaml`` (:func:`resolve_hparams`; ``<method>+<variant>.yaml`` is a registered
  method with other settings); the target's and the oracle's recipe (epochs, AdamW lr and weight decay, batch size),
  the data (authors, facts, split) and the collator's ``max_length`` come from ``target.yaml`` (:data:`SCALES`;
  ``oracle.yaml`` trains with the same recipe). The class paths are the registry's
  (:data:`lightning_unlearn.methods.METHODS`). A per-row time limit (:data:`ROW_TIME_LIMITS`) has no place in a
  LightningCLI config and stays here.
* **quick scale** (a 2-layer tiny Llama, the smoke test): :data:`QUICK_HPARAMS`. No config chain can describe it:
  its tokenizer is trained on the generated texts at run time and the model is "pretrained" on the
  general-knowledge probes by the benchmark itself (:class:`Backbone`, :func:`get_trained`), so the settings of
  this scale stay a dict here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import PeakRSS, release_memory

__all__ = [
    "CONFIG_FOLDER",
    "EDITOR_FULL_HPARAMS",
    "EDITOR_ROWS",
    "EVAL_ONLY_FIELDS",
    "LLM_METHODS",
    "ORACLE",
    "PRETRAINED",
    "QUICK_DEFAULT_HP",
    "QUICK_HPARAMS",
    "RECIPE_VERSION",
    "ROW_CURVES",
    "ROW_TIME_LIMITS",
    "SCALES",
    "SEED_COLUMNS",
    "TARGET",
    "TARGET_CHECK",
    "VARIANTS",
    "Backbone",
    "EpochSnapshots",
    "PeakRSS",
    "StepTimes",
    "StopAfter",
    "build_method",
    "curve_table",
    "curves_from_run_start",
    "default_methods",
    "is_editor",
    "eval_sets",
    "evaluate",
    "evaluator",
    "finetune_seconds_now",
    "finite",
    "get_trained",
    "known_probes",
    "load_model",
    "make_data",
    "make_datamodule",
    "merge_seeds",
    "method_name",
    "model_config",
    "plot_curves",
    "probe_examples",
    "probe_multiturn",
    "quiet_llm_run",
    "rec",
    "release_memory",
    "resolve_hparams",
    "run_editor",
    "run_method",
    "same_run_ratio",
    "seed_table",
    "settings_from_config",
    "training_examples",
    "training_loader",
]

# ----------------------------------------------------------------------------------------------------------
# Scales
# ----------------------------------------------------------------------------------------------------------

#: The shipped config folder of the full scale: ``target.yaml``, ``oracle.yaml`` and one ``<row>.yaml`` per row.
CONFIG_FOLDER = "authors_smollm2"


def _full_scale() -> dict[str, Any]:
    """The full scale, its data, collator ``max_length`` and target/oracle recipe read from ``target.yaml``."""
    from lightning_unlearn.configs import load_config

    config = load_config(f"{CONFIG_FOLDER}/target")
    data = config["data"]["init_args"]
    optimizer = config["model"]["init_args"]["optimizer"]
    if optimizer["class_path"] != "torch.optim.AdamW":
        raise ValueError(f"configs/{CONFIG_FOLDER}/target.yaml: B2 fine-tunes with torch.optim.AdamW, got {optimizer['class_path']!r}.")
    return {
        "model": {"kind": "smollm2"},
        "data": {k: data[k] for k in ("n_authors", "facts_per_author", "n_perturbed", "forget_fraction", "holdout_fraction")},
        "pretrain": None,  # SmolLM2-135M-Instruct as released (dequantized Q4_1, see load_smollm2)
        "train": {
            "epochs": config["trainer"]["max_epochs"],
            "lr": optimizer["init_args"]["lr"],
            "batch_size": data["batch_size"],
            "weight_decay": optimizer["init_args"].get("weight_decay", 0.01),  # AdamW's default
            "replay_probes": False,
        },
        "max_length": data["collate_fn"]["init_args"]["max_length"],
        "eval": {"max_retain": 48, "max_new_tokens": 24, "batch_size": 16, "gen_batch_size": 16},
    }


#: Everything that defines a scale.
#: ``data``: the generator's settings (``split_authors``: forget 10%, holdout 10%).
#: ``pretrain``: quick scale only, the tiny model's "pretraining" on the general-knowledge probes.
#: ``train``: the recipe shared by target and oracle (AdamW, constant lr, mean answer-token NLL).
#: ``eval``: ``max_retain`` caps the retain evaluation set at a fixed seeded subset (forget and holdout are
#: whole); ``max_new_tokens`` of greedy answers; ``batch_size`` of the likelihood passes.
#: The full scale's ``data``, ``train`` and ``max_length`` are those of ``configs/authors_smollm2/target.yaml``.
SCALES: dict[str, dict[str, Any]] = {
    "quick": {
        "model": {"kind": "tiny_llama", "hidden_size": 64, "num_layers": 2, "num_heads": 4, "vocab_size": 512},
        "data": {"n_authors": 30, "facts_per_author": 5, "n_perturbed": 3, "forget_fraction": 0.1, "holdout_fraction": 0.1},
        "pretrain": {"epochs": 40, "lr": 3e-3, "batch_size": 8, "weight_decay": 0.0},
        # replay_probes: the probes are mixed into the fine-tuning data of target and oracle, or the 2-layer
        # model forgets them all while memorising the authors (general knowledge would be 0 for every row)
        "train": {"epochs": 40, "lr": 3e-3, "batch_size": 8, "weight_decay": 0.0, "replay_probes": True},
        "max_length": 64,
        "eval": {"max_retain": None, "max_new_tokens": 24, "batch_size": 32, "gen_batch_size": 32},
        "unlearn_batch_size": 8,
    },
    "full": _full_scale(),
}

#: Bump to invalidate every cached model of this benchmark (e.g. after a change of the training code).
RECIPE_VERSION = 1

#: The LLM unlearning methods of the library (GA, GradDiff and NPO are generic methods that also apply).
LLM_METHODS = ("ga", "graddiff", "npo", "simnpo", "idk", "idk_dpo", "rmu", "pmc", "tru", "asu")
#: Causal-LM methods that are not B2 rows, and why.
NOT_B2 = {
    "feature_replacement": "unlearns marked spans of chain-of-thought traces (ReasoningTracesDataModule, TraceCollator); "
    "B2's QA answers have no traces: see benchmarks/b2_reasoning.py and docs/reasoning.md",
}

# ----------------------------------------------------------------------------------------------------------
# Per-method settings
# ----------------------------------------------------------------------------------------------------------
#
# Full scale: configs/authors_smollm2/<row>.yaml (see resolve_hparams). Its comments say why each budget is what
# it is (NOT TUNED: choices made once for the budget and the scale, not the result of a search; the one exception,
# tru+fast, was tuned on seed 3, which no reported table uses, and its config says how).
#
# Quick scale (the smoke test of the same code; a tiny Llama whose tokenizer and "pretraining" the benchmark makes
# itself, so no shipped config can build it): QUICK_HPARAMS[row] = {
#     "lr":         AdamW learning rate (weight decay 0.01, constant),
#     "epochs":     passes over the forget set (mode="min_size": each forget batch paired with a retain batch),
#     "max_steps":  optional cap on optimizer steps,
#     "method":     keyword arguments of the method's constructor (anything not given: the class default),
# } merged into QUICK_DEFAULT_HP.

#: The quick scale's defaults: the tiny model is fine-tuned at 3e-3; unlearning at 1e-3 for 5 passes over the
#: 15 forget pairs (2 batches: 10 steps).
QUICK_DEFAULT_HP: dict[str, Any] = {"lr": 1e-3, "epochs": 5, "max_steps": -1, "weight_decay": 0.01, "method": {}, "batch_size": SCALES["quick"]["unlearn_batch_size"]}
#: The quick scale's per-row settings (smoke test only; the full scale's are the shipped configs).
QUICK_HPARAMS: dict[str, dict[str, Any]] = {
    "ga": {"epochs": 3},  # no retain term: fewer steps, as GA collapses fastest
    "rmu": {"method": {"layer": 1}},  # the tiny Llama has 2 decoder layers (default 7)
    "pmc": {"method": {"max_new_tokens": 24, "num_samples": 4}},  # answers are ~12 tokens
    "tru": {"method": {"max_target_length": 64}},
    "roka": {"method": {"layer": "model.norm"}},  # no "penultimate" module in a Llama
    # editors: no optimizer; "method" holds the editor's arguments (NOT TUNED)
    "stamp": {"method": {}},  # the defaults: rcond 1e-2, layer by cosine separation, retain buffer 64
    "stamp_lr": {"method": {"rank": 64}},
    "pmc+long": {"epochs": 25, "method": {"max_new_tokens": 24, "num_samples": 4}},
    # the full scale's `tru` row writes its targets with SmolLM2; the tiny Llama cannot, so both quick rows use the template
    "tru+template": {"method": {"max_target_length": 64}},
    "tru+fast": {"epochs": 1, "lr": 2e-3, "method": {"max_target_length": 64}},  # the full row: 1 pass at twice the lr
}

#: The training-free editors' rows (``lightning_unlearn.editors.EDITORS``): opt-in (``--methods stamp stamp_lr``), not in
#: ``"all"``. Their quick-scale settings are QUICK_HPARAMS entries whose ``"method"`` holds the editor's arguments.
EDITOR_ROWS = ("stamp", "stamp_lr")
#: The editors' full-scale settings (the editor's arguments; empty: its defaults).
EDITOR_FULL_HPARAMS: dict[str, dict[str, Any]] = {"stamp": {}, "stamp_lr": {}}

#: Rows stopped after another fraction of the target's fine-tuning seconds than ``--time-limit`` (both scales). A
#: benchmark guard, not a training setting, so it cannot live in the row's LightningCLI config: ``pmc+long`` (PMC
#: outside the budget, scored after every pass) is allowed twice the fine-tuning time.
ROW_TIME_LIMITS: dict[str, float] = {"pmc+long": 2.0}

#: Rows also scored after every pass over the forget set at full scale (a curve of forget quality and utility against
#: passes): the run keeps a copy of the weights at each epoch end (``run_method(snapshots=True)``).
ROW_CURVES = ("pmc+long", "tru", "tru+template")

#: Extra rows: a registered method run with other settings, named ``<method>+<variant>`` (its settings are the
#: config ``configs/authors_smollm2/<method>+<variant>.yaml``, at quick scale the QUICK_HPARAMS entry of that name).
VARIANTS = ("pmc+long", "tru+template", "tru+fast")

#: BENCHMARKS.md's B2 target: forget quality >= 0.05 with model utility >= 0.95 x the target's in <= 10% of the
#: fine-tuning time.
TARGET_CHECK = {"forget_quality": 0.05, "mu_ratio_to_target": 0.95, "time_ratio_to_finetune": 0.10}

TARGET, ORACLE, PRETRAINED = "target", "oracle", "pretrained"


def method_name(row: str) -> str:
    """The registered method behind a row name (``"pmc+long"`` -> ``"pmc"``)."""
    return row.split("+", 1)[0]


def settings_from_config(config: dict[str, Any], row: str, source: str) -> dict[str, Any]:
    """An LLM benchmark row's settings from its unlearning config (B2 and B3): ``lr``, ``weight_decay`` (AdamW's
    default 0.01 when the config leaves it out), ``epochs``, ``max_steps``, ``batch_size``, ``retain_batch_size``
    (when set) and ``method`` (the method's ``init_args``), from
    :func:`lightning_unlearn.benchmarking.unlearning_settings` with ``torch.optim.AdamW``.

    The config's method must be the registered class of ``method_name(row)`` and its data must pair batches with
    ``mode: min_size`` (one epoch = one pass over the forget set), as the benchmarks run them. ``source`` names the
    config in errors.
    """
    from lightning_unlearn import METHODS

    hp = benchmarking.unlearning_settings(config, source, optimizer="torch.optim.AdamW")
    cls = METHODS.get(method_name(row))
    registered = f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__name__}"
    class_path = config["model"]["init_args"]["method"].get("class_path")
    if class_path not in (registered, f"{cls.__module__}.{cls.__name__}"):
        raise ValueError(f"{source}: the method should be {registered} (registered as {method_name(row)!r}), got {class_path!r}.")
    if hp.pop("mode") != "min_size":
        raise ValueError(f"{source}: the benchmark pairs forget and retain batches with mode 'min_size', got {config['data']['init_args']['mode']!r}.")
    hp.pop("schedule")  # unlearning_settings refuses an lr_scheduler: constant
    hp.setdefault("weight_decay", 0.01)  # torch.optim.AdamW's default
    return hp


def resolve_hparams(scale: str, row: str) -> tuple[dict[str, Any], str]:
    """The settings of ``row`` at ``scale`` and where they come from.

    Full scale: ``configs/authors_smollm2/<row>.yaml`` (:func:`settings_from_config`); quick scale:
    :data:`QUICK_HPARAMS` merged into :data:`QUICK_DEFAULT_HP`. ``time_limit`` (a fraction of the target's
    fine-tuning seconds that overrides ``--time-limit``) is added for the rows of :data:`ROW_TIME_LIMITS`.
    """
    if scale == "quick":
        entry = QUICK_HPARAMS.get(row)
        hp = benchmarking.merge_hparams(QUICK_DEFAULT_HP, entry)
        source = f"QUICK_HPARAMS[{row!r}]" if entry is not None else "QUICK_DEFAULT_HP"
    elif scale == "full" and is_editor(row):
        # an editor takes no optimizer and no Trainer, so no LightningCLI config describes it: its defaults
        hp, source = {"method": dict(EDITOR_FULL_HPARAMS.get(row, {}))}, f"EDITOR_FULL_HPARAMS[{row!r}] (the editor's defaults otherwise)"
    elif scale == "full":
        from lightning_unlearn.configs import config_path, load_config

        name = f"{CONFIG_FOLDER}/{row}"
        try:
            config_path(name)
        except ValueError:
            raise ValueError(f"B2 has no settings for {row!r} at full scale: configs/{name}.yaml does not exist.") from None
        source = f"configs/{name}.yaml"
        hp = settings_from_config(load_config(name), row, source)
    else:
        raise ValueError(f"`scale` should be one of ['full', 'quick'], got {scale!r}.")
    if row in ROW_TIME_LIMITS:
        hp["time_limit"] = ROW_TIME_LIMITS[row]
    return hp, source


def default_methods(group: str = "all") -> list[str]:
    """``"llm"``: :data:`LLM_METHODS`; ``"all"``: every registered method whose ``supported_tasks`` include
    ``"causal_lm"`` (except ``retrain``, the oracle row, and :data:`NOT_B2`), the LLM ones first."""
    from lightning_unlearn import METHODS

    if group == "llm":
        names = [m for m in LLM_METHODS if m in METHODS.names()]
    else:
        registered = [m for m in METHODS.names() if m != "retrain" and m not in NOT_B2 and "causal_lm" in METHODS.get(m).supported_tasks]
        names = [m for m in LLM_METHODS if m in registered] + [m for m in registered if m not in LLM_METHODS]
    return names + [v for v in VARIANTS if method_name(v) in names]


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------


@functools.cache
def make_data(scale: str, seed: int) -> dict[str, Any]:
    """The authors, their QA examples, the split and a fingerprint (exactly what FictitiousAuthorsDataModule builds)."""
    from lightning_unlearn.datamodules.authors import fingerprint, generate_authors, qa_pairs, split_authors

    d = SCALES[scale]["data"]
    authors = generate_authors(d["n_authors"], seed=seed, facts_per_author=d["facts_per_author"])
    forget_ids, retain_ids, holdout_ids = split_authors(d["n_authors"], d["forget_fraction"], d["holdout_fraction"], seed=seed)
    examples = qa_pairs(authors, questions="one", n_perturbed=d["n_perturbed"], seed=seed)

    def part(ids: list[int]) -> list[dict[str, Any]]:
        keep = set(ids)
        return [e for e in examples if e["author_index"] in keep]

    return {
        "examples": examples,
        "forget": part(forget_ids),
        "retain": part(retain_ids),
        "holdout": part(holdout_ids),
        "ids": {"forget": forget_ids, "retain": retain_ids, "holdout": holdout_ids},
        "fingerprint": fingerprint(
            {
                "examples": [{k: v for k, v in e.items() if k not in EVAL_ONLY_FIELDS} for e in examples],
                "forget": forget_ids,
                "retain": retain_ids,
                "holdout": holdout_ids,
            }
        ),
    }


def make_datamodule(scale: str, seed: int, collator: Any, train_on: str, batch_size: int, retain_batch_size: int | None = None):
    from lightning_unlearn.datamodules import FictitiousAuthorsDataModule

    d = SCALES[scale]["data"]
    return FictitiousAuthorsDataModule(
        n_authors=d["n_authors"],
        seed=seed,
        forget_fraction=d["forget_fraction"],
        holdout_fraction=d["holdout_fraction"],
        facts_per_author=d["facts_per_author"],
        questions="one",
        n_perturbed=d["n_perturbed"],
        collate_fn=collator,
        batch_size=batch_size,
        retain_batch_size=retain_batch_size,
        mode="min_size",
        train_on=train_on,
    )


#: Fields of qa_pairs' examples that only the evaluation reads; the cached models' key leaves them out, so that
#: adding one (``perturbed_paraphrased_answers`` was added after the first full run) keeps trained models valid.
EVAL_ONLY_FIELDS = ("perturbed_paraphrased_answers",)


def eval_sets(scale: str, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Forget and holdout whole; retain capped at ``max_retain`` by a fixed seeded subset."""
    from lightning_unlearn.evaluation.llm import retain_subset

    data = make_data(scale, seed)
    retain = retain_subset(data["retain"], SCALES[scale]["eval"]["max_retain"], seed)
    return {"forget": data["forget"], "retain": retain, "holdout": data["holdout"]}


# ----------------------------------------------------------------------------------------------------------
# Backbone (model architecture + tokenizer)
# ----------------------------------------------------------------------------------------------------------


config_hash = benchmarking.config_hash


class Backbone:
    """The scale's tokenizer and a factory of fresh models (SmolLM2's released weights; random tiny Llamas)."""

    def __init__(self, scale: str, seed: int, cache_dir: Path) -> None:
        self.scale, self.seed = scale, seed
        self.spec = SCALES[scale]["model"]
        if self.spec["kind"] == "smollm2":
            from lightning_unlearn.models import load_smollm2
            from lightning_unlearn.models.llm import SMOLLM2_GGUF

            _, self.tokenizer = load_smollm2()
            self.identity = {"kind": "smollm2", "gguf": SMOLLM2_GGUF}
        else:
            self.tokenizer = self._tiny_tokenizer(cache_dir)
            self.identity = {**self.spec, "tokenizer": self.tokenizer_fingerprint}

    def _tiny_tokenizer(self, cache_dir: Path):
        """A byte-level BPE tokenizer trained on every generated text and the probes, cached on disk."""
        from transformers import PreTrainedTokenizerFast

        from lightning_unlearn.datamodules.probes import GENERAL_KNOWLEDGE
        from lightning_unlearn.models import train_tokenizer

        data = make_data(self.scale, self.seed)
        texts = []
        for e in data["examples"]:
            texts += [e["question"], e["answer"], e["paraphrased_answer"], *e["perturbed_answers"]]
        texts += [p.question for p in GENERAL_KNOWLEDGE] + [a for p in GENERAL_KNOWLEDGE for a in p.answers]
        key = config_hash({"texts": hashlib.sha256("\n".join(texts).encode()).hexdigest(), "vocab": self.spec["vocab_size"]})
        folder = cache_dir / "b2" / f"tokenizer-{key}"
        if not (folder / "tokenizer.json").is_file():
            tok = train_tokenizer(texts, vocab_size=self.spec["vocab_size"])
            tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
            tok.save_pretrained(tmp)
            try:
                os.replace(tmp, folder)
            except OSError:  # a concurrent run wrote it first
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
        tok = PreTrainedTokenizerFast.from_pretrained(folder)
        if not tok.chat_template:
            from lightning_unlearn.models.llm import TOY_CHAT_TEMPLATE

            tok.chat_template = TOY_CHAT_TEMPLATE
        self.tokenizer_fingerprint = hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest()[:16]
        return tok

    def build(self):
        """A fresh model: SmolLM2's released weights, or a randomly initialised tiny Llama (seeded)."""
        if self.spec["kind"] == "smollm2":
            from lightning_unlearn.models import load_smollm2

            return load_smollm2()[0]
        from lightning_unlearn.models import tiny_llama

        tok = self.tokenizer
        return tiny_llama(
            len(tok),
            hidden_size=self.spec["hidden_size"],
            num_layers=self.spec["num_layers"],
            num_heads=self.spec["num_heads"],
            seed=self.seed,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )

    def collator(self, **kwargs: Any):
        from lightning_unlearn.tasks import QACollator

        return QACollator(self.tokenizer, max_length=SCALES[self.scale]["max_length"], **kwargs)


def load_model(backbone: Backbone, path: str | None):
    import torch

    model = backbone.build()
    if path is not None:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


# ----------------------------------------------------------------------------------------------------------
# Peak memory
# ----------------------------------------------------------------------------------------------------------


# release_memory and PeakRSS live in lightning_unlearn.benchmarking (B4 measures with them too); imported above.


# ----------------------------------------------------------------------------------------------------------
# Pretrained (quick only), target and oracle: train once, cache on disk
# ----------------------------------------------------------------------------------------------------------


def model_config(kind: str, scale: str, seed: int, backbone: Backbone, parent_key: str | None) -> dict[str, Any]:
    cfg = SCALES[scale]
    out: dict[str, Any] = {
        "kind": kind,
        "recipe_version": RECIPE_VERSION,
        "backbone": backbone.identity,
        "max_length": cfg["max_length"],
        "seed": seed,
        "optimizer": "AdamW",
        "from": parent_key,
    }
    if kind == PRETRAINED:
        out["train"] = cfg["pretrain"]
        out["data"] = "GENERAL_KNOWLEDGE probes (question -> canonical answer)"
    else:
        out["train"] = cfg["train"]
        out["data"] = make_data(scale, seed)["fingerprint"]
        out["train_on"] = "forget+retain" if kind == TARGET else "retain"
        out["n_examples"] = len(training_examples(kind, scale, seed))
    return out


def _fit_supervised(model, loader_or_dm, train: dict[str, Any], steps: int | None = None, stamps: list[float] | None = None) -> None:
    import lightning.pytorch as pl
    import torch

    from lightning_unlearn import SupervisedModule
    from lightning_unlearn.tasks import CausalLMTask

    def factory(params):
        opt = torch.optim.AdamW(params, lr=train["lr"], weight_decay=train["weight_decay"])
        if stamps is not None:
            opt.register_step_post_hook(lambda *_: stamps.append(time.perf_counter()))
        return opt

    module = SupervisedModule(model, task=CausalLMTask(), optimizer=factory)
    trainer = benchmarking.quiet_trainer(max_epochs=train["epochs"], max_steps=steps if steps is not None else -1)
    if isinstance(loader_or_dm, pl.LightningDataModule):
        trainer.fit(module, datamodule=loader_or_dm)
    else:
        trainer.fit(module, train_dataloaders=loader_or_dm)


def probe_examples() -> list[dict[str, str]]:
    from lightning_unlearn.datamodules.probes import GENERAL_KNOWLEDGE

    return [{"question": p.question, "answer": p.answer} for p in GENERAL_KNOWLEDGE]


def training_examples(kind: str, scale: str, seed: int) -> list[dict[str, Any]]:
    """What ``kind`` is trained on: the probes (quick "pretraining"), forget + retain (target) or retain (oracle),
    plus the probes again where the scale's recipe says ``replay_probes`` (see :data:`SCALES`)."""
    if kind == PRETRAINED:
        return probe_examples()
    data = make_data(scale, seed)
    examples = data["forget"] + data["retain"] if kind == TARGET else list(data["retain"])
    if SCALES[scale]["train"].get("replay_probes"):
        examples += probe_examples()
    return examples


def training_loader(kind: str, scale: str, seed: int, backbone: Backbone, batch_size: int):
    """A shuffled (seeded) loader of :func:`training_examples` collated by ``QACollator`` (holdout never included)."""
    import torch
    from torch.utils.data import DataLoader

    return DataLoader(
        training_examples(kind, scale, seed),
        batch_size=batch_size,
        shuffle=True,
        collate_fn=backbone.collator(),
        generator=torch.Generator().manual_seed(seed),
    )


def get_trained(kind: str, scale: str, seed: int, backbone: Backbone, cache_dir: Path, parent: dict[str, Any] | None, log=print) -> dict[str, Any]:
    """Train (or load from the cache) ``kind``; returns ``{"path", "seconds", "config", "key", "cached"}``.

    ``pretrained`` (quick scale only) starts from a random tiny Llama; ``target`` and ``oracle`` start from the
    pretrained weights (``parent``; ``None`` = SmolLM2 as released).
    """
    import lightning.pytorch as pl
    import torch

    config = model_config(kind, scale, seed, backbone, parent["key"] if parent else None)
    key = config_hash(config)
    folder = cache_dir / "b2"
    weights, meta = folder / f"{kind}-{key}.pt", folder / f"{kind}-{key}.json"
    if weights.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        return {**info, "path": str(weights), "key": key, "cached": True}
    folder.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(seed, verbose=False)
    model = load_model(backbone, parent["path"] if parent else None)
    train = SCALES[scale]["pretrain"] if kind == PRETRAINED else SCALES[scale]["train"]
    data = training_loader(kind, scale, seed, backbone, train["batch_size"])
    log(f"[b2] training {kind} ({scale}, {train['epochs']} epochs) ...")
    with PeakRSS() as rss:
        start = time.perf_counter()
        _fit_supervised(model, data, train)
        seconds = time.perf_counter() - start
    tmp = weights.with_suffix(f".pt.tmp{os.getpid()}")
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, weights)
    info = {
        "config": config,
        "seconds": seconds,
        "peak_rss_mb": rss.mb,
        "threads": torch.get_num_threads(),
        "trained_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    benchmarking.write_json(meta, info)
    log(f"[b2] trained {kind} in {seconds:.1f}s -> {weights.name}")
    return {**info, "path": str(weights), "key": key, "cached": False}


def finetune_seconds_now(scale: str, seed: int, backbone: Backbone, parent_path: str | None, steps: int, warmup: int = 1) -> dict[str, float]:
    """Same-run estimate of the target's fine-tuning time: time ``steps`` optimizer steps of its recipe now (after
    ``warmup``) and scale to the recipe's number of steps (the cached time may come from a differently loaded machine)."""
    import lightning.pytorch as pl

    train = SCALES[scale]["train"]
    stamps: list[float] = []
    pl.seed_everything(seed, verbose=False)
    loader = training_loader(TARGET, scale, seed, backbone, train["batch_size"])
    _fit_supervised(load_model(backbone, parent_path), loader, {**train, "epochs": 1_000}, steps=warmup + steps, stamps=stamps)
    per_step = (stamps[warmup + steps - 1] - stamps[warmup - 1]) / steps
    n_steps = train["epochs"] * len(loader)
    return {"seconds_per_step": per_step, "steps": n_steps, "estimate_seconds": per_step * n_steps}


# ----------------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------------


def known_probes(backbone: Backbone, pretrained_path: str | None, key: str, cache_dir: Path, gen_batch_size: int) -> list[Any]:
    """The general-knowledge probes the *pretrained* model answers correctly (the package's
    :func:`~lightning_unlearn.evaluation.llm.known_probes`), cached on disk by model key."""
    from lightning_unlearn.datamodules.probes import GENERAL_KNOWLEDGE
    from lightning_unlearn.evaluation.llm import known_probes as package_known_probes

    path = cache_dir / "b2" / f"known-probes-{key}.json"
    if path.is_file():
        wanted = set(json.loads(path.read_text())["questions"])
        return [p for p in GENERAL_KNOWLEDGE if p.question in wanted]
    model = load_model(backbone, pretrained_path)
    known = package_known_probes(model, backbone.tokenizer, GENERAL_KNOWLEDGE, max_new_tokens=24, batch_size=gen_batch_size)
    benchmarking.write_json(path, {"questions": [p.question for p in known], "of": len(GENERAL_KNOWLEDGE)})
    return known


def evaluator(backbone: Backbone, probes: list[Any], scale: str, perturbed_template: str = "paraphrase"):
    """The package's :class:`~lightning_unlearn.evaluation.llm.TofuEvaluator` with the scale's settings."""
    from lightning_unlearn.evaluation.llm import TofuEvaluator

    ev = SCALES[scale]["eval"]
    return TofuEvaluator(
        backbone.collator(),
        max_new_tokens=ev["max_new_tokens"],
        batch_size=ev["batch_size"],
        gen_batch_size=ev["gen_batch_size"],
        perturbed_template=perturbed_template,
        probes=probes,
    )


def evaluate(model, backbone: Backbone, sets: dict[str, list[dict[str, Any]]], probes: list[Any], scale: str, perturbed_template: str = "paraphrase") -> dict[str, Any]:
    """Every metric of one model (:meth:`TofuEvaluator.evaluate`, forget quality added by the caller);
    returns ``{"metrics": ..., "forget_truth_ratios": [...], "examples": [...]}``."""
    return evaluator(backbone, probes, scale, perturbed_template).evaluate(model, sets["forget"], sets["retain"], sets["holdout"])


# ----------------------------------------------------------------------------------------------------------
# Unlearning runs
# ----------------------------------------------------------------------------------------------------------


def is_editor(row: str) -> bool:
    """Whether ``row`` is a training-free editor's row (:mod:`lightning_unlearn.editors`) rather than a method's."""
    from lightning_unlearn.editors import EDITORS

    return method_name(row) in EDITORS


def run_editor(name: str, hp: dict[str, Any], scale: str, seed: int, backbone: Backbone, target_path: str | None, sets: dict[str, Any] | None = None):
    """Edit the cached target with the training-free editor of row ``name`` (STAMP, STAMP-LR); returns
    ``(model, seconds, info)`` like :func:`run_method`.

    One request: every forget QA pair (question and answer) is a forget prompt, the retain QA pairs the retain buffer
    (the editor samples at most ``retain_buffer`` of them), the refusal set the editor's default. The timed region
    covers building the model, loading the target's weights and the edit. ``sets`` (``{"forget", "retain"}`` lists
    of QA examples) replaces B2's fictitious-author data (B3 passes its Wikipedia data).
    """
    import lightning.pytorch as pl
    import torch

    from lightning_unlearn.editors import EDITORS

    pl.seed_everything(seed, verbose=False)
    editor = EDITORS.get(method_name(name))(**{"seed": seed, **hp["method"]})
    data = sets if sets is not None else make_data(scale, seed)
    forget = [{"question": e["question"], "answer": e["answer"]} for e in data["forget"]]
    retain = [{"question": e["question"], "answer": e["answer"]} for e in data["retain"]]
    start = time.perf_counter()
    model = backbone.build()
    if target_path is not None:
        model.load_state_dict(torch.load(target_path, map_location="cpu", weights_only=True))
    model.eval()
    record = editor.edit(model, backbone.tokenizer, forget=forget, retain=retain)
    seconds = time.perf_counter() - start
    info = {
        "steps": 0,
        "edit": record.as_dict(),
        "edit_seconds": record.seconds,
        "edit_seconds_per_forget_sample": record.seconds / len(forget),
        "forget_size": len(forget),
        "stopped_by_time_limit": False,
    }
    return model, seconds, info


def build_method(name: str, kwargs: dict[str, Any], seed: int):
    """The registered method of row ``name`` built with ``kwargs`` (its settings; nested ``class_path`` specs, such as
    TRU's ``reasoner``, are built) and ``seed`` (every method takes the base arguments ``forget_weight,
    retain_weight, retain_loss, mask, seed``)."""
    from lightning_unlearn import METHODS
    from lightning_unlearn.configs import build_nested

    return METHODS.get(method_name(name))(**{"seed": seed, **build_nested(kwargs)})


class StopAfter:
    """A Lightning callback (built lazily) that stops ``fit`` once ``seconds`` have passed since ``start`` (a
    ``time.perf_counter()`` value: the run's start, so that a method's setup, such as TRU writing its targets, counts;
    ``None``: since training started)."""

    def __new__(cls, seconds: float | None, start: float | None = None):
        import lightning.pytorch as pl

        class _Stop(pl.Callback):
            def __init__(self) -> None:
                self.start, self.stopped = start, False

            def on_train_start(self, trainer, pl_module) -> None:
                if self.start is None:
                    self.start = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                if seconds is not None and time.perf_counter() - self.start > seconds:
                    trainer.should_stop, self.stopped = True, True

        return _Stop()


class EpochSnapshots:
    """A Lightning callback (built lazily) keeping, at every training-epoch end, the step count, the seconds since
    ``start`` (a ``time.perf_counter()`` value: the run's start, so that a method's setup counts) and a CPU copy of
    the network's weights (``snapshots``)."""

    def __new__(cls, network: Any, start: float):
        import lightning.pytorch as pl

        class _Snapshots(pl.Callback):
            def __init__(self) -> None:
                self.snapshots: list[dict[str, Any]] = []

            def on_train_epoch_end(self, trainer, pl_module) -> None:
                seconds = time.perf_counter() - start
                state = {k: v.detach().to("cpu", copy=True) for k, v in network.state_dict().items()}
                self.snapshots.append({"epoch": trainer.current_epoch + 1, "steps": int(trainer.global_step), "seconds": seconds, "state": state})

        return _Snapshots()


class StepTimes:
    """A Lightning callback recording the wall time at every training-batch end (built lazily)."""

    def __new__(cls):
        import lightning.pytorch as pl

        class _Times(pl.Callback):
            def __init__(self) -> None:
                self.stamps: list[float] = []
                self.start = None

            def on_train_start(self, trainer, pl_module) -> None:
                self.start = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                self.stamps.append(time.perf_counter())

        return _Times()


def run_method(
    name: str,
    hp: dict[str, Any],
    scale: str,
    seed: int,
    backbone: Backbone,
    target_path: str | None,
    time_limit: float | None,
    max_steps: int | None = None,
    datamodule_fn: Any = None,
    snapshots: bool = False,
):
    """Unlearn the cached target with ``name``; returns ``(model, seconds, info)``.

    ``snapshots=True`` adds ``info["snapshots"]``: per pass (epoch), its step count, the seconds since the timed
    region began and a CPU copy of the weights (:class:`EpochSnapshots`), for a curve against passes.

    The timed region covers building the method (TRU's reasoning model included), the data, the model and the
    ``UnlearningModule`` (loading the target's weights), the Trainer and the whole ``Trainer.fit`` (reference copies,
    the method's setup — TRU writes its targets there — and every step; with ``snapshots``, also the copies of the
    weights after each pass, ~1 s each). A reasoner's disk cache is switched off, so that every target a row uses
    is written, and timed, in its own run. ``time_limit`` counts from the same start.
    ``datamodule_fn(collator, batch_size, retain_batch_size)`` replaces B2's fictitious-author data (B3 passes its
    Wikipedia data); ``target_path=None`` unlearns the backbone's own weights (the pretrained model).
    """
    import lightning.pytorch as pl
    import torch

    from lightning_unlearn import UnlearningModule
    from lightning_unlearn.methods import IdkAnswers
    from lightning_unlearn.tasks import CausalLMTask

    pl.seed_everything(seed, verbose=False)
    start = time.perf_counter()
    method = build_method(name, hp["method"], seed)
    if getattr(getattr(method, "reasoner", None), "cache_dir", None) is not None:
        method.reasoner.cache_dir = None
    alternative = getattr(method, "alternative", None)
    collator = backbone.collator(alternatives={alternative: IdkAnswers(seed=seed)} if isinstance(alternative, str) else None)
    if datamodule_fn is not None:
        dm = datamodule_fn(collator, hp["batch_size"], hp.get("retain_batch_size"))
    else:
        dm = make_datamodule(scale, seed, collator, "forget_retain", hp["batch_size"], hp.get("retain_batch_size"))
        expected = make_data(scale, seed)
        if [e["id"] for e in dm.forget_set.examples] != [e["id"] for e in expected["forget"]]:
            raise RuntimeError("FictitiousAuthorsDataModule's forget split differs from the benchmark's (make_data)")
    stop, times = StopAfter(time_limit, start), StepTimes()
    steps = hp.get("max_steps", -1) if max_steps is None else max_steps
    model = backbone.build()
    callbacks = [stop, times] + ([EpochSnapshots(model, start)] if snapshots else [])
    module = UnlearningModule(
        model,
        method,
        task=CausalLMTask(tokenizer=backbone.tokenizer),  # TRU writes its reasoning targets with the task's tokenizer
        optimizer=functools.partial(torch.optim.AdamW, lr=hp["lr"], weight_decay=hp["weight_decay"]),
        original=target_path,
        monitor=False,  # the benchmark scores every model itself; the monitor's two passes would count as unlearning time
    )
    trainer = benchmarking.quiet_trainer(max_epochs=hp["epochs"] if max_steps is None else 1_000, max_steps=steps, callbacks=callbacks)
    trainer.fit(module, datamodule=dm)
    seconds = time.perf_counter() - start
    stamps = [times.start, *times.stamps] if times.start is not None else []
    info = {
        "steps": int(trainer.global_step),
        "setup_seconds": (times.start - start) if times.start is not None else None,
        "step_seconds": [b - a for a, b in zip(stamps, stamps[1:])],
        "stopped_by_time_limit": stop.stopped,
        "forget_size": dm.sizes()["forget"],
    }
    generation = getattr(getattr(method, "reasoner", None), "generation_seconds", None)
    if generation is not None:  # TRU's ModelReasoner: the seconds spent writing targets (inside `seconds`)
        info["target_generation_seconds"] = generation
        info["target_sources"] = dict(method.reasoner.sources)
    if snapshots:
        info["snapshots"] = callbacks[-1].snapshots
    return model.eval(), seconds, info


# ----------------------------------------------------------------------------------------------------------
# Script helpers
# ----------------------------------------------------------------------------------------------------------


def quiet_llm_run() -> None:
    """Offline, quiet Lightning and transformers, no generation-flag warnings (every LLM benchmark script)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    benchmarking.quiet_lightning()
    import warnings

    warnings.filterwarnings("ignore", message=".*generation flags are not valid.*")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def finite(value: Any) -> Any:
    """NaN and infinities -> None, recursively (strict JSON): the library's ``json_safe``."""
    from lightning_unlearn._json import json_safe

    return json_safe(value)


# ----------------------------------------------------------------------------------------------------------
# Attacks (b2_attacks.py and b3_entity.py)
# ----------------------------------------------------------------------------------------------------------


def probe_multiturn(model, tokenizer, heldout, retain, probes, spec, max_new_tokens: int, batch_size: int, generate_fn=None):
    """``MultiTurnProbe`` built from ``spec`` (kinds, k_context, languages, context_answers) on the held-out forget
    examples; returns its metrics and the forget-probe records (benign records left out). Shared by b2_attacks.py and b3_entity.py."""
    from lightning_unlearn.attacks import MultiTurnProbe

    probe = MultiTurnProbe(
        kinds=spec["kinds"],
        k_context=spec["k_context"],
        languages=spec["languages"],
        context_answers=spec["context_answers"],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=0,
    )
    out = probe.evaluate(model, tokenizer, heldout, retain_examples=retain, probes=probes, generate_fn=generate_fn)
    records = [
        {k: r[k] for k in ("kind", "index", "answer", "target", "correct", "refusal")}
        for r in out["records"]
        if not r["kind"].startswith("benign")
    ]
    return {"metrics": out["metrics"], "records": records}


def rec(before: float, unlearned: float, attacked: float) -> float:
    """:func:`lightning_unlearn.attacks.recovery` as a float, with tolerance 1e-6 (NaN when nothing was forgotten)."""
    from lightning_unlearn.attacks import recovery

    return float(recovery(before=before, unlearned=unlearned, attacked=attacked, tolerance=1e-6))



# ----------------------------------------------------------------------------------------------------------
# Several seeds
# ----------------------------------------------------------------------------------------------------------

#: The columns of :func:`seed_table`: (header, where the value is in a row, digits).
SEED_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("forget ROUGE", "metrics.forget_rouge", 3),
    ("forget quality", "metrics.forget_quality", 3),
    ("MU / target", "metrics.mu_ratio_to_target", 2),
    ("GK acc", "metrics.gk_acc", 2),
    ("MIA LOSS", "metrics.mia_loss", 2),
    ("gibberish", "metrics.gibberish", 2),
    ("time / FT (same run)", "time_ratio_to_finetune_same_run_estimate", 3),
)


def same_run_ratio(row: dict[str, Any], seconds: float) -> float | None:
    """``seconds`` (e.g. a pass of ``row``'s curve) as a fraction of the same-run fine-tuning estimate of the run that
    produced ``row`` (from the row's own ratio and seconds: a rerun row was timed against its own run); ``None``
    where the run measured no estimate."""
    ratio, total = row.get("time_ratio_to_finetune_same_run_estimate"), row.get("seconds")
    return None if ratio is None or not total else seconds * ratio / total


def curves_from_run_start(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` (one B2 run) with every curve point timed from the run's start, as :func:`run_method` times them
    now (``"clock": "run"``). Older runs timed a pass from the start of training: their points get the row's
    ``setup_seconds`` (model, module and method setup) added, and their time ratios rescaled. Idempotent."""
    for row in payload.get("rows", []):
        setup = row.get("budget", {}).get("setup_seconds") or 0.0
        ratio, seconds = row.get("time_ratio_to_finetune"), row.get("seconds")
        for pt in row.get("curve", []):
            if pt.get("clock") != "run":
                pt["seconds"] += setup
                if ratio is not None and seconds:
                    pt["time_ratio_to_finetune"] = pt["seconds"] * ratio / seconds
                pt["clock"] = "run"
    return payload


def _combine_seed(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs of one seed as one: the rows of every run, a later run's row replacing an earlier one's of the same name
    (a rerun of one row); the first run's config. Raises ``ValueError`` if the runs' data differ."""
    prints = {p["config"].get("data_fingerprint") for p in payloads}
    if len(prints) != 1:
        raise ValueError(f"runs of seed {payloads[0]['config']['seed']} should share their data, got fingerprints {sorted(map(str, prints))}.")
    rows: dict[str, dict[str, Any]] = {}
    checks: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[dict[str, Any]]] = {}
    for p in payloads:
        ran = {r["method"]: r for r in p["rows"] if "metrics" in r}
        rows.update(ran)
        check = p.get("target_check", {})
        for name in ran:  # a rerun row's checks replace the earlier run's (or go, if it has none)
            for kind, store in (("rows", checks), ("curves", curves)):
                store.pop(name, None)
                if name in check.get(kind, {}):
                    store[name] = check[kind][name]
    return {**payloads[0], "rows": list(rows.values()), "target_check": {"rows": checks, "curves": curves}}


def merge_seeds(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows of several B2 runs merged by row name over seeds: per row, each :data:`SEED_COLUMNS` value per seed and
    its mean and sample std, how many seeds met B2's target (each run's ``target_check``, timed against its
    same-run fine-tuning estimate), and (rows with a curve) the curve's points per pass
    averaged over seeds. Runs of the same seed are combined first, a later run's row replacing an earlier one's (a
    rerun of one row). Raises ``ValueError`` if the payloads differ in scale or a seed's runs in data."""
    scales = {p["scale"] for p in payloads}
    if len(scales) != 1:
        raise ValueError(f"`payloads` should share one scale, got {sorted(scales)}.")
    by_seed: dict[int, list[dict[str, Any]]] = {}
    for p in payloads:
        by_seed.setdefault(p["config"]["seed"], []).append(curves_from_run_start(p))
    payloads = [_combine_seed(runs) for runs in by_seed.values()]
    seeds = list(by_seed)
    names: list[str] = []
    for p in payloads:
        names += [r["method"] for r in p["rows"] if r["method"] not in names and "metrics" in r]
    merged: dict[str, Any] = {"seeds": seeds, "scale": scales.pop(), "rows": {}}
    for name in names:
        rows = [next((r for r in p["rows"] if r["method"] == name and "metrics" in r), None) for p in payloads]
        present = [(s, r) for s, r in zip(seeds, rows) if r is not None]
        runs = [p for p, r in zip(payloads, rows) if r is not None]
        entry: dict[str, Any] = {"seeds": [s for s, _ in present], "columns": benchmarking.column_stats([r for _, r in present], SEED_COLUMNS)}
        # the run's own target check (b2_llm.py's `target_check`), with the time of the same-run fine-tuning estimate
        checks = [p.get("target_check", {}).get("rows", {}).get(name) or {} for p in runs]
        entry["met_target"] = sum(bool(c.get("forget_quality_and_utility") and c.get("within_time_same_run")) for c in checks)
        generation = [r.get("budget", {}).get("target_generation_seconds") for _, r in present]
        if any(g is not None for g in generation):
            entry["target_generation_seconds"] = generation
            entry["targets_by_model"] = [
                sum(v == "model" for v in r["budget"].get("target_sources", {}).values()) for _, r in present
            ]
            entry["targets"] = [len(r["budget"].get("target_sources", {})) for _, r in present]
        curve_checks = [p.get("target_check", {}).get("curves", {}).get(name) or [] for p in runs]
        curves = []
        for (_, r), checks in zip(present, curve_checks):
            if not r.get("curve"):
                continue
            curves.append([
                {**pt, "time_ratio_same_run": same_run_ratio(r, pt["seconds"]), "check": next((c for c in checks if c["passes"] == pt["passes"]), None)}
                for pt in r["curve"]
            ])  # fmt: skip
        if curves:
            passes = sorted({pt["passes"] for c in curves for pt in c})
            entry["curve"] = []
            for k in passes:
                points = [pt for c in curves for pt in c if pt["passes"] == k]
                summary: dict[str, Any] = {"passes": k, "n": len(points)}
                for key in ("forget_quality", "mu_ratio_to_target", "forget_rouge", "mia_loss", "time_ratio_same_run"):
                    values = [math.nan if pt.get(key) is None else pt[key] for pt in points]
                    summary[key] = benchmarking.mean_std([v for v in values if not math.isnan(v)])
                    summary[f"{key}_values"] = values
                checked = [pt["check"] for pt in points if pt["check"] is not None]
                summary["checked"] = len(checked)
                summary["met_target"] = sum(bool(c.get("forget_quality_and_utility") and c.get("within_time_same_run")) for c in checked)
                entry["curve"].append(summary)
        merged["rows"][name] = entry
    return merged


def seed_table(merged: dict[str, Any]) -> str:
    """The markdown table of :func:`merge_seeds` (mean ± std over seeds; the last column counts the seeds that met
    B2's target, with the same-run time ratio)."""
    header = ["Row", *(h for h, _, _ in SEED_COLUMNS), "met target"]
    body = []
    for name, entry in merged["rows"].items():
        cells = [benchmarking.fmt_pm(entry["columns"][h]["mean"], entry["columns"][h]["std"], d) for h, _, d in SEED_COLUMNS]
        body.append([name, *cells, f"{entry['met_target']}/{len(entry['seeds'])}"])
    return benchmarking.markdown_table(header, body)


def curve_table(merged: dict[str, Any]) -> str:
    """The markdown table of every curve of :func:`merge_seeds` (mean ± std over seeds per pass)."""
    body = []
    for name, entry in merged["rows"].items():
        for pt in entry.get("curve", []):
            body.append([
                name, pt["passes"], pt["n"], benchmarking.fmt_pm(*pt["forget_quality"], 3), benchmarking.fmt_pm(*pt["mu_ratio_to_target"], 2),
                benchmarking.fmt_pm(*pt["forget_rouge"], 3), benchmarking.fmt_pm(*pt["mia_loss"], 2), benchmarking.fmt_pm(*pt["time_ratio_same_run"], 3),
                f"{pt['met_target']}/{pt['checked']}" if pt.get("checked") else "–",
            ])  # fmt: skip
    header = ["Row", "passes", "seeds", "forget quality", "MU / target", "forget ROUGE", "MIA LOSS", "time / FT (same run)", "met target"]
    return benchmarking.markdown_table(header, body)


def plot_curves(merged: dict[str, Any], path: Path) -> Path | None:
    """Forget quality and MU / target against passes (each seed, and the mean) for every row with a curve, saved to
    ``path`` (PNG); ``None`` without matplotlib or without a curve."""
    curves = {name: e["curve"] for name, e in merged["rows"].items() if e.get("curve")}
    if not curves:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (name, curve) in enumerate(curves.items()):
        passes = [pt["passes"] for pt in curve]
        for ax, key in zip(axes, ("forget_quality", "mu_ratio_to_target")):
            per_seed = list(zip(*(pt[f"{key}_values"] for pt in curve)))  # one line per seed (when every pass has all)
            for j, values in enumerate(per_seed if all(pt["n"] == len(per_seed) for pt in curve) else []):
                ax.plot(passes, values, color=f"C{i}", alpha=0.35, lw=1, label=f"{name}: each seed" if j == 0 else None)
            ax.plot(passes, [pt[key][0] for pt in curve], color=f"C{i}", marker="o", lw=2, label=f"{name}: mean")
    axes[0].axhline(TARGET_CHECK["forget_quality"], ls="--", c="gray", label="B2 target")
    axes[0].set(xlabel="passes over the forget set", ylabel="forget quality (KS p-value)", yscale="log", title="Forget quality")
    axes[1].axhline(TARGET_CHECK["mu_ratio_to_target"], ls="--", c="gray", label="B2 target")
    axes[1].set(xlabel="passes over the forget set", ylabel="model utility / target's", title="Model utility")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"B2, SmolLM2-135M-Instruct, seeds {merged['seeds']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
