"""``UnlearningReport``: a record of one unlearning run that a data-protection officer can read.

The callback watches ``Trainer.fit`` and, when fit ends, writes ``report.json`` (validated against
:data:`~lightning_unlearn.report.schema.REPORT_SCHEMA`) and a self-contained ``report.html``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import Tensor, nn
from torch.utils.data import DataLoader
from typing_extensions import override

from lightning_unlearn._cache import write_text_atomic
from lightning_unlearn._errors import check_choice, check_int, check_positive
from lightning_unlearn._interfaces import method_of, weight_file
from lightning_unlearn._json import json_safe
from lightning_unlearn._provenance import git_commit, versions
from lightning_unlearn._weights import copy_with_weights, frozen_copy, network_of
from lightning_unlearn.callbacks.evaluation import run_evaluation
from lightning_unlearn.evaluation import with_gap
from lightning_unlearn.metrics import MIAAttack, collect_features, loss_mia_auc, roc_curve, structure_scores, structure_subset
from lightning_unlearn.report.images import check_image_prompts, image_grid, png_data_uri
from lightning_unlearn.report.ranking import forgotten_users, ranking_section, top_k_of
from lightning_unlearn.report.schema import SCHEMA_VERSION, validate_report
from lightning_unlearn.tasks.base import Task
from lightning_unlearn.tasks.classification import ClassificationTask

#: Logged keys recorded per training step, and their names in ``loss_curve.series``.
CURVE_KEYS = {"train/loss": "loss", "train/forget_loss": "forget_loss", "train/retain_loss": "retain_loss"}
#: Number of points of each ROC curve stored in the report (an even grid of false-positive rates).
ROC_POINTS = 101
#: Optimizer defaults that choose an implementation, not the optimisation (left out of the report).
_OPTIMIZER_IMPLEMENTATION = {"foreach", "capturable", "differentiable", "fused"}
_MIA_ATTACKS = {"logistic": "logistic regression", "svc": "support-vector classifier"}


def model_hash(model: nn.Module | Mapping[str, Any]) -> str:
    """SHA-256 of a model's weights: every tensor of its ``state_dict`` in sorted key order.

    Each entry contributes its key, dtype, shape and raw bytes, so the hash identifies the weights
    exactly and does not depend on the device or on how the file was saved. A module and the state
    dict it was saved as (``torch.save(model.state_dict(), path)``) hash the same.

    Args:
        model: An ``nn.Module`` or a state dict (``{name: tensor}``).
    """
    if isinstance(model, nn.Module):
        state = model.state_dict()
    elif isinstance(model, Mapping):
        state = model
    else:
        raise TypeError(f"`model` should be an nn.Module or a state dict, got {type(model).__name__}.")
    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        if not isinstance(value, Tensor):
            continue
        tensor = value.detach().cpu().contiguous()
        h.update(f"{key}|{str(tensor.dtype).removeprefix('torch.')}|{tuple(tensor.shape)}|".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class UnlearningReport(Callback):
    """Write ``report.json`` and ``report.html`` for an unlearning run when ``fit`` ends.

    Works with :class:`~lightning_unlearn.UnlearningModule` (method, original and oracle weights are
    read from it), with any LightningModule that has the same attributes
    (:class:`~lightning_unlearn._interfaces.UnlearningRun`: ``method``, ``original``, ``oracle_path``) and,
    for the plain parts, with any LightningModule trained on a datamodule with
    ``eval_dataloaders()`` (e.g. :class:`~lightning_unlearn.ForgetRetainDataModule`). The network
    reported on is ``pl_module.model`` when it exists (as :class:`~lightning_unlearn.SaveWeights`
    saves it), else ``pl_module``.

    What it records:

    * when fit sets up: the SHA-256 of the weights (:func:`model_hash`) and the start time; a copy of
      the weights if the original model cannot be reloaded from ``pl_module.original``;
    * every training step: ``train/loss``, ``train/forget_loss``, ``train/retain_loss`` as logged
      (or the step's returned loss);
    * when fit ends: the hash of the unlearned weights; the metrics of
      :func:`~lightning_unlearn.evaluate` for the unlearned, the original and the oracle model on
      the datamodule's evaluation splits; the ROC curves of the loss-threshold membership attack
      (forget vs holdout, or test); then the files, written by global rank 0 only.

    The request is summarised by its kind, description, size and keyed fingerprint
    (:mod:`lightning_unlearn.privacy`): the report never contains sample indices or data. Results of further attacks are added with :meth:`add_attack`.

    Args:
        dirpath: Folder of ``report.json``/``report.html``; default ``trainer.log_dir`` (the
            logger's version folder, or ``default_root_dir`` without a logger).
        original: Weights file of the original model, for modules that do not name one
            (``UnlearningModule(original=...)`` is used otherwise).
        oracle: Weights file of the oracle (retrained without the forget set), for modules that do
            not name one (``UnlearningModule(oracle=...)`` is used otherwise).
        task: What the model is; default ``pl_module.task``, else the task of the
            :class:`~lightning_unlearn.Unlearn` callback on a user's module (e.g. a
            :class:`~lightning_unlearn.tasks.VisionLanguageTask`), else classification.
        mia_attack: Attack model of MIA-efficacy: ``"logistic"`` or ``"svc"``.
        evaluate_original: Also evaluate the original model (one more pass over the evaluation data).
        max_curve_points: Keep at most this many points of the loss curve (longer runs are averaged
            into this many bins).
        structure_layer: Feature layer for the structure metrics (``knn_overlap``, ``class_sim_corr``
            against the oracle, on retained samples; :mod:`lightning_unlearn.metrics.structure`).
            ``"auto"`` uses a submodule named ``penultimate`` when the model has one; ``None`` skips them.
            Needs the oracle.
        structure_samples: Retained samples (a fixed seeded subset of the retain split,
            :func:`~lightning_unlearn.metrics.structure_subset`) the structure metrics use.
        ranking_top_k: Recommenders (a recommendation task and a
            :class:`~lightning_unlearn.datamodules.RecommendationDataModule`): add the ranking view, the top-k items
            of forgotten users before (original), after (unlearned) and for the oracle, deleted items marked
            (:mod:`lightning_unlearn.report.ranking`). ``None`` (default): none — the titles are data about the users.
        ranking_users: How many forgotten users the ranking view shows (numbered, never identified).
        image_prompts: Text-to-image diffusion models (a pixel-space ``DiffusionTask``): ``{group: [prompt, ...]}``,
            e.g. ``{"erased": [...], "kept": [...]}``; add PNG grids of each group's generations by the original, the
            unlearned model and the oracle (:mod:`lightning_unlearn.report.images`). ``None`` (default): none.
        images_per_prompt, image_steps, image_guidance, image_seed: Generations per prompt (a grid's columns), DDIM
            steps, classifier-free guidance scale and the seed of the noise (the same for every model).
    """

    def __init__(
        self,
        dirpath: str | os.PathLike | None = None,
        original: str | None = None,
        oracle: str | None = None,
        task: Task | None = None,
        mia_attack: MIAAttack = "logistic",
        evaluate_original: bool = True,
        max_curve_points: int = 2000,
        structure_layer: str | None = "auto",
        structure_samples: int = 2000,
        ranking_top_k: int | None = None,
        ranking_users: int = 1,
        image_prompts: dict[str, list[str]] | None = None,
        images_per_prompt: int = 4,
        image_steps: int = 10,
        image_guidance: float = 3.0,
        image_seed: int = 0,
    ) -> None:
        check_choice("mia_attack", mia_attack, _MIA_ATTACKS)
        if task is not None and not isinstance(task, Task):
            raise TypeError(f"`task` should be a lightning_unlearn Task or None, got {type(task).__name__}.")
        check_int("max_curve_points", max_curve_points, minimum=2)
        for name, path in (("original", original), ("oracle", oracle)):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"`{name}` weights file {str(path)!r} does not exist.")
        self.dirpath = None if dirpath is None else str(dirpath)
        self.original = original
        self.oracle = oracle
        self.task = task
        self.mia_attack = mia_attack
        self.evaluate_original = evaluate_original
        self.max_curve_points = max_curve_points
        check_int("structure_samples", structure_samples, minimum=12)
        self.structure_layer = structure_layer
        self.structure_samples = structure_samples
        self.ranking_top_k = check_int("ranking_top_k", ranking_top_k, optional=True)
        self.ranking_users = check_int("ranking_users", ranking_users)
        self.image_prompts = check_image_prompts(image_prompts)
        self.images_per_prompt = check_int("images_per_prompt", images_per_prompt)
        self.image_steps = check_int("image_steps", image_steps)
        self.image_guidance = float(check_positive("image_guidance", image_guidance, allow_zero=True))
        self.image_seed = check_int("image_seed", image_seed, minimum=0)
        #: The last report written (``None`` before fit ends), and where it was written.
        self.report: dict[str, Any] | None = None
        self.json_path: Path | None = None
        self.html_path: Path | None = None
        self._attacks: list[dict[str, Any]] = []
        self._steps: list[int] = []
        self._series: dict[str, list[float | None]] = {}
        self._elapsed_before = 0.0  # unlearning seconds of earlier sessions (resumed runs)
        self._out_dir: str | None = None
        self._reset_run()

    def _reset_run(self) -> None:
        self._hash_before: str | None = None
        self._snapshot: dict[str, Tensor] | None = None
        self._started: float | None = None
        self._started_at: str | None = None

    # ------------------------------------------------------------------ the extension point
    def add_attack(self, name: str, result: Mapping[str, Any], description: str | None = None) -> None:
        """Add the result of a further attack (e.g. a LiRA or U-LiRA run) to the report.

        Call it before or during fit to have it in the report written when fit ends, or after fit to
        append it to the written report (the JSON and HTML files are rewritten).

        Args:
            name: Name of the attack, e.g. ``"LiRA"``.
            result: Its results: a flat mapping of names to numbers, strings, booleans or lists of them
                (e.g. ``{"auc": 0.51, "tpr_at_1pct_fpr": 0.012}``). Never put sample data here.
            description: One plain-language line on what the attack measures.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"`name` should be a non-empty string, got {name!r}.")
        if not isinstance(result, Mapping):
            raise TypeError(f"`result` should be a mapping of names to values, got {type(result).__name__}.")
        clean: dict[str, Any] = {}
        for key, value in result.items():
            if not isinstance(key, str):
                raise TypeError(f"`result` keys should be strings, got {key!r}.")
            values = value if isinstance(value, (list, tuple)) else [value]
            bad = [
                v
                for v in values
                if not (v is None or isinstance(v, (str, bool, int, float)) or (isinstance(v, Tensor) and v.numel() == 1))
            ]
            if bad:
                raise TypeError(
                    f"`result[{key!r}]` should be a number, string, boolean, None or a list of them, got {type(bad[0]).__name__}."
                )
            clean[key] = json_safe(list(value) if isinstance(value, (list, tuple)) else value)
        self._attacks.append({"name": name, "description": description, "result": clean})
        if self.report is not None:
            self.report = {**self.report, "attacks": list(self._attacks)}
            self._write(self.report)

    # ------------------------------------------------------------------ hooks
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = trainer.datamodule
        if not callable(getattr(datamodule, "eval_dataloaders", None)):
            raise MisconfigurationException(
                "UnlearningReport evaluates on the datamodule's `eval_dataloaders()`; pass a ForgetRetainDataModule "
                f"(or a datamodule with that method) to `trainer.fit`, got {type(datamodule).__name__}."
            )
        # Resolved here on every rank: `trainer.log_dir` broadcasts, so rank 0 cannot ask for it alone later.
        self._out_dir = self.dirpath or trainer.log_dir or trainer.default_root_dir
        # Callbacks set up before the module: these are the weights as given, before a method prepares them.
        network = network_of(pl_module)
        self._hash_before = model_hash(network)
        if self._original_path(pl_module) is None and self.evaluate_original:
            self._snapshot = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
        # A new run starts a new curve; a resumed one gets its curve back from `load_state_dict` (called after setup).
        self._steps, self._series, self._elapsed_before = [], {}, 0.0
        self._started = time.perf_counter()
        self._started_at = _now()

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        parts = getattr(getattr(pl_module, "engine", None), "last_parts", None)
        if parts:  # the engine's step: every step's parts, also where they were not `self.log`ged
            values = {name: _as_float(parts[key.removeprefix("train/")]) for key, name in CURVE_KEYS.items() if key.removeprefix("train/") in parts}
        else:
            metrics = trainer.callback_metrics
            values = {name: _as_float(metrics[key]) for key, name in CURVE_KEYS.items() if key in metrics}
        if "loss" not in values:
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            if isinstance(loss, Tensor) and loss.numel() == 1:
                values["loss"] = _as_float(loss)
        if not values:
            return
        n = len(self._steps)
        for name in [name for name in values if name not in self._series]:  # CURVE_KEYS order
            self._series[name] = [None] * n
        for name, series in self._series.items():
            series.append(values.get(name))
        self._steps.append(int(trainer.global_step))

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._started is None:
            return
        unlearning_s = self._elapsed_before + time.perf_counter() - self._started
        report = self.build(trainer, pl_module, unlearning_s)
        if trainer.is_global_zero:
            self.report = validate_report(report)
            self._write(self.report)
        self._reset_run()

    @override
    def state_dict(self) -> dict[str, Any]:
        elapsed = self._elapsed_before + (time.perf_counter() - self._started if self._started is not None else 0.0)
        return {"steps": list(self._steps), "series": {k: list(v) for k, v in self._series.items()}, "unlearning_s": elapsed}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._steps = list(state_dict.get("steps", []))
        self._series = {k: list(v) for k, v in state_dict.get("series", {}).items()}
        self._elapsed_before = float(state_dict.get("unlearning_s", 0.0))

    # ------------------------------------------------------------------ building the report
    def _original_path(self, pl_module: pl.LightningModule) -> str | None:
        if self.original is not None:
            return self.original
        return weight_file(pl_module, "original")

    def _oracle_path(self, pl_module: pl.LightningModule) -> str | None:
        if self.oracle is not None:
            return self.oracle
        return weight_file(pl_module, "oracle_path")

    def build(self, trainer: pl.Trainer, pl_module: pl.LightningModule, unlearning_s: float) -> dict[str, Any]:
        """Evaluate the models and assemble the report dict (every rank runs it; rank 0 writes it)."""
        network = network_of(pl_module)
        task = self.task or task_of(pl_module, trainer.callbacks) or ClassificationTask()
        datamodule = trainer.datamodule
        loaders: dict[str, DataLoader] = datamodule.eval_dataloaders()
        device = trainer.strategy.root_device
        eval_start = time.perf_counter()

        models: dict[str, nn.Module | None] = {"oracle": None, "original": None}
        oracle_path = self._oracle_path(pl_module)
        if oracle_path is not None:
            models["oracle"] = copy_with_weights(network, oracle_path, "oracle")
        original_path = self._original_path(pl_module)
        if self.evaluate_original:
            if original_path is not None:
                models["original"] = copy_with_weights(network, original_path, "original")
            elif self._snapshot is not None:
                models["original"] = _with_state(network, self._snapshot)

        metrics: dict[str, dict[str, float] | None] = {"unlearned": None, "original": None, "oracle": None}
        rounded: dict[str, dict[str, float] | None] = dict(metrics)
        losses: dict[str, tuple[Tensor, Tensor]] = {}
        nonmember = "holdout" if "holdout" in loaders else ("test" if "test" in loaders else None)
        previous_device = next(network.parameters()).device
        layer = self._structure_layer(network) if models["oracle"] is not None else None
        retain = loaders.get("retain")
        structure = (
            structure_subset(retain.dataset, self.structure_samples, batch_size=retain.batch_size or 256, collate_fn=retain.collate_fn)
            if layer is not None and retain is not None
            else None
        )
        oracle_features: Tensor | None = None
        ranked = self._ranked_users(task, datamodule)
        tops: dict[str, Tensor] = {}
        self._check_image_task(task)
        grids: dict[str, dict[str, str]] = {}
        for name in ("oracle", "original", "unlearned"):  # the oracle first: the others' avg_gap needs its metrics
            model = network if name == "unlearned" else models[name]
            if model is None:
                continue
            model.to(device)
            evaluator = run_evaluation(model, loaders, task, self.mia_attack, device, precision=trainer.precision_plugin)
            metrics[name] = with_gap(evaluator.compute(), metrics["oracle"])
            if structure is not None:
                features, labels = collect_features(model, structure, layer, task)
                if oracle_features is None:
                    oracle_features = features
                metrics[name].update(structure_scores(features, oracle_features, labels))
            rounded[name] = {k: None if v is None else round(v, 6) for k, v in metrics[name].items()}
            if ranked is not None:
                tops[name] = top_k_of(model, datamodule, ranked, self.ranking_top_k)
            for group, prompts in (self.image_prompts or {}).items():
                grid = image_grid(model, task, prompts, self.images_per_prompt, self.image_steps, self.image_guidance, self.image_seed)
                grids.setdefault(group, {})[name] = png_data_uri(grid)
            if nonmember is not None and trainer.is_global_zero:
                losses[name] = evaluator.membership_losses()  # the losses mia_auc was computed from
            if model is not network:
                models[name] = None
                del model
        network.to(previous_device)
        evaluation_s = time.perf_counter() - eval_start

        mia_roc = None
        if losses:
            curves = {name: _roc(members, nonmembers) for name, (members, nonmembers) in losses.items()}
            mia_roc = {"members": "forget", "nonmembers": nonmember, "curves": curves}

        extra = {}
        if ranked is not None:
            order = [n for n in ("original", "unlearned", "oracle") if n in tops]
            extra["ranking"] = ranking_section({n: tops[n] for n in order}, datamodule, ranked, self.ranking_top_k)
        if self.image_prompts:
            order = [n for n in ("original", "unlearned", "oracle") if n in next(iter(grids.values()))]
            extra["images"] = {
                "per_prompt": self.images_per_prompt, "steps": self.image_steps, "guidance": self.image_guidance, "seed": self.image_seed,
                "groups": {g: {"prompts": self.image_prompts[g], "grids": {n: grids[g][n] for n in order}} for g in self.image_prompts},
            }  # fmt: skip
        return json_safe(
            {
                **extra,
                "schema_version": SCHEMA_VERSION,
                "created": _now(),
                "request": _request(datamodule, loaders),
                "method": _method(trainer, pl_module),
                "model": {
                    "class": type(network).__name__,
                    "num_parameters": sum(p.numel() for p in network.parameters()),
                    "hash_before": self._hash_before,
                    "hash_after": model_hash(network),
                    "original": None if original_path is None else str(original_path),
                    "oracle": None if oracle_path is None else str(oracle_path),
                },
                "training": _training(trainer),
                "data": {
                    "sizes": datamodule.sizes() if callable(getattr(datamodule, "sizes", None)) else {},
                    "eval_splits": list(loaders),
                },
                "metrics": rounded,
                "mia_roc": mia_roc,
                "loss_curve": _downsample(self._steps, self._series, self.max_curve_points),
                "attacks": list(self._attacks),
                "timings": {
                    "started_at": self._started_at,
                    "finished_at": _now(),
                    "unlearning_s": round(unlearning_s, 3),
                    "evaluation_s": round(evaluation_s, 3),
                },
                "versions": versions(),
                "git_commit": git_commit(),
            }
        )

    def _ranked_users(self, task: Task, datamodule: Any) -> Tensor | None:
        """The forgotten users of the ranking view (``None``: no view asked for, or not a recommender)."""
        if self.ranking_top_k is None:
            return None
        if getattr(task, "kind", None) != "recommendation" or not hasattr(datamodule, "forget_users"):
            raise MisconfigurationException(
                "UnlearningReport(ranking_top_k=...) ranks items for forgotten users: it needs a RecommendationTask and a "
                f"RecommendationDataModule, got {type(task).__name__} and {type(datamodule).__name__}."
            )
        return forgotten_users(datamodule, self.ranking_users)

    def _check_image_task(self, task: Task) -> None:
        """The image view samples a pixel-space text-to-image denoiser: refuse anything else before evaluating."""
        if self.image_prompts is None:
            return
        if getattr(task, "kind", None) != "diffusion":
            raise MisconfigurationException(
                f"UnlearningReport(image_prompts=...) generates images: it needs a DiffusionTask, got {type(task).__name__}."
            )
        if getattr(task, "vae", None) is not None:
            raise MisconfigurationException(
                "UnlearningReport(image_prompts=...) samples pixel-space denoisers; this DiffusionTask has a VAE (a latent "
                "model): generate its images with your own pipeline."
            )

    def _structure_layer(self, network: nn.Module) -> str | None:
        if self.structure_layer is None:
            return None
        names = dict(network.named_modules())
        if self.structure_layer == "auto":
            return "penultimate" if "penultimate" in names else None
        if self.structure_layer not in names:
            shown = [n for n in names if n][:20]
            raise ValueError(f"`structure_layer` should name a submodule of the model, one of {shown}; got {self.structure_layer!r}.")
        return self.structure_layer

    @rank_zero_only
    def _write(self, report: dict[str, Any]) -> None:
        from lightning_unlearn.report.html import write_html

        out = Path(self._out_dir or ".")
        out.mkdir(parents=True, exist_ok=True)
        self.json_path = write_text_atomic(out / "report.json", dumps_report(report))
        self.html_path = write_html(report, out / "report.html")


# ---------------------------------------------------------------------------------------------- helpers
def _with_state(network: nn.Module, state: dict[str, Tensor]) -> nn.Module:
    model = frozen_copy(network).cpu()
    model.load_state_dict(state)
    return model


@torch.no_grad()
def _roc(members: Tensor, nonmembers: Tensor, points: int = ROC_POINTS) -> dict[str, Any]:
    """ROC of the loss-threshold attack (score −loss, members positive) on an even FPR grid.

    Only the curve is kept (no per-sample losses), so nothing in the report identifies a sample.
    """
    fpr, tpr = (t.double().numpy() for t in roc_curve(-members.double(), -nonmembers.double())[:2])
    # Piecewise-linear ROC read at each grid FPR (the top of a vertical step at exactly that FPR).
    grid = np.linspace(0.0, 1.0, points)
    j = np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, len(fpr) - 2)
    x0, x1, y0, y1 = fpr[j], fpr[j + 1], tpr[j], tpr[j + 1]
    t = np.clip(np.where(x1 > x0, (grid - x0) / np.where(x1 > x0, x1 - x0, 1.0), 1.0), 0.0, 1.0)
    curve = np.clip(y0 + t * (y1 - y0), 0.0, 1.0)
    return {"fpr": grid.round(6).tolist(), "tpr": curve.round(6).tolist(), "auc": round(loss_mia_auc(members, nonmembers), 6)}


