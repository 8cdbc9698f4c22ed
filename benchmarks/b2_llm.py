#!/usr/bin/env python
"""Benchmark B2 — TOFU-style unlearning of fictitious authors on a real pretrained LM (SmolLM2-135M-Instruct).

Protocol (TOFU, Maini et al., arXiv:2401.06121, on our own seeded fictitious-author generator):

1. **Data.** ``generate_authors`` + ``qa_pairs`` (one short QA pair per fact, a paraphrased answer and
   perturbed (false) answers per pair), split *by author* with ``split_authors``: forget 10%, holdout 10%
   (never trained on; the non-members of the membership-inference attacks), retain the rest.
2. **Target and oracle.** The pretrained model is fine-tuned (full weights, AdamW) on forget + retain (the
   *target*) and, with the same recipe, on retain only (the *oracle*). Both are cached on disk under
   ``benchmarks/.cache/b2`` keyed by a hash of their recipe and data, with their training seconds.
3. **Unlearning.** Every method runs through ``UnlearningModule`` + ``Trainer.fit`` from the cached target on
   paired forget/retain batches (``mode="min_size"``: one epoch = one pass over the forget set), with a small
   budget (the target is ≤ 10% of the target's fine-tuning time); settings are the papers' / open-unlearning's
   defaults unless :data:`HPARAMS` says otherwise.
4. **Metrics** (every row, target and oracle included): ROUGE-L recall of greedy answers on forget and retain,
   answer probability P(a|q)^(1/|a|), truth ratio (TOFU's *code* convention, ``perturbed_mean="geometric"``:
   the geometric mean of the perturbed answers' per-token probabilities over the paraphrased answer's),
   forget quality (KS-test p-value of the forget truth ratios against the oracle's), model utility (harmonic
   mean of retain answer probability, retain ROUGE-L, retain truth-ratio score and general-knowledge accuracy
   on the probes the *pretrained* model answers correctly), MIA AUC forget vs. holdout for LOSS, zlib, Min-K%
   and Min-K%++ (k = 0.2), gibberish rate of the forget generations, seconds, seconds / fine-tuning seconds,
   peak RSS, and two example generations per row. The scores come from the package's evaluator
   (:class:`lightning_unlearn.evaluation.llm.TofuEvaluator`), the same code ``lightning-unlearn test`` runs on a
   ``configs/authors_smollm2`` config (:class:`lightning_unlearn.callbacks.LLMEvaluation`).

Scales: ``--quick`` = a tiny Llama (``tiny_llama``, 2 layers) with a BPE tokenizer trained on the generated
texts, first "pretrained" on the general-knowledge probes (so that general knowledge exists to be kept), a
handful of authors; a couple of minutes on 2 cores. Default (full) = SmolLM2-135M-Instruct (fp32,
``load_smollm2``), 40 authors × 6 facts = 240 QA pairs.

``--estimate`` measures the full run's costs (a few fine-tuning steps, one evaluation, a few unlearning steps
of chosen methods) without running it, and extrapolates its wall time.

Run from the repository root::

    python benchmarks/b2_llm.py --quick
    python benchmarks/b2_llm.py --estimate          # full-scale costs, ~3 minutes
    python benchmarks/b2_llm.py                     # full scale
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import inspect
import json
import math
import os
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

# ----------------------------------------------------------------------------------------------------------
# Scales
# ----------------------------------------------------------------------------------------------------------

#: Everything that defines a scale.
#: ``data``: the generator's settings (``split_authors``: forget 10%, holdout 10%).
#: ``pretrain``: quick scale only, the tiny model's "pretraining" on the general-knowledge probes.
#: ``train``: the recipe shared by target and oracle (AdamW, constant lr, batch 8, mean answer-token NLL).
#: ``eval``: ``max_retain`` caps the retain evaluation set at a fixed seeded subset (forget and holdout are
#: whole); ``max_new_tokens`` of greedy answers; ``batch_size`` of the likelihood passes.
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
    "full": {
        "model": {"kind": "smollm2"},
        "data": {"n_authors": 40, "facts_per_author": 6, "n_perturbed": 3, "forget_fraction": 0.1, "holdout_fraction": 0.1},
        "pretrain": None,  # SmolLM2-135M-Instruct as released (dequantized Q4_1, see load_smollm2)
        "train": {"epochs": 5, "lr": 1e-4, "batch_size": 8, "weight_decay": 0.01, "replay_probes": False},
        "max_length": 96,
        "eval": {"max_retain": 48, "max_new_tokens": 24, "batch_size": 16, "gen_batch_size": 16},
        "unlearn_batch_size": 8,
    },
}

#: Bump to invalidate every cached model of this benchmark (e.g. after a change of the training code).
RECIPE_VERSION = 1

#: The LLM unlearning methods of the library (GA, GradDiff and NPO are generic methods that also apply).
LLM_METHODS = ("ga", "graddiff", "npo", "simnpo", "idk", "idk_dpo", "rmu", "pmc", "tru", "asu")

# ----------------------------------------------------------------------------------------------------------
# Per-method settings
# ----------------------------------------------------------------------------------------------------------
#
# HPARAMS[scale][method] = {
#     "lr":         AdamW learning rate (weight decay 0.01, constant, as open-unlearning's finetune trainer),
#     "epochs":     passes over the forget set (mode="min_size": each forget batch paired with a retain batch),
#     "max_steps":  optional cap on optimizer steps,
#     "method":     keyword arguments of the method's constructor (anything not given: the class default,
#                   which follows the paper / open-unlearning: NPO beta 0.1, SimNPO beta 4.5 gamma 0.125,
#                   IdK-DPO beta 0.1, RMU layer 7 c 2, ASU tau 2, PMC retain weight 1.25, ...).
# }
# NOT TUNED: the values below are choices made once (budget and scale), not the result of a search.
DEFAULT_HP: dict[str, dict[str, Any]] = {
    # tiny model fine-tuned at 3e-3: unlearning at 1e-3 for 5 passes over the 15 forget pairs (2 batches: 10 steps)
    "quick": {"lr": 1e-3, "epochs": 5, "max_steps": -1, "weight_decay": 0.01, "method": {}},
    # SmolLM2 fine-tuned at 1e-4 for 5 epochs (135 steps, ~5 min): the unlearning budget is ~10% of that time,
    # i.e. 2 passes over the 24 forget pairs = 6 steps, each forget batch of 8 paired with a retain batch of 4
    # (~4.5 s a step with a reference forward). open-unlearning's 1e-5 over 10 epochs of TOFU forget10
    # (~125 steps) does not fit, so the lr is raised to the fine-tuning lr.
    "full": {"lr": 1e-4, "epochs": 2, "max_steps": -1, "weight_decay": 0.01, "retain_batch_size": 4, "method": {}},
}
HPARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "ga": {"epochs": 3},  # no retain term: fewer steps, as GA collapses fastest
        "rmu": {"method": {"layer": 1}},  # the tiny Llama has 2 decoder layers (default 7)
        "pmc": {"method": {"max_new_tokens": 24, "num_samples": 4}},  # answers are ~12 tokens
        "tru": {"method": {"max_target_length": 64}},
        "roka": {"method": {"layer": "model.norm"}},  # no "penultimate" module in a Llama
    },
    "full": {
        "ga": {"epochs": 4},  # forget batch only (~2.3 s a step), so more passes in the same time
        # answers are ~15 tokens; sampling 4 x 8 answers each step (~12 s a step) makes PMC the costliest: one pass
        "pmc": {"epochs": 1, "method": {"max_new_tokens": 24, "num_samples": 4}},
        "tru": {"method": {"max_target_length": 96}},
        "roka": {"method": {"layer": "model.norm"}},
        # PMC outside the budget: five passes (15 steps, ~50% of the fine-tuning time), to show what the
        # one-pass row cannot: whether self-training on its own answers forgets when given the steps
        "pmc+long": {"epochs": 5, "time_limit": 1.0, "method": {"max_new_tokens": 24, "num_samples": 4}},
    },
}
HPARAMS["quick"]["pmc+long"] = {"epochs": 25, "time_limit": 1.0, "method": HPARAMS["quick"]["pmc"]["method"]}

#: Extra rows: a registered method run with other settings, named ``<method>+<variant>`` (its settings are the
#: HPARAMS entry of that name; ``time_limit`` there overrides ``--time-limit`` for the row).
VARIANTS = ("pmc+long",)

#: BENCHMARKS.md's B2 target: forget quality >= 0.05 with model utility >= 0.95 x the target's in <= 10% of the
#: fine-tuning time.
TARGET_CHECK = {"forget_quality": 0.05, "mu_ratio_to_target": 0.95, "time_ratio_to_finetune": 0.10}

TARGET, ORACLE, PRETRAINED = "target", "oracle", "pretrained"


def method_name(row: str) -> str:
    """The registered method behind a row name (``"pmc+long"`` -> ``"pmc"``)."""
    return row.split("+", 1)[0]


def resolve_hparams(scale: str, method: str) -> tuple[dict[str, Any], bool]:
    entry = HPARAMS.get(scale, {}).get(method)
    defaults = {**DEFAULT_HP[scale], "batch_size": SCALES[scale]["unlearn_batch_size"]}
    return _common.merge_hparams(defaults, entry), entry is not None


def default_methods(group: str = "all") -> list[str]:
    """``"llm"``: :data:`LLM_METHODS`; ``"all"``: every registered method whose ``supported_tasks`` include
    ``"causal_lm"`` (except ``retrain``, the oracle row), the LLM ones first."""
    from lightning_unlearn import METHODS

    if group == "llm":
        names = [m for m in LLM_METHODS if m in METHODS.names()]
    else:
        registered = [m for m in METHODS.names() if m != "retrain" and "causal_lm" in METHODS.get(m).supported_tasks]
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


config_hash = _common.config_hash


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


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so that the next block's
    peak RSS is not inflated by memory an earlier row freed but the allocator kept."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """Peak resident set size of this process during a ``with`` block (psutil, sampled every 50 ms).

    Process-wide: it includes whatever the process already holds when the block starts (the tokenizer, cached
    data, memory the allocator kept); :func:`release_memory` is called first to keep that small.

    Falls back to ``resource.getrusage`` (the process's lifetime peak, not the block's) without psutil.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _rss(self) -> int:
        return self._proc.memory_info().rss

    def __enter__(self) -> PeakRSS:
        release_memory()
        try:
            import psutil

            self._proc = psutil.Process()
            self.peak = self._rss()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        except ImportError:
            self._proc = None
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: Any) -> None:
        if self._proc is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self._rss())
        else:
            import resource

            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    @property
    def mb(self) -> float:
        return self.peak / 2**20


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
    trainer = _common.quiet_trainer(max_epochs=train["epochs"], max_steps=steps if steps is not None else -1)
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
    _common.write_json(meta, info)
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
    _common.write_json(path, {"questions": [p.question for p in known], "of": len(GENERAL_KNOWLEDGE)})
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


