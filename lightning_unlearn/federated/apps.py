"""Flower apps: the ``ClientApp`` every SuperNode runs and the server-side driver of a federation.

Needs the ``federated`` extra (``flwr[simulation]``); this module imports Flower at import time, so import it only
when a federation runs (``import lightning_unlearn`` never does).

* :data:`client_app` answers three message types: ``query.info`` (its partition id and data size),
  ``train.local`` (local training from the sent weights: FedAvg, FOUL's Phase I, FedEraser's calibration) and
  ``train.pga`` (the leaving client's projected gradient ascent). All settings travel in the message's
  ``ConfigRecord``, so the same app runs under Flower's simulation engine and on its deployment engine
  (SuperLink + SuperNodes): set ``partition-id`` / ``num-partitions`` in each SuperNode's ``--node-config``.
* :class:`FederatedServer` wraps a ServerApp's ``Grid``: it maps partition ids to node ids, runs FedAvg rounds with
  any subset of clients, and counts the bytes of every message it sends and receives (the serialised protobuf size
  of each message's ``RecordDict``, as Flower puts it on the wire).
* :func:`simulate` runs a ServerApp main function on Flower's simulation engine (Ray) and always shuts Ray down.
* :data:`server_app` is the ServerApp for Flower's deployment engine (``flwr run`` on a SuperLink; the app project is
  ``examples/flower_app``): one deletion request (a client leaves, or deletes a class or samples) from a run config,
  written as a JSON report.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.serde import recorddict_to_proto
from flwr.serverapp import Grid, ServerApp
from torch import Tensor

from lightning_unlearn.federated.client import Federation, Request, local_train, message_data, projected_ascent
from lightning_unlearn.federated.model import FederatedNet
from lightning_unlearn.federated.weights import State, difference, weighted_mean

client_app = ClientApp()


def _model(config: Mapping[str, Any], arrays: ArrayRecord) -> FederatedNet:
    model = FederatedNet(hidden=int(config["hidden"]), latent=int(config["latent"]))
    model.load_state_dict(arrays.to_torch_state_dict())
    return model


def _client_id(context: Context) -> int:
    return int(context.node_config["partition-id"])


def _local_setup(msg: Message, context: Context) -> tuple[ConfigRecord, int, Any, FederatedNet]:
    """A training message's settings, this client's id and data, and the model built from the sent weights."""
    torch.set_num_threads(1)
    config = msg.content["config"]
    cid = _client_id(context)
    return config, cid, message_data(config, cid), _model(config, msg.content["model"])


def _reply(msg: Message, model: torch.nn.Module, metrics: dict[str, float | int]) -> Message:
    content = RecordDict({"model": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)})
    return Message(content, reply_to=msg)


@client_app.query("info")
def _info(msg: Message, context: Context) -> Message:
    config = msg.content["config"]
    cid = _client_id(context)
    size = len(message_data(config, cid)) if "num-clients" in config else 0
    return Message(RecordDict({"metrics": MetricRecord({"partition-id": cid, "num-examples": size})}), reply_to=msg)


@client_app.train("mpu")
def _train_mpu(msg: Message, context: Context) -> Message:
    """MPU's data owner: unlearn its private forget set on the perturbed copy it got; send back only the update."""
    from lightning_unlearn.federated import mpu_lm

    torch.set_num_threads(1)
    config = msg.content["config"]
    name = str(config.get("model", "tiny"))
    tokenizer, forget, _ = mpu_lm.authors_setup(int(config["n-authors"]), int(config["forget-authors"]), int(config["data-seed"]), model=name)
    model = mpu_lm.build_lm(tokenizer, **{k: int(config[k]) for k in mpu_lm.TINY_SIZES if k in config}, model=name)
    copy = msg.content["model"].to_torch_state_dict()
    mpu_lm.load_model_state(model, copy)
    steps = mpu_lm.run_method(
        model, tokenizer, forget, str(config["method"]), lr=float(config["lr"]), epochs=int(config["epochs"]), seed=int(config["seed"])
    )
    delta = mpu_lm.update(copy, model.state_dict())
    return Message(RecordDict({"update": ArrayRecord(delta), "metrics": MetricRecord({"steps": steps})}), reply_to=msg)


