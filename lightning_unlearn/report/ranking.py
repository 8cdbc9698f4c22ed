"""The report's ranking view for recommenders: a forgotten user's top-k before and after unlearning (and the
oracle's), the deleted items marked."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lightning_unlearn.tasks.base import evaluating

__all__ = ["forgotten_users", "ranking_section", "top_k_of"]


def forgotten_users(datamodule: Any, count: int) -> Tensor:
    """The first ``count`` users (by index) that lost interactions in the request."""
    return torch.unique(datamodule.forget_users)[:count]


@torch.no_grad()
def top_k_of(model: nn.Module, datamodule: Any, users: Tensor, k: int) -> Tensor:
    """``[U, k]`` top items of ``users`` among the items they do not keep (their retained training items are left
    out, as in :func:`~lightning_unlearn.evaluation.recommendation.ranking_metrics`)."""
    from lightning_unlearn.evaluation.recommendation import top_k_items

    device = next(model.parameters()).device
    excluded = torch.zeros(users.numel(), int(datamodule.num_items), dtype=torch.bool)
    for row, user in enumerate(users.tolist()):
        excluded[row, datamodule.retain_items[datamodule.retain_users == user]] = True
    with evaluating(model):
        return top_k_items(model, users.to(device), k, excluded.to(device)).cpu()


def ranking_section(tops: dict[str, Tensor], datamodule: Any, users: Tensor, k: int) -> dict[str, Any]:
    """The report's ``ranking`` entry from ``{"original"|"unlearned"|"oracle": [U, k] top items}``."""
    titles = getattr(datamodule, "item_titles", None)
    entries = []
    for row, user in enumerate(users.tolist()):
        deleted = set(datamodule.forget_items[datamodule.forget_users == user].tolist())
        lists = {}
        for name, top in tops.items():
            items = top[row].tolist()
            names = titles(items) if callable(titles) else [f"item {i}" for i in items]
            lists[name] = [{"title": str(t), "deleted": i in deleted} for i, t in zip(items, names)]
        entries.append({"label": f"forgotten user {row + 1}", "deleted": len(deleted), "lists": lists})
    return {"k": int(k), "users": entries}
