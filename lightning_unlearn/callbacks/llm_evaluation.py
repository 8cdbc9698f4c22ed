"""``LLMEvaluation``: benchmark B2's TOFU-style row at the end of ``trainer.test`` (and ``trainer.validate``).

TOFU: Maini et al., "TOFU: A Task of Fictitious Unlearning for LLMs", COLM 2024, arXiv 2401.06121. The scores are
:class:`~lightning_unlearn.evaluation.llm.TofuEvaluator`'s, the code ``benchmarks/b2_llm.py`` runs, so::

    lightning-unlearn test --config configs/authors_smollm2/graddiff.yaml --ckpt_path .../last.ckpt

prints the B2 row of the unlearned model (``lightning-unlearn test`` adds this callback by itself to a causal-LM
``UnlearningModule`` on fictitious-author data; see :mod:`lightning_unlearn.cli`).
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn
from typing_extensions import override

from lightning_unlearn._errors import check_choice, check_int
from lightning_unlearn._weights import copy_with_weights, network_of
from lightning_unlearn.evaluation.llm import (
    PERTURBED_TEMPLATES,
    PerturbedTemplate,
    TofuEvaluator,
    format_tofu_row,
    known_probes,
    retain_subset,
)

GeneralKnowledge = Literal["known", "all", "none"]
#: Which general-knowledge probes score ``gk_acc`` (part of model utility).
GENERAL_KNOWLEDGE_MODES: dict[str, str] = {
    "known": "the probes the pretrained model (`known_probes_of`) answers correctly, as B2",
    "all": "every probe of GENERAL_KNOWLEDGE",
    "none": "no probes: no gk_acc, model utility of the other three parts",
}


class LLMEvaluation(Callback):
    """Compute, log and print B2's TOFU-style row (Maini et al., arXiv 2401.06121) when ``test`` (or the
    ``validate`` entry point, not fit's validation loop) ends.

    The data are the datamodule's ``forget_set``, ``retain_set`` and ``holdout_set`` of QA example dicts
    (:class:`~lightning_unlearn.datamodules.FictitiousAuthorsDataModule`); the collator is the datamodule's
    ``collate_fn`` (a :class:`~lightning_unlearn.tasks.QACollator`, rebuilt without its ``alternatives``); the
    model is the module's ``model`` (or the module itself). Forget quality compares the forget truth ratios with
    the oracle's: the ``oracle`` weights, else the oracle ``UnlearningModule`` loaded from its ``oracle=`` path.
    Metrics are logged as ``test/<name>`` (``val/<name>``), kept in :attr:`metrics` (full precision) and printed
    as a one-row markdown table with B2's columns. Every rank computes the same numbers on the whole data.

    Args:
        max_retain: Evaluate a fixed seeded subset of this many retain examples (B2's full scale: 48;
            :func:`~lightning_unlearn.evaluation.llm.retain_subset`); ``None`` for all.
        max_new_tokens: Tokens of a greedy answer.
        batch_size: Pairs per teacher-forced forward pass.
        gen_batch_size: Questions per batched generation.
        perturbed_template: Wording of the truth ratio's perturbed answers, ``"paraphrase"`` (TOFU's, B2's) or
            ``"answer"``.
        general_knowledge: ``"known"`` (B2), ``"all"`` or ``"none"``; see :data:`GENERAL_KNOWLEDGE_MODES`.
        known_probes_of: The pretrained model whose correctly answered probes are kept (``"known"``): a model, or a
            weights file loaded into a copy of the evaluated network. Selected once and reused.
        oracle: Weights of the oracle (fine-tuned without the forget set); default: the module's oracle.
        seed: Seed of the retain subset; default the datamodule's ``seed`` (else 0).
        name: The row's label in the printed table.
    """

    def __init__(
        self,
        max_retain: int | None = 48,
        max_new_tokens: int = 24,
        batch_size: int = 16,
        gen_batch_size: int = 16,
        perturbed_template: PerturbedTemplate = "paraphrase",
        general_knowledge: GeneralKnowledge = "known",
        known_probes_of: nn.Module | str | None = None,
        oracle: str | None = None,
        seed: int | None = None,
        name: str = "model",
    ) -> None:
        check_int("max_retain", max_retain, optional=True)
        check_int("max_new_tokens", max_new_tokens)
        check_int("batch_size", batch_size)
        check_int("gen_batch_size", gen_batch_size)
        check_choice("perturbed_template", perturbed_template, PERTURBED_TEMPLATES)
        check_choice("general_knowledge", general_knowledge, GENERAL_KNOWLEDGE_MODES)
        if known_probes_of is not None and not isinstance(known_probes_of, (nn.Module, str)):
            raise TypeError(f"`known_probes_of` should be a model, a weights path or None, got {type(known_probes_of).__name__}.")
        if general_knowledge == "known" and known_probes_of is None:
            raise ValueError(
                "`general_knowledge='known'` keeps the probes the pretrained model answers, so it needs `known_probes_of` "
                "(the pretrained model or its weights file); got None. Pass it, or general_knowledge='all' or 'none'."
            )
        check_int("seed", seed, minimum=0, optional=True)
        self.max_retain = max_retain
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.gen_batch_size = gen_batch_size
        self.perturbed_template = perturbed_template
        self.general_knowledge = general_knowledge
        self.known_probes_of = known_probes_of
        self.oracle = oracle
        self.seed = seed
        self.name = name
        self.metrics: dict[str, float] = {}
        self.result: dict[str, Any] = {}
        self._probes: list[Any] | None = None

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _examples(datamodule: Any, split: str) -> list[dict[str, Any]]:
        dataset = getattr(datamodule, f"{split}_set", None)
        if dataset is None:
            return []
        return [dataset[i] for i in range(len(dataset))]

    @staticmethod
    def _collator(datamodule: Any) -> Any:
        from lightning_unlearn.tasks import QACollator

        collate = getattr(datamodule, "collate_fn", None)
        if not isinstance(collate, QACollator):
            raise MisconfigurationException(
                "LLMEvaluation scores answers with the datamodule's `collate_fn`, which should be a QACollator, "
                f"got {type(collate).__name__}."
            )
        return QACollator(
            collate.tokenizer, max_length=collate.max_length, chat_template=collate.chat_template, system_prompt=collate.system_prompt
        )

    def _probe_set(self, network: nn.Module, tokenizer: Any, device: torch.device) -> list[Any]:
        from lightning_unlearn.datamodules.probes import GENERAL_KNOWLEDGE

        if self.general_knowledge == "none":
            return []
        if self.general_knowledge == "all":
            return list(GENERAL_KNOWLEDGE)
        if self._probes is None:
            pretrained = self.known_probes_of
            if isinstance(pretrained, str):
                pretrained = copy_with_weights(network, pretrained, argument="known_probes_of")
            was_device = next(pretrained.parameters()).device
            pretrained.to(device)
            self._probes = known_probes(pretrained, tokenizer, GENERAL_KNOWLEDGE, max_new_tokens=self.max_new_tokens, batch_size=self.gen_batch_size)
            pretrained.to(was_device)
        return self._probes

    def _oracle_model(self, pl_module: pl.LightningModule, network: nn.Module) -> nn.Module | None:
        if self.oracle is not None:
            return copy_with_weights(network, self.oracle, argument="oracle")
        held = getattr(pl_module, "_oracle", None)  # UnlearningModule's frozen oracle copy (from `oracle=`)
        if held:
            return held[0]
        path = getattr(pl_module, "oracle_path", None)
        return copy_with_weights(network, path, argument="oracle") if path else None

    # ------------------------------------------------------------------ the row
    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        """Evaluate ``pl_module`` on ``trainer.datamodule``; returns (and keeps in :attr:`metrics`) the row."""
        datamodule = trainer.datamodule
        if datamodule is None or getattr(datamodule, "forget_set", None) is None:
            raise MisconfigurationException(
                "LLMEvaluation reads the QA examples of the datamodule's `forget_set`, `retain_set` and `holdout_set` "
                f"(e.g. FictitiousAuthorsDataModule); got {type(datamodule).__name__}."
            )
        collator = self._collator(datamodule)
        network = network_of(pl_module)
        device = next(network.parameters()).device
        seed = self.seed if self.seed is not None else int(getattr(datamodule, "seed", 0) or 0)
        forget = self._examples(datamodule, "forget")
        retain = retain_subset(self._examples(datamodule, "retain"), self.max_retain, seed)
        holdout = self._examples(datamodule, "holdout")
        evaluator = TofuEvaluator(
            collator,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
            gen_batch_size=self.gen_batch_size,
            perturbed_template=self.perturbed_template,
            probes=self._probe_set(network, collator.tokenizer, device),
        )
        oracle_ratios = None
        oracle = self._oracle_model(pl_module, network)
        if oracle is not None:
            was_device = next(oracle.parameters()).device
            oracle.to(device)
            oracle_ratios = evaluator.truth_ratios(oracle, forget)
            oracle.to(was_device)
        self.result = evaluator.evaluate(network, forget, retain, holdout or None, oracle_truth_ratios=oracle_ratios)
        self.metrics = dict(self.result["metrics"])
        return self.metrics

    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prefix: str) -> None:
        metrics = self.run(trainer, pl_module)
        pl_module.log_dict({f"{prefix}/{k}": float(v) for k, v in metrics.items()}, rank_zero_only=True)
        if trainer.is_global_zero:
            print(f"\nTOFU-style row (B2 columns; {prefix}):\n\n{format_tofu_row(metrics, self.name)}\n", flush=True)

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, pl_module, "test")

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate" and not trainer.sanity_checking:
            self._finish(trainer, pl_module, "val")