def build_method(name: str, kwargs: dict[str, Any], seed: int, tokenizer: Any):
    from lightning_unlearn import METHODS

    cls = METHODS.get(method_name(name))
    params = inspect.signature(cls.__init__).parameters
    kwargs = dict(kwargs)
    if "seed" in params and "seed" not in kwargs:
        kwargs["seed"] = seed
    if "tokenizer" in params and "tokenizer" not in kwargs:
        kwargs["tokenizer"] = tokenizer  # TRU writes its reasoning targets with the model's tokenizer
    return cls(**kwargs)


class StopAfter:
    """A Lightning callback (built lazily) that stops ``fit`` once ``seconds`` have passed since fit started."""

    def __new__(cls, seconds: float | None):
        import lightning.pytorch as pl

        class _Stop(pl.Callback):
            def __init__(self) -> None:
                self.start, self.stopped = None, False

            def on_train_start(self, trainer, pl_module) -> None:
                self.start = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                if seconds is not None and time.perf_counter() - self.start > seconds:
                    trainer.should_stop, self.stopped = True, True

        return _Stop()


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
):
    """Unlearn the cached target with ``name``; returns ``(model, seconds, info)``.

    The timed region covers building the model and the ``UnlearningModule`` (loading the target's weights), the
    Trainer and the whole ``Trainer.fit`` (reference copies, the method's setup, every step).
    ``datamodule_fn(collator, batch_size, retain_batch_size)`` replaces B2's fictitious-author data (B3 passes its
    Wikipedia data); ``target_path=None`` unlearns the backbone's own weights (the pretrained model).
    """
    import lightning.pytorch as pl
    import torch

    from lightning_unlearn import UnlearningModule
    from lightning_unlearn.methods import IdkAnswers
    from lightning_unlearn.tasks import CausalLMTask

    pl.seed_everything(seed, verbose=False)
    method = build_method(name, hp["method"], seed, backbone.tokenizer)
    alternative = getattr(method, "alternative", None)
    collator = backbone.collator(alternatives={alternative: IdkAnswers(seed=seed)} if isinstance(alternative, str) else None)
    if datamodule_fn is not None:
        dm = datamodule_fn(collator, hp["batch_size"], hp.get("retain_batch_size"))
    else:
        dm = make_datamodule(scale, seed, collator, "forget_retain", hp["batch_size"], hp.get("retain_batch_size"))
        expected = make_data(scale, seed)
        if [e["id"] for e in dm.forget_set.examples] != [e["id"] for e in expected["forget"]]:
            raise RuntimeError("FictitiousAuthorsDataModule's forget split differs from the benchmark's (make_data)")
    stop, times = StopAfter(time_limit), StepTimes()
    steps = hp.get("max_steps", -1) if max_steps is None else max_steps
    start = time.perf_counter()
    model = backbone.build()
    module = UnlearningModule(
        model,
        method,
        task=CausalLMTask(),
        optimizer=functools.partial(torch.optim.AdamW, lr=hp["lr"], weight_decay=hp["weight_decay"]),
        original=target_path,
    )
    trainer = _common.quiet_trainer(max_epochs=hp["epochs"] if max_steps is None else 1_000, max_steps=steps, callbacks=[stop, times])
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
    return model.eval(), seconds, info