@client_app.train("local")
def _train_local(msg: Message, context: Context) -> Message:
    config, cid, data, model = _local_setup(msg, context)
    foul_weights = {k: float(config[k]) for k in ("alpha_v", "alpha_k", "alpha_gtc", "beta_kl") if k in config}
    steps = local_train(
        model,
        data,
        lr=float(config["lr"]),
        epochs=int(config["epochs"]),
        batch_size=int(config["batch-size"]),
        seed=int(config["seed"]) * 100_003 + cid,
        objective=str(config["objective"]),
        foul_weights=foul_weights,
    )
    return _reply(msg, model, {"partition-id": cid, "num-examples": len(data), "steps": steps})


@client_app.train("pga")
def _train_pga(msg: Message, context: Context) -> Message:
    config, cid, data, model = _local_setup(msg, context)
    steps, accuracy = projected_ascent(
        model,
        data,
        msg.content["center"].to_torch_state_dict(),
        float(config["radius"]),
        lr=float(config["lr"]),
        max_epochs=int(config["max-epochs"]),
        batch_size=int(config["batch-size"]),
        stop_accuracy=float(config["stop-accuracy"]),
        seed=int(config["seed"]) * 100_003 + cid,
    )
    return _reply(msg, model, {"partition-id": cid, "num-examples": len(data), "steps": steps, "accuracy": accuracy})


def message_bytes(content: RecordDict) -> int:
    """The size of a message's content as Flower serialises it (protobuf ``RecordDict``)."""
    return recorddict_to_proto(content).ByteSize()


@dataclass
class Traffic:
    """Bytes and messages one phase exchanged (measured from the messages themselves)."""

    sent: int = 0
    received: int = 0
    messages: int = 0
    rounds: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.received


