"""A LightGCN-style graph recommender over the user-item interaction graph, with the same content branches as
:class:`~lightning_unlearn.models.ContentMF`.

He, Deng, Wang, Li, Zhang, Wang, "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020 (arXiv 2002.02126). The layer-0 embeddings are the user ID embeddings and the fused item
vectors ``q_i`` of :class:`ContentMF` (ID + gated genre + gated MiniLM title branch); each layer propagates them over
the symmetrically normalised bipartite adjacency ``Â = D^{-1/2} A D^{-1/2}`` of the *training* interactions, and the
final representation is the mean of the layers:

    E^{(l+1)} = (Â E^{(l)}) ⊙ w_l,        e_u, e_i = mean_{l=0..L} E^{(l)},        s(u, i) = <e_u, e_i> + b_i

The one departure from LightGCN is ``w_l``, a per-layer diagonal scale (initialised to ones, so at start it *is*
LightGCN): it gives every propagation layer its own parameters, so that TRU's capacity-aware layer isolation
(issue 15) has layers to isolate. ``layer_scale=False`` gives plain LightGCN.

**The graph is part of the model and is built from the training interactions only** (:meth:`set_graph`; the edge
lists are persistent buffers, so a weights file carries the graph it was trained with). Deleting interactions removes
their edges (:meth:`remove_interactions`) and renormalises ``Â`` over the remaining degrees: for an unlearned model
this is the first, exact, step of unlearning (the deleted user's node becomes isolated; an item loses those
neighbours), and the reverse update then removes what the *embeddings* learned from the deleted edges. The oracle is
trained from scratch on the retain graph. In a ``lightning-unlearn fit`` config the
:class:`~lightning_unlearn.callbacks.GraphFromData` callback sets the graph from the datamodule (every training
interaction with ``train_on: all``, the retained ones otherwise) before the run starts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_int
from lightning_unlearn.models.recommender import ContentMF, movielens_title_embeddings

__all__ = ["ContentLightGCN", "MovieLensLightGCN", "normalized_adjacency"]


def normalized_adjacency(users: Tensor, items: Tensor, num_users: int, num_items: int) -> Tensor:
    """``D^{-1/2} A D^{-1/2}`` of the bipartite graph (users first, then items) as a sparse COO ``[N, N]`` tensor,
    ``N = num_users + num_items``; duplicate edges count once, isolated nodes have an empty row."""
    n = num_users + num_items
    keys = torch.unique(users.long() * num_items + items.long())
    u, i = torch.div(keys, num_items, rounding_mode="floor"), keys % num_items
    rows = torch.cat([u, i + num_users])
    cols = torch.cat([i + num_users, u])
    degree = torch.bincount(rows, minlength=n).float()
    inv_sqrt = degree.clamp_min(1.0).rsqrt()
    values = inv_sqrt[rows] * inv_sqrt[cols]
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=False).coalesce()


class _LayerScale(nn.Module):
    """The per-layer diagonal scale ``w_l`` (ones at initialisation)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.fill_(1.0)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight


