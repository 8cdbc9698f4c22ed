"""Benchmark B8's protocol: a client leaves a Flower federation on Fashion-MNIST (shared by ``benchmarks/b8_federated.py``).

For every split scheme (IID, Dirichlet) and seed, one ServerApp on Flower's simulation engine runs, with the same
initial weights (seeded):

* ``original``: FedAvg over all clients (``rounds`` rounds); the server keeps every client's update (FedEraser)
  and the last round's local models (projected gradient ascent);
* ``retrain`` — the oracle: FedAvg from the same initial weights without the leaving client, same rounds and seed;
* ``federaser``: FedEraser's calibrated replay (:mod:`lightning_unlearn.federated.federaser`) from the initial weights;
* ``pga``: the leaving client's projected gradient ascent (:mod:`lightning_unlearn.federated.pga`) and
  ``post_rounds`` FedAvg rounds of the remaining clients;
* ``foul_original`` / ``foul``: FedAvg with FOUL's Phase I objective over all clients (storing the θ_V gradients),
  then FOUL's server-only Phase II (:mod:`lightning_unlearn.federated.foul`) and ``post_rounds`` FedAvg rounds.

**Requests at one client that stays** (``federation.request``: ``class`` deletes ``forget_class`` of the requesting
client's data, ``samples`` a seeded ``forget_fraction`` of it): the requesting client computes its forget and retained
parts itself from the settings each message carries (:func:`lightning_unlearn.federated.client.request_split`);
``retrain`` is FedAvg from the same initial weights with the requester training on its retained part only;
FedEraser's calibration rounds and PGA's post-unlearning rounds include the requester on its retained part; PGA's
ascent runs on its forget part. FOUL is left out of these requests (:data:`CLIENT_ONLY`).

Each unlearning run's wall time and the bytes of the Flower messages it exchanged are measured in the ServerApp;
:func:`evaluate` then scores every model on the test set, the leaving client's data (forget) and the remaining
clients' data (retain), with MIA-efficacy on the forget data. The settings come from
``configs/federated_fmnist/{quick,full}.yaml``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, DataLoader, TensorDataset

from lightning_unlearn import configs
from lightning_unlearn._errors import check_choice
from lightning_unlearn.datamodules.vision import load_fashion_mnist
from lightning_unlearn.federated import foul
from lightning_unlearn.federated.client import Federation, Request, client_data, client_part, forgotten_class
from lightning_unlearn.federated.federaser import calibrated_step
from lightning_unlearn.federated.model import FederatedNet
from lightning_unlearn.federated.pga import ball_radius, reference_state
from lightning_unlearn.federated.weights import State, difference
from lightning_unlearn.metrics.functional import mia_efficacy

SCALES = ("quick", "full")
METHODS = ("retrain", "federaser", "pga", "foul")
#: Rows of the results table: the unlearning methods and the two trained models they start from.
ROWS = ("original", "foul_original", *METHODS)
METRIC_KEYS = ("test_acc", "forget_acc", "retain_acc", "mia")
#: Methods defined for a whole client only. FOUL's Phase II (shared/METHODS.md §12) unlearns from the *stored
#: per-client gradients* on the server alone: what it removes is a client's whole contribution ``g_f``. For a class or
#: a fraction of one client's samples the server would need the gradient of just those samples at every stored
#: round, which it never had (the stored ``g_f`` mixes retained and forgotten samples) and could only get by the
#: requesting client recomputing it at the stored checkpoints — a client-side replay that §12 does not describe and
#: that would no longer be on-server unlearning. So FOUL is not run for these requests (and asking for it is an error).
CLIENT_ONLY = {"foul": "FOUL's Phase II removes a client's stored gradient contribution (METHODS.md §12); it has no sample-level form"}


def request_of(settings: Mapping[str, Any], seed: int) -> Request:
    """The deletion request of a federated_fmnist config's ``federation`` section (``request``: ``client`` when
    absent; ``leaving``: the requesting client; ``forget_class`` / ``forget_fraction``), its samples drawn with
    ``seed``; checked (errors name the key, the allowed values and what was given)."""
    fed = settings["federation"]
    kind = str(fed.get("request", "client"))
    return Request(
        kind=kind,
        client=int(fed["leaving"]),
        forget_class=fed.get("forget_class") if kind == "class" else None,
        forget_fraction=fed.get("forget_fraction") if kind == "samples" else None,
        seed=seed,
    )


def methods_for(request: Request, methods: Sequence[str] | None = None) -> tuple[str, ...]:
    """The unlearning methods to run for ``request`` (default: every method defined for it); asking for a
    client-only method (:data:`CLIENT_ONLY`) with a class or samples request is an error."""
    if methods is None:
        return tuple(m for m in METHODS if request.kind == "client" or m not in CLIENT_ONLY)
    for m in methods:
        check_choice("methods", m, METHODS)
        if request.kind != "client" and m in CLIENT_ONLY:
            raise ValueError(f"`methods` should not include {m!r} for request={request.kind!r}: {CLIENT_ONLY[m]}. Use request='client' or drop it.")
    if "retrain" not in methods:
        raise ValueError(f"`methods` should include 'retrain' (the oracle every row is compared with), got {list(methods)}.")
    return tuple(methods)


def forget_and_retain(federation: Federation, request: Request) -> tuple[TensorDataset, ConcatDataset]:
    """The data a request forgets (the leaving client's, or the requester's forget part) and the data the federation
    keeps (every other client's, and for a class / samples request the requester's retained part)."""
    leaving = request.client
    others = [client_data(federation, c) for c in range(federation.num_clients) if c != leaving]
    if request.kind == "client":
        return client_data(federation, leaving), ConcatDataset(others)
    return client_part(federation, leaving, request, "forget"), ConcatDataset([*others, client_part(federation, leaving, request, "retain")])


def _local_settings(train: Mapping[str, Any]) -> dict[str, Any]:
    """Every client's local-training settings of a config's ``training`` section, as message config entries."""
    return {"lr": float(train["lr"]), "epochs": int(train["epochs"]), "batch-size": int(train["batch_size"])}


def load_settings(scale: str) -> dict[str, Any]:
    """The settings of a scale from ``configs/federated_fmnist/<scale>.yaml``."""
    check_choice("scale", scale, SCALES)
    return configs.load_config(f"federated_fmnist/{scale}")


def federation_for(settings: Mapping[str, Any], scheme: str, seed: int) -> Federation:
    fed = settings["federation"]
    return Federation(
        num_clients=int(fed["num_clients"]),
        scheme=scheme,
        alpha=float(fed["alpha"]),
        samples_per_client=fed.get("samples_per_client"),
        seed=seed,
        train_limit=fed.get("train_limit"),
    )


def initial_state(model_config: Mapping[str, int], seed: int) -> State:
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in FederatedNet(**model_config).state_dict().items()}


def _timed(server, fn: Callable[[], State], name: str = "", log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run one phase, measuring its wall time and the traffic it caused."""
    before = (server.traffic.sent, server.traffic.received, server.traffic.rounds)
    start = time.perf_counter()
    state = fn()
    out = {
        "state": state,
        "seconds": time.perf_counter() - start,
        "bytes": server.traffic.sent + server.traffic.received - before[0] - before[1],
        "rounds": server.traffic.rounds - before[2],
    }
    if log is not None:
        log(f"[b8]   {name}: {out['seconds']:.1f} s, {out['bytes'] / 1e6:.2f} MB, {out['rounds']} rounds")
    return out