@dataclass
class FederatedServer:
    """The server side of a federation, on a ServerApp's ``Grid``.

    Args:
        grid: The ServerApp's grid.
        federation: The client split (sent to every client with each message).
        model_config: ``{"hidden": ..., "latent": ...}`` of :class:`FederatedNet`.
        wait_s: How long to wait for all ``federation.num_clients`` nodes to connect.
        request: The deletion request (sent as settings with each message; a client-leaving request sends none).
    """

    grid: Grid
    federation: Federation | None
    model_config: dict[str, int]
    wait_s: float = 120.0
    num_nodes: int = 1
    #: When lists, every outgoing / incoming message's content is appended (tests check what crossed the wire).
    sent_log: list[RecordDict] | None = None
    received_log: list[RecordDict] | None = None
    nodes: dict[int, int] = field(default_factory=dict)
    sizes: dict[int, int] = field(default_factory=dict)
    traffic: Traffic = field(default_factory=Traffic)
    request: Request = field(default_factory=Request)

    def connect(self) -> None:
        """Wait for the nodes and learn each one's partition id and data size (one ``query.info`` message each)."""
        deadline = time.monotonic() + self.wait_s
        wanted = self.federation.num_clients if self.federation is not None else self.num_nodes
        while len(ids := list(self.grid.get_node_ids())) < wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Only {len(ids)} of {wanted} nodes connected within {self.wait_s} s.")
            time.sleep(0.1)
        config = ConfigRecord(self.federation.to_config() if self.federation is not None else {})
        replies = self._exchange([(i, "query.info", RecordDict({"config": config})) for i in ids], count=False)
        for node, reply in replies.items():
            metrics = reply.content["metrics"]
            self.nodes[int(metrics["partition-id"])] = node
            self.sizes[int(metrics["partition-id"])] = int(metrics["num-examples"])

    def part_sizes(self, part: str) -> dict[int, int]:
        """Every client's data size when the requesting client uses ``part`` of its data (``query.info`` with the
        request's settings; only counts come back, never an index)."""
        config = self.config(**{"requester-part": part})
        replies = self._exchange([(node, "query.info", RecordDict({"config": config})) for node in self.nodes.values()], count=False)
        return {int(r.content["metrics"]["partition-id"]): int(r.content["metrics"]["num-examples"]) for r in replies.values()}

    def shares(self, clients: Iterable[int], sizes: Mapping[int, int] | None = None) -> dict[int, float]:
        """Data shares of ``clients`` among themselves (``sizes``: instead of the sizes :meth:`connect` learned)."""
        clients = list(clients)
        sizes = self.sizes if sizes is None else sizes
        total = sum(sizes[c] for c in clients)
        return {c: sizes[c] / total for c in clients}

    def _exchange(self, outgoing: list[tuple[int, str, RecordDict]], *, count: bool = True) -> dict[int, Message]:
        messages = [Message(content, dst_node_id=node, message_type=kind) for node, kind, content in outgoing]
        if self.sent_log is not None:
            self.sent_log.extend(content for _, _, content in outgoing)
        if count:
            self.traffic.sent += sum(message_bytes(m.content) for m in messages)
            self.traffic.messages += len(messages)
        replies = {}
        for reply in self.grid.send_and_receive(messages):
            if reply.has_error():
                raise RuntimeError(f"A client failed: {reply.error}")
            replies[reply.metadata.src_node_id] = reply
            if self.received_log is not None:
                self.received_log.append(reply.content)
            if count:
                self.traffic.received += message_bytes(reply.content)
                self.traffic.messages += 1
        if len(replies) != len(messages):
            raise RuntimeError(f"{len(messages) - len(replies)} of {len(messages)} clients did not reply.")
        return replies

    def config(self, **values: Any) -> ConfigRecord:
        federation = self.federation.to_config() if self.federation is not None else {}
        return ConfigRecord({**federation, **self.request.to_config(), **self.model_config, **values})

    def send(self, kind: str, per_client: Mapping[int, RecordDict], key: str = "model") -> dict[int, tuple[State, dict[str, float]]]:
        """Send one message per client (``{partition id: content}``); returns ``{partition id: (arrays, metrics)}``
        with the reply's ``key`` array record."""
        replies = self._exchange([(self.nodes[c], kind, content) for c, content in per_client.items()])
        back = {node: c for c, node in self.nodes.items()}
        out = {}
        for node, reply in replies.items():
            out[back[node]] = (reply.content[key].to_torch_state_dict(), dict(reply.content["metrics"]))
        return out

    def mpu(
        self,
        state: Mapping[str, Tensor],
        client: int,
        *,
        m: int,
        kappa: float,
        alphas: list[float] | None = None,
        seed: int = 0,
        reparameterize: bool = True,
        head_dim: int | None = None,
        **config: Any,
    ) -> State:
        """One MPU round with data owner ``client`` (:func:`lightning_unlearn.federated.mpu.mpu_round`): each
        perturbed copy goes out in its own ``train.mpu`` message; only updates come back. ``m=1, kappa=0`` without
        reparameterisation is the noise-free run (the client then receives θ itself); ``head_dim`` (the LM's attention
        head size) adds the attention rotations to the reparameterisation."""
        from lightning_unlearn.federated.mpu import mpu_round

        record = self.config(seed=seed, **config)

        def remote(copy: State) -> State:
            result = self.send("train.mpu", {client: RecordDict({"model": ArrayRecord(copy), "config": record})}, key="update")
            self.traffic.rounds += 1
            return result[client][0]

        if m == 1:
            if kappa != 0 or reparameterize:
                raise ValueError(f"m=1 is the noise-free run: it needs kappa=0 and reparameterize=False, got kappa={kappa}, reparameterize={reparameterize}.")
            delta = remote(dict(state))
            return {k: v + delta[k] for k, v in state.items()}
        return mpu_round(state, remote, m=m, kappa=kappa, alphas=alphas, seed=seed, reparameterize=reparameterize, head_dim=head_dim)

    def local_round(self, state: Mapping[str, Tensor], clients: Iterable[int], **config: Any) -> dict[int, State]:
        """Every client in ``clients`` trains from ``state`` (``train.local``); returns their local weights."""
        arrays = ArrayRecord(dict(state))
        record = self.config(**config)
        results = self.send("train.local", {c: RecordDict({"model": arrays, "config": record}) for c in sorted(clients)})
        self.traffic.rounds += 1
        return {c: results[c][0] for c in sorted(results)}

    def fedavg(
        self,
        state: Mapping[str, Tensor],
        clients: Iterable[int],
        rounds: int,
        *,
        seed: int,
        on_round: Callable[[int, State, dict[int, State]], None] | None = None,
        after_round: Callable[[int, State], None] | None = None,
        sizes: Mapping[int, int] | None = None,
        **config: Any,
    ) -> State:
        """``rounds`` FedAvg rounds over ``clients`` from ``state``; ``on_round(t, global, locals)`` sees each round's
        local models, ``after_round(t, new_global)`` each round's aggregate; ``sizes`` weigh the clients (default:
        their whole data, :meth:`connect`'s)."""
        clients = sorted(clients)
        shares = self.shares(clients, sizes)
        current = {k: v.clone() for k, v in state.items()}
        for t in range(rounds):
            local = self.local_round(current, clients, seed=seed * 1000 + t, **config)
            if on_round is not None:
                on_round(t, current, local)
            current = weighted_mean([local[c] for c in clients], [shares[c] for c in clients])
            if after_round is not None:
                after_round(t, current)
        return current


