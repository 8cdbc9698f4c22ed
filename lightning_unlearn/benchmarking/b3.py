"""Benchmark B3's settings and data (forget a real entity from SmolLM2 as released), for ``benchmarks/b3_entity.py``.

Every method unlearns SmolLM2-135M-Instruct as released (no target, no oracle) from the *Albert Einstein*
Wikipedia passages of :class:`~lightning_unlearn.datamodules.wikipedia.RealEntityDataModule`, through B2's
:func:`lightning_unlearn.benchmarking.b2.run_method`. A method's settings are the shipped config
``configs/einstein_smollm2/<method>.yaml`` (:func:`resolve_hparams`); its class path is the registry's
(:data:`lightning_unlearn.methods.METHODS`). :data:`DATA` and :data:`MAX_LENGTH` are the configs' data settings
(a test checks that they agree).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import b2

__all__ = [
    "CONFIG_FOLDER",
    "DATA",
    "ENTITY",
    "MAX_LENGTH",
    "SEED_COLUMNS",
    "Backbone",
    "default_budget",
    "make_datamodule",
    "merge_seeds",
    "resolve_hparams",
    "seed_table",
]

#: The shipped config folder: one ``<method>.yaml`` per method.
CONFIG_FOLDER = "einstein_smollm2"

ENTITY = "Albert Einstein"

#: ``RealEntityDataModule``'s settings (those of every ``configs/einstein_smollm2`` config).
DATA = {"words_per_passage": 80, "forget_passages": 24, "retain_passages": 4, "holdout_articles": 16, "holdout_passages": 2}
MAX_LENGTH = 160  # passages are <= 80 words (~110 tokens) plus the chat prompt


def resolve_hparams(method: str, budget: dict[str, Any] | None = None) -> dict[str, Any]:
    """``method``'s settings from ``configs/einstein_smollm2/<method>.yaml``
    (:func:`lightning_unlearn.benchmarking.b2.settings_from_config`: ``lr``, ``weight_decay``, ``epochs``,
    ``max_steps``, ``batch_size``, ``retain_batch_size``, ``method``); ``budget`` (``lr`` / ``epochs`` from the
    command line) overrides every method's.

    The budget of the shipped configs: 24 forget passages in batches of 8 (3 steps a pass), each paired with 4
    retain passages; one pass = 3 AdamW steps at 1e-4 (SmolLM2's B2 lr). NOT TUNED beyond three GradDiff / NPO
    trial runs before the full run (retain-probe accuracy already falls with any budget that forgets): 9 steps at
    1e-4 forgot every probe and kept 53% of the retain probes; 6 steps at 3e-5 kept 83% but forgot 36% of the
    forget probes; 3 steps at 1e-4 is the budget of the configs.
    """
    from lightning_unlearn.configs import config_path, list_configs, load_config

    name = f"{CONFIG_FOLDER}/{method}"
    try:
        config_path(name)
    except ValueError:
        shipped = [n.rsplit("/", 1)[1] for n in list_configs(CONFIG_FOLDER)]
        raise ValueError(
            f"B3 has no settings for {method!r}: configs/{name}.yaml does not exist (B3's configs: {shipped})."
        ) from None
    hp = b2.settings_from_config(load_config(name), method, f"configs/{name}.yaml")
    return {**hp, **(budget or {})}


def default_budget() -> dict[str, Any]:
    """The learning rate and passes over the forget set that every shipped B3 config uses (the defaults that
    ``--lr`` / ``--epochs`` override), e.g. ``{"lr": 1e-4, "epochs": 1}``; ``None`` where the configs differ."""
    from lightning_unlearn.configs import list_configs

    rows = [resolve_hparams(n.rsplit("/", 1)[1]) for n in list_configs(CONFIG_FOLDER)]
    return {k: rows[0][k] if all(r[k] == rows[0][k] for r in rows) else None for k in ("lr", "epochs")}


class Backbone(b2.Backbone):
    """SmolLM2 (B2's full-scale backbone) with B3's longer collator."""

    def __init__(self, seed: int, cache_dir: Path) -> None:
        super().__init__("full", seed, cache_dir)

    def collator(self, **kwargs: Any):
        from lightning_unlearn.tasks import QACollator

        return QACollator(self.tokenizer, max_length=MAX_LENGTH, **kwargs)


def make_datamodule(collator=None, batch_size: int = 8, retain_batch_size: int | None = None, seed: int = 0):
    """B3's ``RealEntityDataModule`` (forget :data:`ENTITY`, :data:`DATA`) collated by ``collator``."""
    from lightning_unlearn.datamodules.wikipedia import RealEntityDataModule

    return RealEntityDataModule(
        ENTITY, collate_fn=collator, batch_size=batch_size, retain_batch_size=retain_batch_size, seed=seed, **DATA
    )


# ----------------------------------------------------------------------------------------------------------
# Seeds
# ----------------------------------------------------------------------------------------------------------

#: The columns of :func:`seed_table`: header, the dotted path of the value in a row of ``b3_entity.py``'s JSON, digits.
SEED_COLUMNS = (
    ("forget acc", "base.forget_acc", 2),
    ("held-out forget acc", "base.forget_acc_heldout", 2),
    ("retain ratio", "retain_ratio", 2),
    ("GK acc", "base.general_acc", 2),
    ("ppl held-out", "base.ppl_holdout", 1),
    ("worst recovery", "target_check.worst_recovery", 2),
    ("seconds", "unlearning.seconds", 0),
)


def _canonical(value: Any) -> str:
    """``value`` as sorted-key JSON, so that two settings compare equal whatever their keys' order."""
    return json.dumps(value, sort_keys=True, default=str)


def merge_seeds(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows of several ``b3_entity.py`` runs merged by row name over seeds: per row, each :data:`SEED_COLUMNS` value
    per seed with its mean and sample std, and, out of the seeds whose attacks all ran (``checked``), how many met
    the attack criterion and the whole B3 target (each run's own ``target_check``). Runs of one seed are combined
    first, a later run's row replacing an earlier one's (a rerun of some rows); a row that crashed is left out.
    Raises ``ValueError`` if the runs differ in data or a row's settings differ between seeds (e.g. a ``--lr`` run
    beside a default one)."""
    datas = {_canonical(p["config"].get("data")) for p in payloads}
    if len(datas) != 1:
        raise ValueError(f"the B3 runs should share their data settings, got {sorted(datas)}.")
    by_seed: dict[int, dict[str, dict[str, Any]]] = {}
    for p in payloads:
        by_seed.setdefault(p["config"]["seed"], {}).update({r["row"]: r for r in p["rows"] if "base" in r})
    seeds = sorted(by_seed)
    names: list[str] = []
    for seed in seeds:
        names += [n for n in by_seed[seed] if n not in names]
    merged: dict[str, Any] = {"seeds": seeds, "rows": {}}
    for name in names:
        present = [(seed, by_seed[seed][name]) for seed in seeds if name in by_seed[seed]]
        settings = {_canonical(r.get("unlearning", {}).get("hparams")) for _, r in present}
        if len(settings) != 1:
            raise ValueError(f"row {name!r} should have one setting over the seeds, got {sorted(settings)}.")
        entry: dict[str, Any] = {"seeds": [s for s, _ in present], "columns": benchmarking.column_stats([r for _, r in present], SEED_COLUMNS)}
        # a seed without every attack (--no-attacks, a crashed attack) is not checked, rather than failed
        checks = [c for _, r in present if (c := r.get("target_check")) and c.get("attacks_complete")]
        entry["checked"] = len(checks)
        entry["attack_criterion"] = sum(bool(c["checks"]["attack_recovery"]) for c in checks)
        entry["met_target"] = sum(bool(c["passes"]) for c in checks)
        merged["rows"][name] = entry
    return merged


def seed_table(merged: dict[str, Any]) -> str:
    """The markdown table of :func:`merge_seeds`: mean ± std over seeds, then, out of the seeds checked, those whose
    attacks recovered ≤ 25% and those that met the whole B3 target."""
    header = ["Row", *(h for h, _, _ in SEED_COLUMNS), "attacks ≤ 25%", "met target"]
    body = []
    for name, entry in merged["rows"].items():
        n = entry["checked"]
        counts = ["–" if not n else f"{entry[k]}/{n}" for k in ("attack_criterion", "met_target")]
        cells = [benchmarking.fmt_pm(entry["columns"][h]["mean"], entry["columns"][h]["std"], d) for h, _, d in SEED_COLUMNS]
        body.append([name, *cells, *counts])
    return benchmarking.markdown_table(header, body)
