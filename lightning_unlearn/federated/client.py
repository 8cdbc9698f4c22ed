"""What a federated client computes, with Lightning Fabric and the library's unlearning engine.

Every local run — FedAvg training, FOUL's Phase I, FedEraser's calibration, the leaving client's projected gradient
ascent — steps through :class:`~lightning_unlearn.engine.FabricStepper` (``fabric.backward``, Fabric's optimizer).
Plain training is the engine running :class:`~lightning_unlearn.methods.FineTune` (cross-entropy on the client's
data as the retain batch); gradient ascent is the engine running :class:`~lightning_unlearn.methods.GradientAscent`
on the client's data as the forget batch; FOUL's Phase I steps its own objective through the same stepper.
Nothing here imports Flower: :mod:`lightning_unlearn.federated.apps` wraps these functions in a ``ClientApp``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_unlearn._errors import check_choice, check_int, check_positive
from lightning_unlearn.datamodules.vision import load_fashion_mnist
from lightning_unlearn.engine import FabricStepper, Progress, StepBatch, UnlearningEngine, make_fabric, run_steps
from lightning_unlearn.federated import foul
from lightning_unlearn.federated.model import FederatedNet
from lightning_unlearn.federated.partition import partition_clients
from lightning_unlearn.federated.pga import projection_hook
from lightning_unlearn.methods import FineTune, GradientAscent
from lightning_unlearn.tasks.base import evaluating
from lightning_unlearn.tasks.classification import ClassificationTask

OBJECTIVES = {"ce": "cross-entropy (plain FedAvg)", "foul": "FOUL's Phase I objective"}
#: The deletion requests a federation handles (``federation.request`` in a federated_fmnist config).
REQUESTS = {
    "client": "the requesting client leaves (all its data)",
    "class": "the requesting client deletes every sample of one class (`forget_class`) and stays",
    "samples": "the requesting client deletes a seeded fraction (`forget_fraction`) of its samples and stays",
}
#: Which part of the requesting client's data a message asks it to use (the other clients always use all of theirs).
PARTS = ("all", "retain", "forget")
#: ``forget_class: largest``: the requesting client's most frequent class (resolved on the client; ties: lowest id).
LARGEST = "largest"


@dataclass(frozen=True)
class Federation:
    """How the training set is split across clients (the same values on the server and on every client).

    Args:
        num_clients: Number of clients.
        scheme: ``"iid"`` or ``"dirichlet"``.
        alpha: Dirichlet concentration.
        samples_per_client: Cap on each client's samples (seeded subsample; ``None`` = whole share).
        seed: Seed of the split.
        train_limit: Use only the first ``train_limit`` Fashion-MNIST training images (``None`` = all 60,000).
    """

    num_clients: int = 10
    scheme: str = "iid"
    alpha: float = 0.5
    samples_per_client: int | None = 600
    seed: int = 0
    train_limit: int | None = None

    def to_config(self) -> dict[str, int | float | str]:
        """As a Flower ``ConfigRecord`` payload (``None`` is sent as 0)."""
        return {
            "num-clients": self.num_clients,
            "scheme": self.scheme,
            "alpha": float(self.alpha),
            "samples-per-client": self.samples_per_client or 0,
            "split-seed": self.seed,
            "train-limit": self.train_limit or 0,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> Federation:
        return cls(
            num_clients=int(config["num-clients"]),
            scheme=str(config["scheme"]),
            alpha=float(config["alpha"]),
            samples_per_client=int(config["samples-per-client"]) or None,
            seed=int(config["split-seed"]),
            train_limit=int(config["train-limit"]) or None,
        )


@dataclass(frozen=True)
class Request:
    """A deletion request at one client: it leaves (``kind="client"``), or it deletes one class of its data
    (``"class"``, ``forget_class``: a class id or ``"largest"``) or a seeded fraction of its samples (``"samples"``,
    ``forget_fraction`` in (0, 1); the samples are drawn with ``seed``) and stays in the federation.

    The request travels as settings in each message's ``ConfigRecord`` (:meth:`to_config`); the requesting client
    computes its forget / retained parts itself (:func:`request_split`), so the server never holds an index of a
    forgotten sample.
    """

    kind: str = "client"
    client: int = 0
    forget_class: int | str | None = None
    forget_fraction: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("request", self.kind, REQUESTS)
        check_int("client", self.client, minimum=0)
        if self.kind == "class":
            c = self.forget_class
            if c != LARGEST and (isinstance(c, bool) or not isinstance(c, int) or c < 0):
                raise ValueError(f"`forget_class` should be a class id (an int >= 0) or {LARGEST!r} for request='class', got {c!r}.")
        if self.kind == "samples":
            f = self.forget_fraction
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 < f < 1.0:
                raise ValueError(f"`forget_fraction` should be a number in (0, 1) for request='samples', got {f!r}.")

    def to_config(self) -> dict[str, int | float | str]:
        """As ``ConfigRecord`` entries (none for a client-leaving request, whose messages stay as they were)."""
        if self.kind == "client":
            return {}
        return {
            "request": self.kind,
            "request-client": self.client,
            "forget-class": str(self.forget_class) if self.kind == "class" else "",
            "forget-fraction": float(self.forget_fraction) if self.kind == "samples" else 0.0,
            "request-seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> Request:
        """The request a message's ``ConfigRecord`` carries (a client-leaving request when it carries none)."""
        if "request" not in config:
            return cls()
        kind = str(config["request"])
        forget_class = str(config["forget-class"])
        return cls(
            kind=kind,
            client=int(config["request-client"]),
            forget_class=(forget_class if forget_class == LARGEST else int(forget_class)) if kind == "class" else None,
            forget_fraction=float(config["forget-fraction"]) if kind == "samples" else None,
            seed=int(config["request-seed"]),
        )