def updates(global_state: Mapping[str, Tensor], local: Mapping[int, Mapping[str, Tensor]]) -> dict[int, State]:
    """Each client's update ``w_i − w`` of one round."""
    return {c: difference(s, global_state) for c, s in local.items()}


def simulate(
    server_main: Callable[[FederatedServer], None],
    federation: Federation | None,
    model_config: dict[str, int],
    *,
    num_nodes: int | None = None,
    num_cpus: int = 2,
    verbose: bool = False,
) -> None:
    """Run ``server_main(server)`` as a ServerApp on Flower's simulation engine with :data:`client_app` on
    ``federation.num_clients`` SuperNodes (``num_nodes`` when there is no federation, e.g. MPU's data owners;
    Ray, ``num_cpus`` workers); Ray is shut down afterwards, also on errors."""
    nodes = federation.num_clients if federation is not None else int(num_nodes or 1)
    import logging
    import os

    from flwr.simulation import run_simulation

    # Ray starts its workers at niceness 15 by default: on a shared machine the clients would then only get the CPU
    # nobody else wants. Run them at the caller's priority (an explicit RAY_worker_niceness wins).
    os.environ.setdefault("RAY_worker_niceness", "0")

    server_app = ServerApp()
    errors: list[BaseException] = []

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        server = FederatedServer(grid, federation, model_config, num_nodes=nodes)
        try:
            server.connect()
            server_main(server)
        except BaseException as err:  # re-raised in the caller's thread below
            errors.append(err)
            raise

    if not verbose:
        logging.getLogger("flwr").setLevel(logging.WARNING)
    backend = {
        "init_args": {"num_cpus": num_cpus, "include_dashboard": False, "object_store_memory": 200 * 1024**2},
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
    }
    try:
        run_simulation(server_app=server_app, client_app=client_app, num_supernodes=nodes, backend_config=backend)
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    if errors:
        raise errors[0]


