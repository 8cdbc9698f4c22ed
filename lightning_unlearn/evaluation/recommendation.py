"""Ranking evaluation of a recommender before and after unlearning (benchmark B5).

:func:`ranking_metrics` ranks the whole item catalogue for each evaluated user and reports, with torchmetrics'
retrieval metrics (``RetrievalRecall``, ``RetrievalNormalizedDCG``: one query per user):

* ``recall@k`` / ``ndcg@k`` — utility: each retained user's held-out item (the test split of
  :class:`~lightning_unlearn.datamodules.RecommendationDataModule`; one item per user under leave-one-out, so
  Recall@k is that user's hit rate). The usual B5 setting is ``k=20``.
* ``forget_recall@k`` / ``forget_ndcg@k`` — forgetting: for each user an interaction was deleted from, the deleted
  items as the relevant ones (Recall@k: the share of a user's deleted items back in their top k), with
  ``forget_mean_rank`` / ``forget_median_rank`` (1 = top) of every deleted interaction. Unlearning should bring these
  close to the retrained oracle's, not to zero: an item a user would plausibly like may stay near the top.

Candidates are every item except the user's *retained* training interactions (the usual "exclude what the user
already has" filter, with the training data the oracle saw), so the deleted items and the held-out item compete
with the whole unseen catalogue, and the original, the oracle and every unlearned model are ranked over the same
candidates.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.retrieval import RetrievalNormalizedDCG, RetrievalRecall

from lightning_unlearn._errors import check_int
from lightning_unlearn.tasks.base import evaluating
from lightning_unlearn.tasks.recommendation import RecommendationTask

__all__ = ["evaluate_weights", "main", "membership_auc", "membership_pairs", "ranking_metrics", "ranks_of", "top_k_items"]


def _interaction_matrix(users: Tensor, items: Tensor, num_users: int, num_items: int) -> Tensor:
    matrix = torch.zeros(num_users, num_items, dtype=torch.bool)
    matrix[users.long(), items.long()] = True
    return matrix


def ranks_of(scores: Tensor, items: Tensor, excluded: Tensor) -> Tensor:
    """1-based rank of ``items[b]`` among the non-``excluded`` candidates of row ``b`` of ``scores`` ``[B, I]``
    (ties count against the item: rank = 1 + the candidates scoring at least as high, other than itself)."""
    own = scores.gather(1, items[:, None])
    above = (scores >= own) & ~excluded
    above.scatter_(1, items[:, None], False)
    return above.sum(1) + 1


@torch.no_grad()
def top_k_items(
    model: nn.Module, users: Tensor, k: int, excluded: Tensor | None = None, num_items: int | None = None
) -> Tensor:
    """``[B, k]`` indices of each user's top-``k`` items (``excluded``: an optional ``[B, I]`` mask of items left out;
    ``num_items`` is needed for a model without ``score_all`` when ``excluded`` is not given)."""
    if num_items is None and excluded is not None:
        num_items = int(excluded.shape[1])
    scores = RecommendationTask().scores(model, users, num_items)
    if excluded is not None:
        scores = scores.masked_fill(excluded, float("-inf"))
    return scores.topk(k, dim=1).indices


def _retrieval(preds: list[Tensor], target: list[Tensor], indexes: list[Tensor], k: int) -> dict[str, float]:
    if not preds:
        return {}
    p, t, i = torch.cat(preds), torch.cat(target), torch.cat(indexes)
    recall = RetrievalRecall(top_k=k, empty_target_action="skip")
    ndcg = RetrievalNormalizedDCG(top_k=k, empty_target_action="skip")
    return {"recall": float(recall(p, t, indexes=i)), "ndcg": float(ndcg(p, t, indexes=i))}


@torch.no_grad()
def ranking_metrics(model: nn.Module, data: Any, k: int = 20, batch_size: int = 256, device: torch.device | str | None = None) -> dict[str, float]:
    """Recall@k / NDCG@k on the retained users' held-out items and the deleted items' ranks (module docstring).

    Args:
        model: A recommender called as ``model(users, items)``; ``score_all(users)`` is used when it has one.
        data: A :class:`~lightning_unlearn.datamodules.RecommendationDataModule` (its ``test_*``, ``forget_*``,
            ``retain_*`` interactions and catalogue sizes).
        k: The cut-off (20 in benchmark B5).
        batch_size: Users ranked at once.
        device: Where to score (default: the model's device).

    Returns:
        ``recall@k``, ``ndcg@k``, ``forget_recall@k``, ``forget_ndcg@k``, ``forget_hit@k`` (the share of deleted
        interactions ranked in their user's top k), ``forget_mean_rank``, ``forget_median_rank``,
        ``test_users`` and ``forget_users`` (how many users each part averages over).
    """
    check_int("k", k)
    check_int("batch_size", batch_size)
    for name in ("test_users", "test_items", "forget_users", "forget_items", "retain_users", "retain_items", "num_users", "num_items"):
        if not hasattr(data, name):
            raise TypeError(f"`data` should be a RecommendationDataModule (it has no `{name}`), got {type(data).__name__}.")
    task = RecommendationTask()
    num_users, num_items = int(data.num_users), int(data.num_items)
    if k > num_items:
        raise ValueError(f"`k` should be at most the number of items ({num_items}), got {k}.")
    seen = _interaction_matrix(data.retain_users, data.retain_items, num_users, num_items)
    test = _interaction_matrix(data.test_users, data.test_items, num_users, num_items)
    forgotten = _interaction_matrix(data.forget_users, data.forget_items, num_users, num_items)
    users = torch.unique(torch.cat([data.test_users, data.forget_users]))
    parts: dict[str, tuple[list[Tensor], list[Tensor], list[Tensor]]] = {"test": ([], [], []), "forget": ([], [], [])}
    ranks: list[Tensor] = []
    with evaluating(model) as found:
        device = found if device is None else device
        for start in range(0, users.numel(), batch_size):
            batch = users[start : start + batch_size]
            scores = task.scores(model, batch.to(device), num_items).float().cpu()
            excluded = seen[batch]
            candidate = ~excluded
            for name, relevant in (("test", test[batch]), ("forget", forgotten[batch])):
                rows = relevant.any(1)
                if not rows.any():
                    continue
                keep = candidate[rows]
                preds, target = parts[name][0], parts[name][1]
                preds.append(scores[rows][keep])
                target.append(relevant[rows][keep])
                parts[name][2].append(batch[rows][:, None].expand(-1, num_items)[keep])
            pair_rows, pair_items = torch.nonzero(forgotten[batch], as_tuple=True)
            if pair_rows.numel():
                ranks.append(ranks_of(scores[pair_rows], pair_items, excluded[pair_rows]))
    out: dict[str, float] = {}
    for name, prefix in (("test", ""), ("forget", "forget_")):
        for metric, value in _retrieval(*parts[name], k).items():
            out[f"{prefix}{metric}@{k}"] = value
    if ranks:
        all_ranks = torch.cat(ranks).float()
        out[f"forget_hit@{k}"] = float((all_ranks <= k).float().mean())
        out["forget_mean_rank"] = float(all_ranks.mean())
        out["forget_median_rank"] = float(all_ranks.median())
    out["test_users"] = float(torch.unique(data.test_users).numel())
    out["forget_users"] = float(torch.unique(data.forget_users).numel())
    return out


def membership_pairs(data: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(member_users, member_items, nonmember_users, nonmember_items)`` for the membership inference of B5: the
    deleted interactions against never-seen interactions *of the same users*: the held-out interactions of the
    deleted users (items) for a request by users (items), else the held-out interactions of the users that lost
    interactions (each user's latest one, never trained on by any model)."""
    users, items = data.deleted_heldout_users, data.deleted_heldout_items
    if users.numel() == 0:
        keep = torch.isin(data.test_users, torch.unique(data.forget_users))
        users, items = data.test_users[keep], data.test_items[keep]
    if users.numel() == 0:
        raise ValueError("The deletion request leaves no never-seen interaction of the same users to compare with.")
    return data.forget_users, data.forget_items, users, items


@torch.no_grad()
def membership_auc(model: nn.Module, data: Any, batch_size: int = 256) -> float:
    """Membership-inference AUC of deleted vs never-seen interactions (:func:`membership_pairs`), the attack score
    being the interaction's rank percentile among its user's candidates (``1 − (rank − 1) / #candidates``; the
    candidates exclude the user's retained training items, as in :func:`ranking_metrics`), so users are comparable.
    0.5: the deleted interactions look like never-seen ones. Compare with the oracle's, which is not 0.5 either
    (a deleted item the user would plausibly like stays high)."""
    from lightning_unlearn.metrics import auroc

    task = RecommendationTask()
    member_u, member_i, other_u, other_i = membership_pairs(data)
    num_users, num_items = int(data.num_users), int(data.num_items)
    seen = _interaction_matrix(data.retain_users, data.retain_items, num_users, num_items)

    def percentiles(users: Tensor, items: Tensor, device: torch.device) -> Tensor:
        out = []
        for start in range(0, users.numel(), batch_size):
            u, i = users[start : start + batch_size], items[start : start + batch_size]
            scores = task.scores(model, u.to(device), num_items).float().cpu()
            excluded = seen[u].clone()
            excluded[torch.arange(u.numel()), i] = False
            ranks = ranks_of(scores, i, excluded).float()
            out.append(1 - (ranks - 1) / (~excluded).sum(1).float())
        return torch.cat(out)

    with evaluating(model) as device:
        return auroc(percentiles(member_u, member_i, device), percentiles(other_u, other_i, device))


# ---------------------------------------------------------------------------------------------- command line
def evaluate_weights(config: str, weights: dict[str, str], k: int = 20) -> dict[str, dict[str, float]]:
    """:func:`ranking_metrics` of each weights file (``{label: path}``) on the model and deletion request of the
    ``lightning-unlearn`` config ``config`` (a shipped config name such as ``"movielens/ga"`` or a YAML path)."""
    from lightning_unlearn._weights import load_weights
    from lightning_unlearn.configs import instantiate, load_config

    spec = load_config(config)
    for key in ("model", "data"):
        if key not in spec:
            raise ValueError(f"`config` {config!r} should be a lightning-unlearn config with a {key!r} section.")
    data = instantiate(spec["data"])
    model = instantiate(spec["model"]["init_args"]["model"])
    results = {}
    for label, path in weights.items():
        load_weights(model, path, argument="weights")
        results[label] = ranking_metrics(model, data, k=k)
    return results


def main(argv: list[str] | None = None) -> None:
    """``python -m lightning_unlearn.evaluation.recommendation --config movielens/ga --weights original=... ga=...``:
    a table of Recall@k / NDCG@k on retained users and the deleted items' ranks, one row per weights file."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--config", required=True, help="a config naming the model and the RecommendationDataModule")
    parser.add_argument("--weights", nargs="+", required=True, help="label=path of a weights file (or a checkpoint)")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--out", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    weights = {}
    for item in args.weights:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            parser.error(f"`--weights` entries should be label=path, got {item!r}")
        weights[label] = path
    results = evaluate_weights(args.config, weights, k=args.k)
    columns = [f"recall@{args.k}", f"ndcg@{args.k}", f"forget_recall@{args.k}", f"forget_ndcg@{args.k}", f"forget_hit@{args.k}", "forget_mean_rank", "forget_median_rank"]
    print(" | ".join(["model", *columns]))
    for label, metrics in results.items():
        print(" | ".join([label, *(f"{metrics.get(c, float('nan')):.4f}" if "rank" not in c else f"{metrics.get(c, float('nan')):.1f}" for c in columns)]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"config": args.config, "k": args.k, "weights": weights, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