def request_split(targets: Tensor, request: Request) -> tuple[Tensor, Tensor]:
    """The requesting client's ``(retained, forget)`` positions into its own data (labels ``targets``): disjoint,
    sorted, together all of its data. ``"class"``: the samples of ``forget_class``; ``"samples"``: a seeded draw of
    ``round(forget_fraction · n)`` samples. Errors when the request would delete nothing or everything."""
    n = int(targets.numel())
    if request.kind == "client":
        return torch.zeros(0, dtype=torch.long), torch.arange(n)
    if request.kind == "class":
        counts = torch.bincount(targets, minlength=1)
        present = [c for c in range(counts.numel()) if counts[c] > 0]
        c = int(counts.argmax()) if request.forget_class == LARGEST else int(request.forget_class)
        if c not in present:
            raise ValueError(
                f"`forget_class` should be a class present at client {request.client} (it holds {present}), got {request.forget_class!r}."
            )
        forget = targets == c
        if bool(forget.all()):
            raise ValueError(
                f"`forget_class` {c} is all of client {request.client}'s data ({n} samples): that is the request 'client' (the client leaves)."
            )
    else:
        k = round(float(request.forget_fraction) * n)
        if not 1 <= k < n:
            raise ValueError(
                f"`forget_fraction` {request.forget_fraction} of client {request.client}'s {n} samples selects {k}: it should select between 1 and {n - 1}."
            )
        drawn = torch.randperm(n, generator=torch.Generator().manual_seed(request.seed))[:k]
        forget = torch.zeros(n, dtype=torch.bool)
        forget[drawn] = True
    return torch.nonzero(~forget).flatten(), torch.nonzero(forget).flatten()


def forgotten_class(federation: Federation, request: Request) -> int | None:
    """The class id a ``"class"`` request deletes (``"largest"`` resolved on the client's data); ``None`` otherwise."""
    if request.kind != "class":
        return None
    if request.forget_class != LARGEST:
        return int(request.forget_class)
    return int(torch.bincount(client_data(federation, request.client).tensors[1]).argmax())


@functools.lru_cache(maxsize=2)
def _train_set(limit: int | None) -> TensorDataset:
    """The standardised Fashion-MNIST training set, built once per process (every message, evaluation and request
    split indexes it; indexing copies, so the cached tensors are never handed out)."""
    return load_fashion_mnist("train", limit=limit)


@functools.lru_cache(maxsize=4)
def client_shares(federation: Federation) -> tuple[Tensor, ...]:
    """Every client's sample indices into the Fashion-MNIST training set (cached per process)."""
    data = _train_set(federation.train_limit)
    return tuple(
        partition_clients(
            data.targets,
            federation.num_clients,
            federation.scheme,
            alpha=federation.alpha,
            samples_per_client=federation.samples_per_client,
            seed=federation.seed,
        )
    )


def client_data(federation: Federation, client: int) -> TensorDataset:
    """Client ``client``'s local data set (images, labels)."""
    check_int("client", client, minimum=0)
    if client >= federation.num_clients:
        raise ValueError(f"`client` should be in [0, {federation.num_clients - 1}], got {client}.")
    data = _train_set(federation.train_limit)
    idx = client_shares(federation)[client]
    return TensorDataset(data.tensors[0][idx], data.targets[idx])