# ----------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------

COLUMNS = [
    ("forget_rouge", "forget ROUGE", 3),
    ("retain_rouge", "retain ROUGE", 3),
    ("forget_prob", "forget prob", 3),
    ("retain_prob", "retain prob", 3),
    ("forget_truth_ratio", "forget TR", 3),
    ("retain_truth_ratio", "retain TR", 3),
    ("forget_quality", "forget quality", 3),
    ("gk_acc", "GK acc", 2),
    ("model_utility", "MU", 3),
    ("mu_ratio_to_target", "MU/target", 2),
    ("mia_loss", "MIA LOSS", 2),
    ("mia_zlib", "MIA zlib", 2),
    ("mia_min_k", "MIA Min-K", 2),
    ("mia_min_k_pp", "MIA Min-K++", 2),
    ("gibberish", "gibberish", 2),
]


def _fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and 0 < abs(value) < 10 ** (-digits):
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def format_table(payload: dict[str, Any]) -> str:
    header = ["Method", *(c[1] for c in COLUMNS), "steps", "seconds", "time / FT", "peak RSS (GB)"]
    rows = []
    for row in payload["rows"]:
        m = row.get("metrics", {})
        if "error" in row:
            rows.append([row["method"], f"ERROR: {row['error'].splitlines()[-1][:80]}", *[""] * (len(header) - 2)])
            continue
        label = {TARGET: "target (no unlearning)", ORACLE: "oracle (retain only)"}.get(row["method"], row["method"])
        steps = row.get("budget", {}).get("steps")
        rows.append(
            [
                label + (" (time-limited)" if row.get("budget", {}).get("stopped_by_time_limit") else ""),
                *(_fmt(m.get(k), d) for k, _, d in COLUMNS),
                "–" if steps is None else str(steps),
                _fmt(row.get("seconds"), 1),
                _fmt(row.get("time_ratio_to_finetune"), 3),
                _fmt(row.get("peak_rss_mb", math.nan) / 1024, 2),
            ]
        )
    title = f"### B2 ({payload['scale']}) — fictitious authors, forget {payload['config']['sizes']['forget']} QA pairs"
    notes = (
        "\n\nforget TR = mean min(R, 1/R) on forget (higher = true and false answers equally likely); retain TR = mean "
        "max(0, 1 - R) on retain; R with perturbed_mean='geometric'. forget quality = KS p-value vs the oracle's forget "
        "truth ratios. MU = harmonic mean(retain prob, retain ROUGE, retain TR, GK acc). MIA = ROC AUC forget vs holdout "
        "(0.5 = indistinguishable). time / FT = seconds / the target's fine-tuning seconds."
    )
    lines = [title, "", _common.markdown_table(header, rows)]
    examples = []
    for row in payload["rows"]:
        for ex in row.get("examples", [])[:2]:
            examples.append(f"- **{row['method']}** — Q: {ex['question']} | ref: {ex['reference']} | gen: {ex['generated']!r}")
    return "\n".join(lines) + notes + "\n\nExample generations (forget questions):\n\n" + "\n".join(examples)