class ContentLightGCN(ContentMF):
    """LightGCN-style propagation of :class:`ContentMF`'s user and fused item vectors (module docstring).

    Args:
        num_users, num_items, dim, genres, title_embeddings, fusion, init_std: as in :class:`ContentMF`.
        num_layers: Propagation layers ``L`` (LightGCN uses 1-4; 2 here by default).
        layer_scale: Give each layer its diagonal scale ``w_l`` (``False``: plain LightGCN, no per-layer parameters).
        users, items: The training interactions the graph is built from (``None``: no edges until :meth:`set_graph`).
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        dim: int = 64,
        genres: Tensor | None = None,
        title_embeddings: Tensor | None = None,
        fusion: str = "gated",
        init_std: float = 0.1,
        num_layers: int = 2,
        layer_scale: bool = True,
        users: Tensor | None = None,
        items: Tensor | None = None,
    ) -> None:
        super().__init__(num_users, num_items, dim=dim, genres=genres, title_embeddings=title_embeddings, fusion=fusion, init_std=init_std)
        check_int("num_layers", num_layers)
        self.num_layers = num_layers
        self.layers = nn.ModuleList([_LayerScale(dim) for _ in range(num_layers)]) if layer_scale else None
        self.register_buffer("edge_users", torch.zeros(0, dtype=torch.long))
        self.register_buffer("edge_items", torch.zeros(0, dtype=torch.long))
        self._adjacency: Tensor | None = None
        self._propagated: tuple[tuple, Tensor, Tensor] | None = None  # (key, e_users, e_items) of the last propagation
        if (users is None) != (items is None):
            raise ValueError("Give both `users` and `items` (the training interactions of the graph), or neither.")
        if users is not None and items is not None:
            self.set_graph(users, items)

    # ------------------------------------------------------------------ the graph
    def set_graph(self, users: Tensor, items: Tensor) -> None:
        """Build the propagation graph from these interactions (user / item indices), replacing the current one."""
        users, items = torch.as_tensor(users).long().flatten(), torch.as_tensor(items).long().flatten()
        if users.shape != items.shape:
            raise ValueError(f"`users` and `items` should have one length, got {tuple(users.shape)} and {tuple(items.shape)}.")
        if users.numel() and (int(users.min()) < 0 or int(users.max()) >= self.num_users):
            raise ValueError(f"`users` should be indices in [0, {self.num_users}), got values in [{int(users.min())}, {int(users.max())}].")
        if items.numel() and (int(items.min()) < 0 or int(items.max()) >= self.num_items):
            raise ValueError(f"`items` should be indices in [0, {self.num_items}), got values in [{int(items.min())}, {int(items.max())}].")
        device = self.edge_users.device
        self.edge_users = users.to(device)
        self.edge_items = items.to(device)
        self._adjacency = None
        self._propagated = None

    def remove_interactions(self, users: Tensor, items: Tensor) -> int:
        """Drop the edges of these interactions from the graph (``Â`` is renormalised); returns how many were dropped."""
        users, items = torch.as_tensor(users).long().flatten().cpu(), torch.as_tensor(items).long().flatten().cpu()
        drop = users * self.num_items + items
        keys = self.edge_users.cpu() * self.num_items + self.edge_items.cpu()
        keep = ~torch.isin(keys, drop)
        self.set_graph(self.edge_users[keep.to(self.edge_users.device)], self.edge_items[keep.to(self.edge_items.device)])
        return int((~keep).sum())

    @property
    def num_edges(self) -> int:
        return int(self.edge_users.numel())

    def adjacency(self) -> Tensor:
        """The normalised adjacency ``Â`` (built on first use after :meth:`set_graph`, then cached)."""
        device = self.user_embedding.weight.device
        if self._adjacency is None or self._adjacency.device != device:
            self._adjacency = normalized_adjacency(self.edge_users.cpu(), self.edge_items.cpu(), self.num_users, self.num_items).to(device)
            self._propagated = None
        return self._adjacency

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        # a weights file carries its own graph, whose edge count differs from this model's
        for name in ("edge_users", "edge_items"):
            value = state_dict.get(prefix + name)
            if isinstance(value, Tensor):
                setattr(self, name, torch.empty_like(value, device=getattr(self, name).device))
        self._adjacency = None
        self._propagated = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ scoring
    def _propagation_key(self) -> tuple:
        """What the propagated embeddings depend on besides the graph (a new graph drops the cache): the mode and every
        parameter's storage and in-place version (an optimiser step or ``load_state_dict`` bumps the version, a
        swapped ``.data`` the pointer)."""
        self.adjacency()  # (re)builds the graph first, which drops a stale cache
        return (self.training, tuple((p.data_ptr(), p._version) for p in self.parameters()))

    def propagate(self, grad_scale: dict[str, float | Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """``(e_users [U, dim], e_items [I, dim])``: the layer means of the propagated embeddings.

        Without autograd (scoring the catalogue, TRU's ranking gate, evaluation) the last propagation is reused while
        the graph and the parameters are unchanged, so scoring many user batches, or a step's forward followed by a
        no-grad ranking of the same weights, propagates once. ``grad_scale`` changes gradients only, never values.
        """
        key = self._propagation_key()
        if not torch.is_grad_enabled() and self._propagated is not None and self._propagated[0] == key:
            return self._propagated[1], self._propagated[2]
        e_users, e_items = self._propagate(grad_scale)
        self._propagated = (key, e_users.detach(), e_items.detach())
        return e_users, e_items

    def _propagate(self, grad_scale: dict[str, float | Tensor] | None) -> tuple[Tensor, Tensor]:
        layer = torch.cat([self.user_embedding.weight, self.item_vectors(None, grad_scale)])
        total = layer
        if self.num_edges:
            adjacency = self.adjacency()
            for k in range(self.num_layers):
                layer = torch.sparse.mm(adjacency, layer)
                if self.layers is not None:
                    layer = self.layers[k](layer)
                total = total + layer
        final = total / (self.num_layers + 1)
        return final[: self.num_users], final[self.num_users :]

    def forward(self, users: Tensor, items: Tensor, grad_scale: dict[str, float | Tensor] | None = None) -> Tensor:
        """Scores ``[B]`` of the pairs ``(users[b], items[b])`` (one propagation over the whole graph)."""
        e_users, e_items = self.propagate(grad_scale)
        return (e_users[users] * e_items[items]).sum(-1) + self.item_bias(items).squeeze(-1)

    def user_vectors(self, users: Tensor) -> Tensor:
        """``[B, dim]``: the propagated user representations ``e_u``."""
        return self.propagate()[0][users]

    def score_all(self, users: Tensor) -> Tensor:
        e_users, e_items = self.propagate()
        return e_users[users] @ e_items.T + self.item_bias.weight.squeeze(-1)


class MovieLensLightGCN(ContentLightGCN):
    """:class:`ContentLightGCN` sized and fed from MovieLens-100k, its graph built from the leave-latest-out training
    interactions of every user (:class:`~lightning_unlearn.datamodules.RecommendationDataModule`'s protocol; a
    deletion request's edges are removed by :meth:`~ContentLightGCN.remove_interactions` or the
    :class:`~lightning_unlearn.callbacks.GraphFromData` callback).

    Args:
        dim, genres, titles, fusion, init_std, data_path: as in :class:`~lightning_unlearn.models.MovieLensMF`.
        num_layers, layer_scale: as in :class:`ContentLightGCN`.
        min_rating, max_users: The same filters as the datamodule's (the graph's interactions).
    """

    def __init__(
        self,
        dim: int = 64,
        genres: bool = True,
        titles: bool = True,
        fusion: str = "gated",
        init_std: float = 0.1,
        num_layers: int = 2,
        layer_scale: bool = True,
        min_rating: float | None = None,
        max_users: int | None = None,
        data_path: str | None = None,
    ) -> None:
        from lightning_unlearn.datamodules.movielens import load_movielens_100k
        from lightning_unlearn.datamodules.recommendation import leave_latest_out

        data = load_movielens_100k(data_path, argument="data_path")
        keep = torch.ones(len(data), dtype=torch.bool)
        if min_rating is not None:
            keep &= data.ratings >= float(min_rating)
        if max_users is not None:
            keep &= data.users < max_users
        rows = torch.nonzero(keep).flatten()
        users, items = data.users[rows], data.items[rows]
        train = ~leave_latest_out(users, data.timestamps[rows])
        super().__init__(
            data.num_users,
            data.num_items,
            dim=dim,
            genres=data.genres if genres else None,
            title_embeddings=movielens_title_embeddings(data_path) if titles else None,
            fusion=fusion,
            init_std=init_std,
            num_layers=num_layers,
            layer_scale=layer_scale,
            users=users[train],
            items=items[train],
        )