def client_part(federation: Federation, client: int, request: Request, part: str = "all") -> TensorDataset:
    """The data client ``client`` uses for a message: ``part`` (``"all"``, ``"retain"`` or ``"forget"``) of the
    requesting client's data under ``request``; every other client (and every client of a client-leaving request)
    uses all of its data."""
    check_choice("part", part, PARTS)
    data = client_data(federation, client)
    if part == "all" or request.kind == "client" or client != request.client:
        return data
    retain, forget = request_split(data.tensors[1], request)
    idx = retain if part == "retain" else forget
    return TensorDataset(data.tensors[0][idx], data.tensors[1][idx])


def message_data(config: Mapping[str, object], client: int) -> TensorDataset:
    """The data a message's ``ConfigRecord`` asks client ``client`` to use (the federation, the request and the
    requesting client's ``requester-part``): computed on the client from the settings alone."""
    return client_part(Federation.from_config(config), client, Request.from_config(config), str(config.get("requester-part", "all")))


def _batches(data: TensorDataset, batch_size: int, epochs: int, seed: int, split: str) -> Iterator[StepBatch]:
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        for batch in DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator):
            batch = list(batch)
            yield StepBatch(forget=batch if split == "forget" else None, retain=batch if split == "retain" else None, progress=Progress(epoch=epoch, max_epochs=epochs))


def local_train(
    model: nn.Module,
    data: TensorDataset,
    *,
    lr: float,
    epochs: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    objective: str = "ce",
    foul_weights: Mapping[str, float] | None = None,
) -> int:
    """Train ``model`` in place on a client's data with SGD through Fabric; returns the number of steps."""
    check_positive("lr", lr)
    check_int("epochs", epochs, minimum=0)
    check_choice("objective", objective, OBJECTIVES)
    torch.manual_seed(seed)
    task = ClassificationTask(num_classes=None)
    method = FineTune()
    method.setup(model, task)
    engine = UnlearningEngine(method, task)
    stepper = FabricStepper(make_fabric("cpu"), model, torch.optim.SGD(model.parameters(), lr=lr), engine)
    model.train()
    batches = _batches(data, batch_size, epochs, seed, "retain")
    if objective == "ce":
        return run_steps(engine, stepper, batches).steps
    if not isinstance(model, FederatedNet):
        raise TypeError(f"objective='foul' needs a FederatedNet (FOUL's five parts), got {type(model).__name__}.")
    weights = dict(foul.PHASE_ONE_DEFAULTS, **(foul_weights or {}))
    steps = 0
    for item in batches:
        stepper.step(lambda m, item=item: foul.phase_one_loss(m, item.retain, **weights))
        steps += 1
    return steps


def projected_ascent(
    model: nn.Module,
    data: TensorDataset,
    center: Mapping[str, Tensor],
    radius: float,
    *,
    lr: float,
    max_epochs: int = 5,
    batch_size: int = 32,
    stop_accuracy: float = 0.1,
    seed: int = 0,
) -> tuple[int, float]:
    """Halimi et al.'s unlearning by the leaving client: gradient ascent on its data through the engine
    (:class:`~lightning_unlearn.methods.GradientAscent`), projected onto the ball around ``center`` after every step,
    until its accuracy on its own data falls below ``stop_accuracy``. Returns (steps, final accuracy)."""
    check_positive("lr", lr)
    check_positive("radius", radius, allow_zero=True)
    torch.manual_seed(seed)
    task = ClassificationTask(num_classes=None)
    method = GradientAscent()
    method.setup(model, task)
    engine = UnlearningEngine(method, task)
    stepper = FabricStepper(
        make_fabric("cpu"), model, torch.optim.SGD(model.parameters(), lr=lr), engine, after_step=projection_hook(model, center, radius)
    )
    model.train()
    accuracy = evaluate_accuracy(model, data)
    steps = 0
    for epoch in range(max_epochs):
        if accuracy < stop_accuracy:
            break
        steps += run_steps(engine, stepper, _batches(data, batch_size, 1, seed + epoch, "forget")).steps
        accuracy = evaluate_accuracy(model, data)
    return steps, accuracy


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, data: TensorDataset, batch_size: int = 1000) -> float:
    with evaluating(model):
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in DataLoader(data, batch_size=batch_size))
    return correct / max(1, len(data))
