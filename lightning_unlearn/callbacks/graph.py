"""Set a graph recommender's propagation graph from the datamodule's interactions when a fit starts."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch import nn

__all__ = ["GraphFromData", "graph_models"]


def graph_models(module: nn.Module) -> list[nn.Module]:
    """The submodules of ``module`` with a propagation graph (a ``set_graph(users, items)`` method)."""
    return [m for m in module.modules() if callable(getattr(m, "set_graph", None))]


class GraphFromData(pl.Callback):
    """Build every graph recommender's graph (e.g. :class:`~lightning_unlearn.models.ContentLightGCN`) in the module
    from the training interactions of the fit's :class:`~lightning_unlearn.datamodules.RecommendationDataModule`:
    all of them when the datamodule trains on everything (``train_on="all"``: the original), the retained ones
    otherwise (the oracle, and every unlearning run: the deleted interactions' edges are gone before the first step).

    Runs in ``setup``, before the LightningModule's own ``setup``, so an unlearning method's reference copy and
    masks see the updated graph.

    Args:
        interactions: ``"auto"`` (as above), ``"all"`` or ``"retain"``.
    """

    def __init__(self, interactions: str = "auto") -> None:
        from lightning_unlearn._errors import check_choice

        check_choice("interactions", interactions, ("auto", "all", "retain"))
        self.interactions = interactions

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        data: Any = trainer.datamodule
        if data is None or not hasattr(data, "retain_users"):
            raise TypeError(
                "GraphFromData needs a RecommendationDataModule passed as `datamodule` (it reads `train_users` / "
                f"`retain_users`), got {type(data).__name__}."
            )
        models = graph_models(pl_module)
        if not models:
            raise TypeError(f"GraphFromData found no graph recommender (a module with `set_graph`) in {type(pl_module).__name__}.")
        kind = self.interactions
        if kind == "auto":
            kind = "all" if getattr(data, "train_on", None) == "all" else "retain"
        users, items = (data.train_users, data.train_items) if kind == "all" else (data.retain_users, data.retain_items)
        for model in models:
            model.set_graph(users, items)