#: A ServerApp for Flower's deployment engine (``flwr run`` on a SuperLink; ``examples/flower_app`` is the app
#: project): runs B8's protocol for one deletion request and writes the unlearning report as JSON. Run config:
#: ``config`` (a federated_fmnist-style YAML: shipped name or path, see :func:`deployment_settings`) or ``scale``
#: (``quick`` / ``full``: ``federated_fmnist/<scale>``), ``leaving`` (the client that leaves; -1 or absent: the
#: config's), ``scheme``, ``seed`` (the config's first when absent) and ``out`` (the report's path).
server_app = ServerApp()


def _app_dirs() -> list[Path]:
    """Directories of the Flower apps installed on this machine that are on ``sys.path`` (Flower puts the running
    app's there before loading its ServerApp)."""
    from flwr.supercore.utils import get_flwr_home

    apps = (get_flwr_home() / "apps").resolve()
    return [Path(p) for p in sys.path if p and Path(p).resolve().is_relative_to(apps)]


def deployment_settings(run_config: Mapping[str, Any]) -> tuple[dict[str, Any], str, int]:
    """The settings, split scheme and seed of a deployment run from its run config.

    ``config`` is a shipped config name or the path of a YAML file; a relative path that is not a file in the working
    directory is looked up in the running Flower app's directory (so an app can ship its YAML); without ``config``,
    ``scale`` picks ``federated_fmnist/<scale>`` (default ``quick``). ``leaving``, ``scheme``, ``seed``, ``request``,
    ``forget-class`` and ``forget-fraction`` override the config's (checked as ``lightning-unlearn federated`` checks
    them; an empty ``request`` / ``forget-class`` or a zero ``forget-fraction`` keeps the config's)."""
    from lightning_unlearn import configs
    from lightning_unlearn.benchmarking import b8
    from lightning_unlearn.federated.cli import request_settings

    if "config" in run_config:
        name = str(run_config["config"])
        if not Path(name).expanduser().is_absolute() and not Path(name).is_file():
            found = [d / name for d in _app_dirs() if (d / name).is_file()]
            name = str(found[0]) if found else name
        settings = configs.load_config(name)
    else:
        settings = b8.load_settings(str(run_config.get("scale", "quick")))
    leaving = int(run_config.get("leaving", -1))
    return request_settings(
        settings,
        leaving=None if leaving == -1 else leaving,
        scheme=None if run_config.get("scheme") is None else str(run_config["scheme"]),
        seed=None if "seed" not in run_config else int(run_config["seed"]),
        # absent, "" or 0 (the app's defaults): the config's
        request=str(run_config["request"]) if run_config.get("request") else None,
        forget_class=str(run_config["forget-class"]) if run_config.get("forget-class") not in (None, "") else None,
        forget_fraction=float(run_config["forget-fraction"]) if run_config.get("forget-fraction") else None,
    )


@server_app.main()
def _deployment_main(grid: Grid, context: Context) -> None:
    from lightning_unlearn.benchmarking import b8, write_json
    from lightning_unlearn.federated.cli import request_header

    run_config = context.run_config
    settings, scheme, seed = deployment_settings(run_config)
    federation = b8.federation_for(settings, scheme, seed)
    server = FederatedServer(grid, federation, dict(settings["model"]["init_args"]))
    server.connect()
    start = time.perf_counter()
    rows = b8.run_protocol(server, settings, seed)
    oracle = rows["retrain"]
    leaving = server.request.client
    forget_samples = server.part_sizes("forget")[leaving] if server.request.kind != "client" else None  # a count only
    report = {
        "engine": "flower-deployment",
        **request_header(settings, scheme, seed, server.sizes[leaving], forget_samples),
        "nodes": {str(c): node for c, node in sorted(server.nodes.items())},
        "oracle": "retrain",
        "seconds": time.perf_counter() - start,
        "rows": {
            name: {
                "seconds": row["seconds"],
                "bytes": row["bytes"],
                "rounds": row["rounds"],
                "time_ratio": row["seconds"] / oracle["seconds"],
                "comm_ratio": row["bytes"] / oracle["bytes"],
            }
            for name, row in rows.items()
        },
    }
    write_json(str(run_config.get("out", "b8_report.json")), report)