#: Time-to-forget tolerance: an unlearning run has forgotten once its forget accuracy is within this many points
#: of the oracle's (B8's target tolerance).
FORGET_TOLERANCE = 2.0


def time_to_forget(curve: Sequence[float], oracle: float, tolerance: float = FORGET_TOLERANCE) -> int | None:
    """Rounds until the forget accuracy is first within ``tolerance`` points of the oracle's: ``curve[r]`` is the
    forget accuracy after ``r`` rounds of the unlearning run (``curve[0]``: right after its server-side or
    client-side unlearning step, before any round; for a run whose step *is* a round, its first round). ``None``
    when it never gets there."""
    for r, value in enumerate(curve):
        if abs(value - oracle) <= tolerance:
            return r
    return None


def run_protocol(
    server,
    settings: Mapping[str, Any],
    seed: int,
    log: Callable[[str], None] | None = None,
    probe: Callable[[State], float] | None = None,
    methods: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every B8 row for one federation (``server.federation``), request (:func:`request_of`; it becomes
    ``server.request``) and seed, on a connected ``FederatedServer``; ``methods`` picks the unlearning rows
    (:func:`methods_for`).

    ``probe(state)``, when given, is the forget accuracy (%) of a model: each unlearning row then gets its
    ``forget_curve`` (after each of its rounds) and ``time_to_forget`` (:func:`time_to_forget`, against the oracle).
    """
    train = settings["training"]
    model_config = dict(settings["model"]["init_args"])
    request = server.request = request_of(settings, seed)
    leaving = request.client
    chosen = methods_for(request, methods)
    methods = settings["methods"]
    clients = list(range(server.federation.num_clients))
    partial = request.kind != "client"
    # After a class / samples request every client trains on, the requester on its retained part (weighted by its
    # size, which only the requester knows: it answers a count).
    remaining = clients if partial else [c for c in clients if c != leaving]
    retained = {"requester-part": "retain"} if partial else {}
    sizes = server.part_sizes("retain") if partial else None
    rounds = int(train["rounds"])
    local = _local_settings(train)
    init = initial_state(model_config, seed)
    out: dict[str, dict[str, Any]] = {}

    stored_updates: dict[int, dict[int, State]] = {}
    last_round: dict[str, Any] = {}
    interval = int(methods["federaser"]["interval"])

    def keep(t: int, global_state: State, local_states: dict[int, State]) -> None:
        if t % interval == 0:
            stored_updates[t] = {c: difference(s, global_state) for c, s in local_states.items()}
        last_round["locals"] = local_states

    out["original"] = _timed(server, lambda: server.fedavg(init, clients, rounds, seed=seed, on_round=keep, objective="ce", **local), "original", log)
    out["retrain"] = _timed(
        server, lambda: server.fedavg(init, remaining, rounds, seed=seed, sizes=sizes, objective="ce", **retained, **local), "retrain", log
    )
    curves: dict[str, list[float]] = {name: [] for name in chosen if name != "retrain"}
    probe_seconds = dict.fromkeys(curves, 0.0)

    def track(name: str) -> Callable[[int, State], None]:
        def record(t: int, state: State) -> None:
            if probe is not None:
                start = time.perf_counter()
                curves[name].append(probe(state))
                probe_seconds[name] += time.perf_counter() - start

        return record

    def federaser() -> State:
        shares = server.shares(remaining, sizes)
        rebuilt = {k: v.clone() for k, v in init.items()}
        for t in sorted(stored_updates):
            new_locals = server.local_round(rebuilt, remaining, seed=seed * 1000 + 500 + t, objective="ce", **retained, **local)
            new_updates = [difference(new_locals[c], rebuilt) for c in remaining]
            rebuilt = calibrated_step(rebuilt, [stored_updates[t][c] for c in remaining], new_updates, [shares[c] for c in remaining])
            track("federaser")(t, rebuilt)
        return rebuilt

    if "federaser" in chosen:
        out["federaser"] = _timed(server, federaser, "federaser", log)

    pga = methods["pga"]

    def projected_ascent() -> State:
        from flwr.app import ArrayRecord, RecordDict

        share = server.shares(clients)[leaving]
        center = reference_state(out["original"]["state"], last_round["locals"][leaving], share)
        radius = ball_radius(center, [initial_state(model_config, 10_000 + seed * 10 + k) for k in range(3)], float(pga["radius_fraction"]))
        config = server.config(
            seed=seed,
            lr=float(pga["lr"]),
            radius=radius,
            **{"max-epochs": int(pga["max_epochs"]), "stop-accuracy": float(pga["stop_accuracy"]), "batch-size": int(train["batch_size"])},
            **({"requester-part": "forget"} if partial else {}),  # the ascent runs on the forget part only
        )
        arrays = ArrayRecord(center)
        results = server.send("train.pga", {leaving: RecordDict({"model": arrays, "center": arrays, "config": config})})
        server.traffic.rounds += 1
        unlearned = results[leaving][0]
        track("pga")(0, unlearned)
        return server.fedavg(
            unlearned, remaining, int(pga["post_rounds"]), seed=seed + 7, after_round=track("pga"), sizes=sizes, objective="ce", **retained, **local
        )

    if "pga" in chosen:
        out["pga"] = _timed(server, projected_ascent, "pga", log)
    if "foul" in chosen:
        _foul(server, settings, seed, init, out, track, log)
    if probe is not None:
        oracle = probe(out["retrain"]["state"])
        out["retrain"]["time_to_forget"] = rounds
        for name, curve in curves.items():
            out[name]["seconds"] -= probe_seconds[name]  # the harness's probes are not the method's time
            out[name]["forget_curve"] = curve
            # FedEraser's curve starts after its first calibration round and PGA's after the ascent's message
            # exchange (one round each); FOUL's after its server-only Phase II (no round).
            found = time_to_forget(curve, oracle)
            out[name]["time_to_forget"] = None if found is None else found + (0 if name == "foul" else 1)
    return out


def _foul(server, settings: Mapping[str, Any], seed: int, init: State, out: dict[str, dict[str, Any]], track, log) -> None:
    """FOUL's rows (client-leaving requests): Phase I training over all clients, then Phase II on the server."""
    train = settings["training"]
    cfg = settings["methods"]["foul"]
    rounds = int(train["rounds"])
    local = _local_settings(train)
    leaving = server.request.client
    clients = list(range(server.federation.num_clients))
    remaining = [c for c in clients if c != leaving]
    weights = {k: float(cfg[k]) for k in foul.PHASE_ONE_DEFAULTS if k in cfg}
    stored_grads: list[dict[int, Tensor]] = []

    def keep_gradients(t: int, global_state: State, local_states: dict[int, State]) -> None:
        stored_grads.append(foul.client_gradients(global_state, local_states, float(train["lr"])))

    out["foul_original"] = _timed(
        server,
        lambda: server.fedavg(init, clients, rounds, seed=seed, on_round=keep_gradients, objective="foul", **weights, **local),
        "foul_original",
        log,
    )

    def phase_two() -> State:
        state = foul.phase_two(
            out["foul_original"]["state"], stored_grads, server.shares(clients), leaving, kappa=float(cfg["kappa"]), lr=float(cfg["server_lr"])
        )
        track("foul")(0, state)
        return server.fedavg(state, remaining, int(cfg["post_rounds"]), seed=seed + 11, after_round=track("foul"), objective="foul", **weights, **local)

    out["foul"] = _timed(server, phase_two, "foul", log)


def forget_accuracy(state: Mapping[str, Tensor], data: TensorDataset, model_config: Mapping[str, int]) -> float:
    """Accuracy (%) of a :class:`FederatedNet` state on ``data`` (the harness's probe; the server of a real
    federation does not hold the leaving client's data)."""
    model = FederatedNet(**model_config)
    model.load_state_dict(dict(state))
    probs, targets = _probs(model, data)
    return 100.0 * float((probs.argmax(1) == targets).float().mean())


@torch.no_grad()
def _probs(model: torch.nn.Module, data: Any) -> tuple[Tensor, Tensor]:
    model.eval()
    probs, targets = [], []
    for x, y in DataLoader(data, batch_size=1000):
        probs.append(torch.softmax(model(x), dim=1))
        targets.append(y)
    return torch.cat(probs), torch.cat(targets)


def evaluate(
    state: Mapping[str, Tensor], federation: Federation, request: Request, model_config: Mapping[str, int], test: TensorDataset, seed: int = 0
) -> dict[str, float]:
    """Accuracy (%) on the test set, the forgotten data and the kept data of ``request`` (:func:`forget_and_retain`);
    MIA-efficacy (%) of a logistic membership attack (retain = members, test = non-members) on the forgotten data; for a
    class request also ``class_acc``, the test accuracy (%) on the forgotten class."""
    model = FederatedNet(**model_config)
    model.load_state_dict(dict(state))
    forget, retain = forget_and_retain(federation, request)
    pf, yf = _probs(model, forget)
    pr, yr = _probs(model, retain)
    pt, yt = _probs(model, test)

    def acc(p: Tensor, y: Tensor) -> float:
        return 100.0 * float((p.argmax(1) == y).float().mean())

    out = {
        "test_acc": acc(pt, yt),
        "forget_acc": acc(pf, yf),
        "retain_acc": acc(pr, yr),
        "mia": mia_efficacy(pr, yr, pt, yt, pf, yf, seed=seed),
    }
    c = forgotten_class(federation, request)
    if c is not None:
        out["class_acc"] = acc(pt[yt == c], yt[yt == c])
    return out


def run(
    settings: Mapping[str, Any],
    schemes: Sequence[str],
    seeds: Sequence[int],
    log: Callable[[str], None] = print,
    methods: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Run B8 (one Flower simulation for every scheme and seed) for the config's request (:func:`request_of`) and
    evaluate every row; one record per (scheme, seed, row) with the metrics, seconds, bytes and rounds (and, for a
    class / samples request, ``forget_samples`` and the ``forget_class``)."""
    from lightning_unlearn.federated.apps import simulate

    for scheme in schemes:
        check_choice("scheme", scheme, ("iid", "dirichlet"))
    model_config = dict(settings["model"]["init_args"])
    trained: list[tuple[str, int, Federation, dict[str, dict[str, Any]]]] = []
    # Check every request before Flower starts (the harness holds all the data; a federation's server does not).
    for scheme in schemes:
        for seed in seeds:
            request = request_of(settings, seed)
            methods_for(request, methods)
            forget_and_retain(federation_for(settings, scheme, seed), request)

    def server_main(server) -> None:
        for scheme in schemes:
            for seed in seeds:
                server.federation = federation_for(settings, scheme, seed)
                server.connect()
                start = time.perf_counter()
                forget, _ = forget_and_retain(server.federation, request_of(settings, seed))
                rows = run_protocol(
                    server, settings, seed, log, probe=lambda state, forget=forget: forget_accuracy(state, forget, model_config), methods=methods
                )
                trained.append((scheme, seed, server.federation, rows))
                log(f"[b8] {scheme} seed {seed}: {time.perf_counter() - start:.1f} s")

    first = federation_for(settings, schemes[0], seeds[0])
    simulate(server_main, first, model_config, num_cpus=int(settings.get("num_cpus", 2)))
    test = load_fashion_mnist("test", limit=settings.get("test_limit"))
    records = []
    for scheme, seed, federation, rows in trained:
        request = request_of(settings, seed)
        about = {}
        if request.kind != "client":
            about["forget_samples"] = len(forget_and_retain(federation, request)[0])
            if request.kind == "class":
                about["forget_class"] = forgotten_class(federation, request)
        for name, row in rows.items():
            metrics = evaluate(row["state"], federation, request, model_config, test, seed)
            extra = {k: row[k] for k in ("seconds", "bytes", "rounds", "time_to_forget", "forget_curve") if k in row}
            records.append({"scheme": scheme, "seed": seed, "row": name, **metrics, **extra, **about})
    return records


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
    """``{scheme: {row: {metric: (mean, std)}}}`` over seeds, with ``time_ratio`` and ``comm_ratio`` (the row's
    seconds and bytes over the oracle's of the same seed), ``forget_gap`` / ``test_gap`` (|row − oracle|),
    ``class_acc`` / ``class_gap`` (a class request: test accuracy on the forgotten class and |row − oracle|),
    ``time_to_forget`` over the seeds that got within tolerance, ``reached`` (the fraction that did) and ``n``
    (``(number of seeds, 0)``)."""
    from lightning_unlearn.benchmarking import mean_std

    oracle = {(r["scheme"], r["seed"]): r for r in records if r["row"] == "retrain"}
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    for r in records:
        o = oracle[(r["scheme"], r["seed"])]
        values = {k: r[k] for k in (*METRIC_KEYS, "rounds")}
        values["time_ratio"] = r["seconds"] / o["seconds"]
        values["comm_ratio"] = r["bytes"] / o["bytes"]
        values["mbytes"] = r["bytes"] / 1e6
        values["forget_gap"] = abs(r["forget_acc"] - o["forget_acc"])
        values["test_gap"] = abs(r["test_acc"] - o["test_acc"])
        if "class_acc" in r:
            values["class_acc"] = r["class_acc"]
            values["class_gap"] = abs(r["class_acc"] - o["class_acc"])
        if "time_to_forget" in r:
            values["reached"] = float(r["time_to_forget"] is not None)
            if r["time_to_forget"] is not None:
                values["time_to_forget"] = r["time_to_forget"]
        values["n"] = 1.0
        row = table.setdefault(r["scheme"], {}).setdefault(r["row"], {})
        for k, v in values.items():
            row.setdefault(k, []).append(float(v))
    return {
        s: {row: {k: (float(len(v)), 0.0) if k == "n" else mean_std(v) for k, v in m.items()} for row, m in rows.items()}
        for s, rows in table.items()
    }


def _ttf(m: Mapping[str, tuple[float, float]]) -> str:
    from lightning_unlearn.benchmarking import fmt_pm

    if "reached" not in m:
        return "–"
    seeds = round(m["n"][0])
    reached = round(m["reached"][0] * seeds)
    if not reached:
        return f"not within {FORGET_TOLERANCE:g} pts (0/{seeds})"
    return f"{fmt_pm(*m['time_to_forget'], digits=1)} ({reached}/{seeds})"


def markdown(summary: Mapping[str, Mapping[str, Mapping[str, tuple[float, float]]]]) -> str:
    """One markdown table per scheme (mean ± std over seeds)."""
    from lightning_unlearn.benchmarking import fmt_pm, markdown_table

    header = [
        "row", "test acc", "forget acc", "retain acc", "MIA (forget)", "|Δforget| vs oracle", "time / retrain",
        "MB sent+received", "comm / retrain", "rounds", "time-to-forget (rounds; seeds within 2 pts)",
    ]
    parts = []
    for scheme, rows in summary.items():
        by_class = any("class_acc" in m for m in rows.values())  # a class request: the forgotten class's test accuracy
        lines = []
        for name in ROWS:
            if name not in rows:
                continue
            m = rows[name]
            lines.append(
                [name] + [fmt_pm(*m[k], digits=2) for k in ("test_acc", "forget_acc", "retain_acc", "mia", "forget_gap", "time_ratio", "mbytes", "comm_ratio")]
                + [fmt_pm(*m["rounds"], digits=1, show_std=False), _ttf(m)]
                + ([fmt_pm(*m["class_acc"], digits=2), fmt_pm(*m["class_gap"], digits=2)] if by_class else [])
            )
        columns = header + (["test acc on the forgotten class", "|Δclass| vs oracle"] if by_class else [])
        parts.append(f"**{scheme}**\n\n" + markdown_table(columns, lines))
    return "\n\n".join(parts)


def run_mpu(settings: Mapping[str, Any], seeds: Sequence[int], log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """B8's MPU part: the server's causal LM (``mpu.model``: the tiny Llama, or SmolLM2-135M-Instruct) learns the
    fictitious authors; the data owner (one Flower SuperNode) asks to forget the first author(s) and runs each method
    on ``m`` perturbed copies per noise level ``kappa``, and once noise-free on θ itself. One record per (seed,
    method, kappa) with the forget / retain NLL and the bytes exchanged (``kappa = 0`` is the noise-free run), and one
    per seed for the target before unlearning. Each result is scored as soon as it comes back (SmolLM2's weights are
    0.5 GB a copy)."""
    from lightning_unlearn.federated import mpu_lm
    from lightning_unlearn.federated.apps import simulate

    cfg = settings["mpu"]
    name = str(cfg.get("model", "tiny"))
    data = {"n-authors": int(cfg["n_authors"]), "forget-authors": int(cfg["forget_authors"]), "data-seed": 0}
    arch = {k: int(cfg[k]) for k in mpu_lm.TINY_SIZES if k in cfg}  # the tiny Llama's sizes (build_lm's defaults otherwise)
    tokenizer, forget, retain = mpu_lm.authors_setup(data["n-authors"], data["forget-authors"], 0, model=name)
    scorer = mpu_lm.build_lm(tokenizer, **arch, model=name)
    rotate = mpu_lm.head_dim(scorer) if cfg.get("rotate_attention") else None

    evaluator = None
    if cfg.get("b2_metrics"):
        from lightning_unlearn.evaluation.llm import TofuEvaluator
        from lightning_unlearn.tasks.causal_lm import QACollator

        evaluator = TofuEvaluator(QACollator(tokenizer, max_length=mpu_lm.MAX_LENGTH))

    def score(state: State) -> dict[str, float]:
        mpu_lm.load_model_state(scorer, state)
        out = {"forget_nll": mpu_lm.mean_nll(scorer, tokenizer, forget), "retain_nll": mpu_lm.mean_nll(scorer, tokenizer, retain)}
        if evaluator is not None:
            metrics = evaluator.evaluate(scorer, forget, retain)["metrics"]
            out.update({k: float(metrics[k]) for k in MPU_B2_KEYS})
        return out

    records: list[dict[str, Any]] = []

    def server_main(server) -> None:
        server.connect()
        for seed in seeds:
            start = time.perf_counter()
            model = mpu_lm.build_lm(tokenizer, **arch, seed=seed, model=name)
            mpu_lm.run_method(model, tokenizer, [*forget, *retain], "ft", lr=float(cfg["fit_lr"]), epochs=int(cfg["fit_epochs"]), seed=seed, split="retain")
            target = mpu_lm.model_state(model)
            del model
            records.append({"seed": seed, "method": "target", "kappa": 0.0, "m": 0, **score(target), "bytes": 0, "seconds": time.perf_counter() - start})
            log(f"[b8-mpu] seed {seed} target: {time.perf_counter() - start:.1f} s")
            for method in cfg["methods"]:
                for kappa, m in [(0.0, 1)] + [(float(k), int(cfg["m"])) for k in cfg["kappas"]]:
                    before = server.traffic.total
                    start = time.perf_counter()
                    new = server.mpu(
                        target, 0, m=m, kappa=kappa, seed=seed, reparameterize=m > 1 and bool(cfg["reparameterize"]), head_dim=rotate,
                        method=str(method), lr=float(cfg["lr"]), epochs=int(cfg["epochs"]), model=name, **data, **arch,
                    )
                    seconds = time.perf_counter() - start
                    records.append({"seed": seed, "method": str(method), "kappa": kappa, "m": m, **score(new), "bytes": server.traffic.total - before, "seconds": seconds})
                    log(f"[b8-mpu] seed {seed} {method} kappa={kappa}: {seconds:.1f} s")

    simulate(server_main, None, {}, num_nodes=1, num_cpus=1)
    return records


#: B2's metrics (:class:`~lightning_unlearn.evaluation.llm.TofuEvaluator`) an MPU record carries when the settings
#: ask for them (``mpu.b2_metrics``): no holdout authors (so no MIA) and no oracle (so no forget quality).
MPU_B2_KEYS = ("forget_rouge", "retain_rouge", "forget_prob", "retain_prob", "forget_truth_ratio", "model_utility", "gibberish")


def mpu_markdown(records: Sequence[Mapping[str, Any]]) -> str:
    """Forget / retain NLL per method and noise level (mean ± std over seeds), with the relative change of each
    against the same method's noise-free run of the same seed; then, when the records carry them, B2's metrics
    (:data:`MPU_B2_KEYS`) with the change of forget and retain ROUGE against the noise-free run."""
    from lightning_unlearn.benchmarking import fmt_pm, markdown_table, mean_std

    free = {(r["seed"], r["method"]): r for r in records if r["kappa"] == 0 and r["method"] != "target"}
    groups: dict[tuple[str, float], dict[str, list[float]]] = {}
    for r in records:
        g = groups.setdefault((r["method"], r["kappa"]), {})
        for k in ("forget_nll", "retain_nll"):
            g.setdefault(k, []).append(r[k])
        g.setdefault("mbytes", []).append(r["bytes"] / 1e6)
        if (r["seed"], r["method"]) in free:
            f = free[(r["seed"], r["method"])]
            g.setdefault("d_forget", []).append(100.0 * (r["forget_nll"] - f["forget_nll"]) / f["forget_nll"])
            g.setdefault("d_retain", []).append(100.0 * (r["retain_nll"] - f["retain_nll"]) / f["retain_nll"])
    header = ["method", "κ (noise)", "m", "forget NLL ↑", "retain NLL ↓", "Δ forget NLL vs noise-free (%)", "Δ retain NLL vs noise-free (%)", "MB"]
    lines = []
    for (method, kappa), g in sorted(groups.items()):
        m = next(r["m"] for r in records if r["method"] == method and r["kappa"] == kappa)
        lines.append(
            [method, f"{kappa:g}", str(m), fmt_pm(*mean_std(g["forget_nll"]), digits=3), fmt_pm(*mean_std(g["retain_nll"]), digits=3)]
            + [fmt_pm(*mean_std(g[k]), digits=2) if k in g else "–" for k in ("d_forget", "d_retain")]
            + [fmt_pm(*mean_std(g["mbytes"]), digits=2, show_std=False)]
        )
    table = markdown_table(header, lines)
    if not all(k in r for r in records for k in MPU_B2_KEYS):
        return table
    b2: dict[tuple[str, float], dict[str, list[float]]] = {}
    for r in records:
        g = b2.setdefault((r["method"], r["kappa"]), {})
        for k in MPU_B2_KEYS:
            g.setdefault(k, []).append(r[k])
        if (r["seed"], r["method"]) in free:
            f = free[(r["seed"], r["method"])]
            for k in ("forget_rouge", "retain_rouge"):
                g.setdefault(f"d_{k}", []).append(r[k] - f[k])
    header = ["method", "κ (noise)", "forget ROUGE ↓", "retain ROUGE ↑", "forget prob", "retain prob", "forget TR", "MU", "gibberish"]
    header += ["Δ forget ROUGE vs noise-free", "Δ retain ROUGE vs noise-free"]
    lines = [
        [method, f"{kappa:g}"] + [fmt_pm(*mean_std(g[k]), digits=3) for k in MPU_B2_KEYS]
        + [fmt_pm(*mean_std(g[k]), digits=3) if k in g else "–" for k in ("d_forget_rouge", "d_retain_rouge")]
        for (method, kappa), g in sorted(b2.items())
    ]
    return table + "\n\nB2's metrics (TofuEvaluator; no holdout authors, so no MIA; no oracle, so no forget quality):\n\n" + markdown_table(header, lines)
