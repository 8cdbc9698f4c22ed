"""Seeded splits of a labelled data set across federated clients: IID and Dirichlet label skew."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lightning_unlearn._errors import check_choice, check_int, check_positive

PARTITION_SCHEMES = {
    "iid": "a seeded random permutation cut into equal shares",
    "dirichlet": "per class, shares drawn from Dirichlet(alpha) over the clients (label skew; Hsu et al. 2019, arXiv 1909.06335)",
}


def partition_clients(
    targets: Tensor,
    num_clients: int,
    scheme: str = "iid",
    *,
    alpha: float = 0.5,
    samples_per_client: int | None = None,
    min_samples: int = 10,
    seed: int = 0,
) -> list[Tensor]:
    """Split sample indices across ``num_clients`` clients; the same arguments give the same split in every process.

    Args:
        targets: Class labels of the whole training set, ``[N]``.
        num_clients: Number of clients.
        scheme: ``"iid"`` or ``"dirichlet"`` (see :data:`PARTITION_SCHEMES`).
        alpha: Dirichlet concentration (smaller = more skewed); used by ``"dirichlet"`` only.
        samples_per_client: Keep at most this many samples per client (a seeded subsample that keeps each
            client's label mix), so that runs are quick on CPUs; ``None`` keeps every share whole.
        min_samples: Dirichlet draws are repeated until every client holds at least this many samples.
        seed: Seed of the split.

    Returns:
        One sorted int64 index tensor per client (disjoint).
    """
    check_int("num_clients", num_clients, minimum=2)
    check_choice("scheme", scheme, PARTITION_SCHEMES)
    check_positive("alpha", alpha)
    check_int("samples_per_client", samples_per_client, minimum=1, optional=True)
    labels = np.asarray(torch.as_tensor(targets).cpu().numpy(), dtype=np.int64)
    if labels.ndim != 1 or labels.size < num_clients * max(1, min_samples):
        raise ValueError(
            f"`targets` should be a 1-D label tensor with at least num_clients * min_samples = "
            f"{num_clients * max(1, min_samples)} entries, got shape {tuple(labels.shape)}."
        )
    rng = np.random.default_rng(seed)
    if scheme == "iid":
        shares = np.array_split(rng.permutation(labels.size), num_clients)
    else:
        for _ in range(100):
            buckets: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
            for c in np.unique(labels):
                idx = rng.permutation(np.flatnonzero(labels == c))
                cuts = (np.cumsum(rng.dirichlet(np.full(num_clients, alpha))) * idx.size).astype(int)[:-1]
                for k, part in enumerate(np.split(idx, cuts)):
                    buckets[k].append(part)
            shares = [np.concatenate(b) for b in buckets]
            if min(s.size for s in shares) >= min_samples:
                break
        else:
            raise ValueError(
                f"100 Dirichlet(alpha={alpha}) draws left a client with fewer than min_samples={min_samples} "
                "samples; raise `alpha` or lower `min_samples`."
            )
    out = []
    for share in shares:
        if samples_per_client is not None and share.size > samples_per_client:
            share = rng.choice(share, samples_per_client, replace=False)
        out.append(torch.from_numpy(np.sort(share).astype(np.int64)))
    return out