def _request(datamodule: Any, loaders: dict[str, DataLoader]) -> dict[str, Any]:
    request = getattr(datamodule, "request", None)
    if request is not None:
        return {
            "kind": request.kind,
            "description": request.description,
            "count": len(request),
            "dataset_size": request.dataset_size,
            "fingerprint": request.fingerprint,
        }
    forget_set = getattr(datamodule, "forget_set", None)
    if forget_set is None:
        forget_set = loaders["forget"].dataset
    return {
        "kind": "explicit",
        "description": "explicit forget and retain datasets",
        "count": len(forget_set),
        "dataset_size": None,
        "fingerprint": None,
    }


def task_of(pl_module: pl.LightningModule, callbacks: Any = ()) -> Task | None:
    """The task of a run: ``pl_module.task``, else the ``task`` of the first callback that has one (the
    :class:`~lightning_unlearn.Unlearn` callback on a user's module, moved first at setup), else ``None``."""
    for owner in (pl_module, *callbacks):
        task = getattr(owner, "task", None)
        if isinstance(task, Task):
            return task
    return None


def _method(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    method = method_of(pl_module, trainer.callbacks)  # the module's, or the Unlearn callback's on a user's module
    if method is None:  # e.g. retraining with SupervisedModule
        return {"name": type(pl_module).__name__, "class": type(pl_module).__name__, "hparams": {}}
    return {"name": method.name, "class": type(method).__name__, "hparams": dict(method.hparams())}


def _training(trainer: pl.Trainer) -> dict[str, Any]:
    optimizer = None
    if trainer.optimizers:
        opt = trainer.optimizers[0]
        defaults = {k: v for k, v in opt.defaults.items() if k not in _OPTIMIZER_IMPLEMENTATION}
        hparams = {k: v for k, v in defaults.items() if isinstance(v, (int, float, str, bool))}
        hparams.update({k: ", ".join(map(str, v)) for k, v in defaults.items() if isinstance(v, (tuple, list))})
        optimizer = {"class": type(opt).__name__, "hparams": hparams}
    max_epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs >= 0 else None
    return {
        "max_epochs": max_epochs,
        "max_steps": trainer.max_steps if trainer.max_steps >= 0 else None,
        "epochs": int(trainer.current_epoch),
        "steps": int(trainer.global_step),
        "precision": str(trainer.precision),
        "accelerator": type(trainer.accelerator).__name__,
        "strategy": type(trainer.strategy).__name__,
        "world_size": int(trainer.world_size),
        "accumulate_grad_batches": int(trainer.accumulate_grad_batches),
        "gradient_clip_val": trainer.gradient_clip_val,
        "optimizer": optimizer,
        "lr_schedulers": [type(c.scheduler).__name__ for c in trainer.lr_scheduler_configs],
    }


def _downsample(steps: list[int], series: dict[str, list[float | None]], limit: int) -> dict[str, Any]:
    """At most ``limit`` points: consecutive steps are averaged into equal bins (missing values skipped)."""
    if len(steps) <= limit:
        return {"step": list(steps), "series": {k: list(v) for k, v in series.items()}}
    bins = np.array_split(np.arange(len(steps)), limit)
    out_steps = [int(steps[b[-1]]) for b in bins]
    out: dict[str, list[float | None]] = {}
    for name, values in series.items():
        arr = np.array([math.nan if v is None else v for v in values], dtype=float)
        out[name] = [None if np.all(np.isnan(arr[b])) else float(np.nanmean(arr[b])) for b in bins]
    return {"step": out_steps, "series": out}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _as_float(value: Any) -> float | None:
    value = float(value.detach().cpu()) if isinstance(value, Tensor) else float(value)
    return value if math.isfinite(value) else None


def dumps_report(report: dict[str, Any], indent: int = 2) -> str:
    """Indented JSON whose flat lists (curves, steps) stay on one line."""

    def dump(value: Any, level: int) -> str:
        pad, inner = " " * indent * level, " " * indent * (level + 1)
        if isinstance(value, dict) and value:
            items = [f"{inner}{json.dumps(k)}: {dump(v, level + 1)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            return "[\n" + ",\n".join(inner + dump(v, level + 1) for v in value) + "\n" + pad + "]"
        return json.dumps(value, allow_nan=False)

    return dump(report, 0) + "\n"


__all__ = ["CURVE_KEYS", "UnlearningReport", "dumps_report", "model_hash"]