def target_check(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Which rows meet :data:`TARGET_CHECK`, with the time ratio to the cached fine-tuning seconds and, where it was
    measured, to the same-run estimate of them (the cached time may come from a differently loaded machine)."""
    out: dict[str, Any] = {"criteria": dict(TARGET_CHECK), "rows": {}}
    for row in rows:
        if row["method"] in (TARGET, ORACLE) or "error" in row:
            continue
        m = row["metrics"]
        quality = m["forget_quality"] >= TARGET_CHECK["forget_quality"] and m["mu_ratio_to_target"] >= TARGET_CHECK["mu_ratio_to_target"]
        limit = TARGET_CHECK["time_ratio_to_finetune"]
        same_run = row.get("time_ratio_to_finetune_same_run_estimate")
        out["rows"][row["method"]] = {
            "forget_quality_and_utility": quality,
            "within_time_cached": row["time_ratio_to_finetune"] <= limit,
            "within_time_same_run": None if same_run is None else same_run <= limit,
            "met": quality and row["time_ratio_to_finetune"] <= limit,
        }
    out["met_by"] = [name for name, r in out["rows"].items() if r["met"]]
    out["quality_and_utility_only"] = [name for name, r in out["rows"].items() if r["forget_quality_and_utility"] and not r["met"]]
    return out


def format_target_check(check: dict[str, Any]) -> str:
    c = check["criteria"]
    head = f"Target (forget quality >= {c['forget_quality']}, MU >= {c['mu_ratio_to_target']} x target's, time <= {c['time_ratio_to_finetune']:.0%} of fine-tuning): "
    if check["met_by"]:
        return head + "met by " + ", ".join(check["met_by"]) + "."
    slow = check["quality_and_utility_only"]
    return head + "met by no method" + (f" (forget quality and utility met, over the time budget: {', '.join(slow)})." if slow else ".")


def write_payload(out_path: Path, args, scale: str, seed: int, methods: list[str], hparams, models, rows, extra, wall: float) -> dict[str, Any]:
    import torch

    data = make_data(scale, seed)
    sets = eval_sets(scale, seed)
    payload = {
        "benchmark": "B2",
        "scale": scale,
        "command": _common.command_line(),
        "git_commit": _common.git_commit(),
        "git_dirty": _common.git_dirty(),
        "versions": _common.versions("transformers", "tokenizers", "scipy", "psutil"),
        "config": {
            "scale": SCALES[scale],
            "seed": seed,
            "data_fingerprint": data["fingerprint"],
            "sizes": {k: len(data[k]) for k in ("forget", "retain", "holdout")},
            "eval_sizes": {k: len(v) for k, v in sets.items()},
            "author_ids": data["ids"],
            "methods": methods,
            "hparams": hparams,
            "torch_threads": torch.get_num_threads(),
            "metric_conventions": {
                "perturbed_template": args.perturbed_template,
                "truth_ratio": "TOFU code convention: perturbed_mean='geometric' (exp(mean_k mean-token log p(perturbed_k)) / "
                "p(paraphrased)^(1/|a|)); forget summary mean min(R,1/R), retain summary mean max(0,1-R)",
                "forget_quality": "scipy ks_2samp p-value, forget truth ratios of the row vs the oracle's",
                "model_utility": "harmonic mean of retain_prob, retain_rouge, retain_truth_ratio, gk_acc",
                "gk_acc": "greedy answers to the GENERAL_KNOWLEDGE probes the pretrained model answers correctly "
                "(filter_known, selected once), probe_correct containment match",
                "rouge": "ROUGE-L recall of the greedy answer vs the reference answer, no stemming",
                "answer_prob": "exp(mean answer-token log-likelihood), answer tokens include EOS",
                "mia": "ROC AUC, forget (members) vs holdout authors (never trained on), scores on answer tokens, k = 0.2",
                "time_ratio_to_finetune": "row seconds / the target's cached fine-tuning seconds",
            },
            **extra,
            "cached_models": models,
            "wall_seconds": wall,
        },
        "target_check": target_check(rows),
        "rows": rows,
    }
    payload = _finite(payload)
    _common.write_json(out_path, payload)
    return payload


def _finite(value: Any) -> Any:
    """NaN and infinities -> None, recursively (strict JSON): the library's ``json_safe``."""
    from lightning_unlearn._json import json_safe

    return json_safe(value)


# ----------------------------------------------------------------------------------------------------------
# Cost estimate (full scale without running it)
# ----------------------------------------------------------------------------------------------------------


def estimate(args, scale: str, seed: int, cache_dir: Path, methods: list[str], log) -> dict[str, Any]:
    """Time a few fine-tuning steps, one evaluation and a few unlearning steps of ``--estimate-methods``, and
    extrapolate the whole run. Unlearning steps start from the *pretrained* model (the target may not exist yet):
    a step costs the same whatever the weights."""
    import torch

    backbone = Backbone(scale, seed, cache_dir)
    data = make_data(scale, seed)
    train = SCALES[scale]["train"]
    report: dict[str, Any] = {"sizes": {k: len(data[k]) for k in ("forget", "retain", "holdout")}}
    if scale == "full":  # a target already trained with this recipe: its real fine-tuning seconds
        key = config_hash(model_config(TARGET, scale, seed, backbone, None))
        meta = cache_dir / "b2" / f"{TARGET}-{key}.json"
        if meta.is_file():
            report["cached_target"] = {k: v for k, v in json.loads(meta.read_text()).items() if k != "config"}
    wall = time.perf_counter()
    with PeakRSS() as rss:
        ft = finetune_seconds_now(scale, seed, backbone, None, steps=args.estimate_steps)
    n_oracle_steps = train["epochs"] * math.ceil(len(training_examples(ORACLE, scale, seed)) / train["batch_size"])
    report["finetune"] = {**ft, "peak_rss_mb": rss.mb, "oracle_steps": n_oracle_steps, "oracle_estimate_seconds": ft["seconds_per_step"] * n_oracle_steps}
    log(f"[b2] fine-tuning: {ft['seconds_per_step']:.2f} s/step x {ft['steps']} steps = {ft['estimate_seconds'] / 60:.1f} min (target); oracle {n_oracle_steps} steps")
    # one evaluation of the pretrained model (known-probe selection included once)
    start = time.perf_counter()
    probes = known_probes(backbone, None, "smollm2" if scale == "full" else "est", cache_dir, SCALES[scale]["eval"]["gen_batch_size"])
    probe_seconds = time.perf_counter() - start
    model = load_model(backbone, None)
    start = time.perf_counter()
    with PeakRSS() as rss:
        res = evaluate(model, backbone, eval_sets(scale, seed), probes, scale, args.perturbed_template)
    eval_seconds = time.perf_counter() - start
    report["eval"] = {"seconds": eval_seconds, "peak_rss_mb": rss.mb, "known_probe_seconds": probe_seconds, "known_probes": len(probes), "pretrained_metrics": res["metrics"]}
    log(f"[b2] one evaluation: {eval_seconds:.1f}s ({len(probes)} known probes, selecting them took {probe_seconds:.1f}s)")
    del model
    # a few unlearning steps of chosen methods, from the pretrained weights
    pre = cache_dir / "b2" / "estimate-start.pt"
    pre.parent.mkdir(parents=True, exist_ok=True)
    torch.save(load_model(backbone, None).state_dict(), pre)
    per_method = {}
    for name in args.estimate_methods:
        hp, _ = resolve_hparams(scale, name)
        with PeakRSS() as rss:
            try:
                _, seconds, info = run_method(name, hp, scale, seed, backbone, str(pre), None, max_steps=1 + args.estimate_steps)
            except Exception as err:  # reported, not fatal
                per_method[name] = {"error": f"{type(err).__name__}: {err}"}
                continue
        steps = info["step_seconds"]
        per_step = sum(steps[1:]) / max(1, len(steps) - 1) if len(steps) > 1 else steps[0]
        n_forget_batches = math.ceil(info["forget_size"] / hp["batch_size"])
        planned = hp["epochs"] * n_forget_batches if hp.get("max_steps", -1) in (-1, None) else hp["max_steps"]
        per_method[name] = {
            "setup_seconds": info["setup_seconds"],
            "first_step_seconds": steps[0] if steps else None,
            "seconds_per_step": per_step,
            "step_seconds": steps,
            "planned_steps": planned,
            "planned_seconds": info["setup_seconds"] + (steps[0] if steps else 0) + per_step * (planned - 1),
            "peak_rss_mb": rss.mb,
        }
        log(f"[b2] {name}: setup {info['setup_seconds']:.1f}s, first step {steps[0]:.1f}s, then {per_step:.2f} s/step; planned {planned} steps")
    pre.unlink(missing_ok=True)
    report["methods"] = per_method
    # extrapolation
    measured = [v["planned_seconds"] for v in per_method.values() if "planned_seconds" in v]
    typical = statistics.median(measured) if measured else ft["estimate_seconds"] * 0.1
    unlearn_total = sum(per_method.get(m, {}).get("planned_seconds", typical) for m in methods)
    target_s, oracle_s = ft["estimate_seconds"], report["finetune"]["oracle_estimate_seconds"]
    if "cached_target" in report:  # a whole measured fine-tuning beats a few timed steps
        target_s = report["cached_target"]["seconds"]
        oracle_s = target_s * n_oracle_steps / ft["steps"]
    total = target_s + oracle_s + probe_seconds + (len(methods) + 2) * eval_seconds + unlearn_total
    report["extrapolation"] = {
        "methods": methods,
        "unmeasured_methods_assumed_seconds": typical,
        "target_seconds": target_s,
        "oracle_seconds": oracle_s,
        "finetune_seconds_source": "cached target's measured training" if "cached_target" in report else "timed steps x steps",
        "evaluations": len(methods) + 2,
        "eval_seconds_total": (len(methods) + 2) * eval_seconds,
        "unlearning_seconds_total": unlearn_total,
        "total_seconds": total,
        "total_seconds_cached_target_oracle": total - target_s - oracle_s,
        "budget_seconds_per_method_at_10pct": 0.1 * target_s,
    }
    report["measure_wall_seconds"] = time.perf_counter() - wall
    try:
        report["load_average"] = os.getloadavg()
    except OSError:
        pass
    return report


# ----------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="b2_llm.py",
        description=(
            "Benchmark B2: TOFU-style unlearning of fictitious authors. The pretrained model is fine-tuned on all "
            "authors but the holdout ones (target) and on the retain authors only (oracle), both cached on disk; every "
            "method unlearns the forget authors from the target with a small budget. Reports forget/retain ROUGE-L, "
            "answer probability, truth ratio, forget quality, model utility, MIA AUC (LOSS, zlib, Min-K%%, Min-K%%++), "
            "gibberish rate, time and peak memory."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="Tiny Llama + trained BPE tokenizer, 30 authors x 5 facts: about a minute on 2 cores (30 s with cached models). Default: SmolLM2-135M-Instruct, 40 authors x 6 facts.")
    parser.add_argument("--methods", nargs="+", default=None, help="Methods from lightning_unlearn.METHODS, or 'llm' (ga graddiff npo simnpo idk idk_dpo rmu pmc tru asu) or 'all' (every method whose supported_tasks include causal_lm, except retrain). ")
    parser.add_argument("--perturbed-template", choices=["paraphrase", "answer"], default="paraphrase", help="Wording of the perturbed answers of the truth ratio: 'paraphrase' = the false values in the paraphrased answer's template (TOFU's construction); 'answer' = qa_pairs' perturbed_answers as they are (the trained answer template).")
    parser.add_argument("--authors", type=int, default=None, help="Override the scale's number of fictitious authors (quick 30, full 40); forget and holdout stay 10%% each. Cached models are keyed by the data, so this trains new ones.")
    parser.add_argument("--facts", type=int, default=None, help="Override the scale's facts (QA pairs) per author (quick 5, full 6; at most 11).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the authors, the split, the training and the unlearning.")
    parser.add_argument("--out", default=None, help="Output JSON (default benchmarks/results/b2_<scale>.json, or b2_<scale>_estimate.json with --estimate).")
    parser.add_argument("--cache-dir", default=str(_common.BENCH_DIR / ".cache"), help="Where the pretrained (quick), target and oracle weights, the tokenizer (quick) and the known probes are cached.")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the whole run (0 = torch's default, all cores). Default: 1 at quick scale (tiny matrices; steadiest on a shared machine), 0 at full scale.")
    parser.add_argument("--time-limit", type=float, default=0.3, help="Stop a method's training once it has run this fraction of the target's fine-tuning seconds (a guard against runaway methods; the budget itself is set by HPARAMS epochs). 0 = no limit.")
    parser.add_argument("--calibrate-steps", type=int, default=3, help="Time this many fine-tuning steps now for a same-run estimate of the fine-tuning time (a second time ratio; 0 = skip).")
    parser.add_argument("--prepare-only", action="store_true", help="Only train/cache the pretrained (quick), target and oracle models, then exit.")
    parser.add_argument("--estimate", action="store_true", help="Measure the costs instead of running: a few fine-tuning steps, one evaluation, a few unlearning steps of --estimate-methods; extrapolate the whole run's wall time.")
    parser.add_argument("--estimate-methods", nargs="+", default=["npo", "pmc"], help="Methods whose unlearning steps --estimate times.")
    parser.add_argument("--estimate-steps", type=int, default=3, help="Timed steps (after one warm-up step) per measurement of --estimate.")
    parser.add_argument("--quiet", action="store_true", help="No progress lines (the final table is still printed).")
    return parser.parse_args(argv)


def resolve_methods(spec: list[str] | None, scale: str) -> list[str]:
    from lightning_unlearn import METHODS

    spec = spec or ["all"]
    out: list[str] = []
    for item in spec:
        for m in default_methods(item) if item in ("all", "llm") else [item]:
            METHODS.get(method_name(m))  # a clear error on a typo before anything trains
            if m not in out:
                out.append(m)
    return out


def quiet_llm_run() -> None:
    """Offline, quiet Lightning and transformers, no generation-flag warnings (shared with b2_attacks.py)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _common.quiet_lightning()
    import warnings

    warnings.filterwarnings("ignore", message=".*generation flags are not valid.*")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    quiet_llm_run()
    import torch

    scale = "quick" if args.quick else "full"
    if args.authors is not None:
        SCALES[scale]["data"]["n_authors"] = args.authors
    if args.facts is not None:
        SCALES[scale]["data"]["facts_per_author"] = args.facts
    threads = args.threads if args.threads is not None else (1 if scale == "quick" else 0)
    if threads > 0:
        torch.set_num_threads(threads)
    seed = args.seed
    methods = resolve_methods(args.methods, scale)
    cache_dir = Path(args.cache_dir)
    log = (lambda *a, **k: None) if args.quiet else functools.partial(print, flush=True)

    if args.estimate:
        out_path = Path(args.out) if args.out else _common.BENCH_DIR / "results" / f"b2_{scale}_estimate.json"
        report = estimate(args, scale, seed, cache_dir, methods, log)
        payload = {
            "benchmark": "B2",
            "scale": scale,
            "mode": "estimate",
            "command": _common.command_line(),
            "git_commit": _common.git_commit(),
            "versions": _common.versions("transformers", "tokenizers", "scipy", "psutil"),
            "config": {"scale": SCALES[scale], "seed": seed, "hparams": {m: resolve_hparams(scale, m)[0] for m in methods}, "torch_threads": torch.get_num_threads()},
            "estimate": report,
        }
        _common.write_json(out_path, _finite(payload))
        ex = report["extrapolation"]
        print(
            f"\nestimated full run: {ex['total_seconds'] / 60:.1f} min ({len(methods)} methods; fine-tuning target "
            f"{ex['target_seconds'] / 60:.1f} + oracle {ex['oracle_seconds'] / 60:.1f} min, {ex['evaluations']} evaluations "
            f"{ex['eval_seconds_total'] / 60:.1f} min, unlearning {ex['unlearning_seconds_total'] / 60:.1f} min); "
            f"with cached target/oracle {ex['total_seconds_cached_target_oracle'] / 60:.1f} min\nwrote {out_path}"
        )
        return payload

    out_path = Path(args.out) if args.out else _common.BENCH_DIR / "results" / f"b2_{scale}.json"
    wall = time.perf_counter()
    backbone = Backbone(scale, seed, cache_dir)
    models: dict[str, Any] = {}
    pretrained = None
    if SCALES[scale]["pretrain"] is not None:
        pretrained = get_trained(PRETRAINED, scale, seed, backbone, cache_dir, None, log)
        models[PRETRAINED] = {k: pretrained[k] for k in ("key", "seconds", "cached", "path")}
    target = get_trained(TARGET, scale, seed, backbone, cache_dir, pretrained, log)
    oracle = get_trained(ORACLE, scale, seed, backbone, cache_dir, pretrained, log)
    for kind, entry in ((TARGET, target), (ORACLE, oracle)):
        models[kind] = {k: entry[k] for k in ("key", "seconds", "cached", "path", "peak_rss_mb")}
    if args.prepare_only:
        log(f"[b2] prepared in {time.perf_counter() - wall:.1f}s")
        return {}
    ft_seconds = float(target["seconds"])
    extra: dict[str, Any] = {"finetune_seconds": ft_seconds}
    if args.calibrate_steps > 0:
        calib = finetune_seconds_now(scale, seed, backbone, pretrained["path"] if pretrained else None, steps=args.calibrate_steps)
        extra["finetune_calibration"] = calib
        log(f"[b2] fine-tuning now: {calib['seconds_per_step']:.3f} s/step -> {calib['estimate_seconds']:.1f}s (cached: {ft_seconds:.1f}s)")
    probe_key = pretrained["key"] if pretrained else "smollm2"
    probes = known_probes(backbone, pretrained["path"] if pretrained else None, probe_key, cache_dir, SCALES[scale]["eval"]["gen_batch_size"])
    extra["known_probes"] = [p.question for p in probes]
    log(f"[b2] {len(probes)} general-knowledge probes known by the pretrained model")
    sets = eval_sets(scale, seed)
    hparams = {m: dict(zip(("config", "hparams_entry"), resolve_hparams(scale, m))) for m in methods}
    rows: list[dict[str, Any]] = []

    def finish(row: dict[str, Any], result: dict[str, Any], oracle_ratios: list[float]) -> None:
        from lightning_unlearn.metrics.llm import forget_quality

        metrics = result["metrics"]
        metrics["forget_quality"] = forget_quality(result["forget_truth_ratios"], oracle_ratios)
        row["metrics"] = metrics
        row["forget_truth_ratios"] = result["forget_truth_ratios"]
        row["examples"] = result["examples"]
        rows.append(row)
        m = metrics
        log(
            f"[b2] {row['method']:10s} fROUGE={m['forget_rouge']:.3f} rROUGE={m['retain_rouge']:.3f} FQ={m['forget_quality']:.3g} "
            f"MU={m['model_utility']:.3f} MIA(loss)={m['mia_loss']:.2f} gib={m['gibberish']:.2f} "
            f"time={row.get('seconds', 0):.1f}s eval={row['eval_seconds']:.1f}s"
        )

    # oracle first: its forget truth ratios are the reference of forget quality
    start = time.perf_counter()
    res_oracle = evaluate(load_model(backbone, oracle["path"]), backbone, sets, probes, scale, args.perturbed_template)
    oracle_ratios = res_oracle["forget_truth_ratios"]
    row_oracle = {"method": ORACLE, "seconds": float(oracle["seconds"]), "time_ratio_to_finetune": float(oracle["seconds"]) / ft_seconds, "peak_rss_mb": oracle.get("peak_rss_mb", math.nan), "eval_seconds": time.perf_counter() - start}
    start = time.perf_counter()
    res_target = evaluate(load_model(backbone, target["path"]), backbone, sets, probes, scale, args.perturbed_template)
    row_target = {"method": TARGET, "seconds": 0.0, "time_ratio_to_finetune": 0.0, "peak_rss_mb": target.get("peak_rss_mb", math.nan), "eval_seconds": time.perf_counter() - start}
    finish(row_target, res_target, oracle_ratios)
    finish(row_oracle, res_oracle, oracle_ratios)
    target_mu = row_target["metrics"]["model_utility"]

    def mu_ratio(row: dict[str, Any]) -> None:
        row["metrics"]["mu_ratio_to_target"] = row["metrics"]["model_utility"] / target_mu if target_mu > 0 else math.nan

    mu_ratio(row_target)
    mu_ratio(row_oracle)
    for name in methods:
        hp = hparams[name]["config"]
        fraction = hp.get("time_limit", args.time_limit)
        time_limit = fraction * ft_seconds if fraction > 0 else None
        row: dict[str, Any] = {"method": name, "hparams_entry": hparams[name]["hparams_entry"]}
        try:
            with PeakRSS() as rss:
                model, seconds, info = run_method(name, hp, scale, seed, backbone, target["path"], time_limit)
            row.update(
                {
                    "seconds": seconds,
                    "time_ratio_to_finetune": seconds / ft_seconds,
                    "peak_rss_mb": rss.mb,
                    "budget": info,
                }
            )
            if "finetune_calibration" in extra:
                row["time_ratio_to_finetune_same_run_estimate"] = seconds / extra["finetune_calibration"]["estimate_seconds"]
            start = time.perf_counter()
            result = evaluate(model, backbone, sets, probes, scale, args.perturbed_template)
            row["eval_seconds"] = time.perf_counter() - start
            finish(row, result, oracle_ratios)
            mu_ratio(row)
            del model
        except Exception as err:  # a crash is a bug to report: keep it in the JSON and carry on
            row["error"] = f"{type(err).__name__}: {err}"
            row["traceback"] = traceback.format_exc()
            rows.append(row)
            log(f"[b2] {name:10s} ERROR {row['error'][:300]}")
        write_payload(out_path, args, scale, seed, methods, hparams, models, rows, extra, time.perf_counter() - wall)
    payload = write_payload(out_path, args, scale, seed, methods, hparams, models, rows, extra, time.perf_counter() - wall)
    print(format_table(payload))
    print("\n" + format_target_check(payload["target_check"]))
    print(f"\nwrote {out_path} ({len(rows)} rows, {time.perf_counter() - wall:.0f}s wall)")
    return payload


if __name__ == "__main__":
    main()
