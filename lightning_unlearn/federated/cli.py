"""``lightning-unlearn federated``: a deletion request on a Flower federation — a client leaves, or deletes a class or
a fraction of its samples — train it, unlearn, report — from a config."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

_EPILOG = """\
The config is a federated_fmnist-style YAML (a shipped name such as federated_fmnist/quick, or a path): the model,
the federation (clients, split, the leaving client), FedAvg's training and each method's settings. On Flower's
simulation engine the command trains the original FedAvg model, the oracle (FedAvg without the leaving client, same
rounds and seed) and every unlearning method (FedEraser, projected gradient ascent, FOUL), scores each model on the
test set, the leaving client's data and the remaining clients' data (with membership-inference efficacy), and writes
report.json (the request, every row's metrics, wall time and the bytes of Flower's messages as ratios of the
oracle's, rounds, time-to-forget) and report.md (the table). Example:

  lightning-unlearn federated --config federated_fmnist/quick --leaving 3 --out outputs/federated/client3

--request class (client --leaving deletes --forget-class, a class id or 'largest') or --request samples (it deletes
a seeded --forget-fraction of its samples) keeps the client in the federation: the oracle is FedAvg with that client
training on its retained part; FOUL is not run for these requests (its Phase II removes a whole client's stored
gradients). Example:

  lightning-unlearn federated --config federated_fmnist/quick --request class --forget-class largest --out outputs/federated/class
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-unlearn federated",
        description="Run one deletion request (a client leaves, or deletes a class or a fraction of its samples) on a Flower federation from a config and write its unlearning report.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default="federated_fmnist/quick", help="federation config: shipped name or YAML path (default federated_fmnist/quick)")
    parser.add_argument("--leaving", type=int, help="the client that leaves (default: the config's federation.leaving)")
    parser.add_argument("--request", choices=["client", "class", "samples"], help="the deletion request (default: the config's federation.request, else client)")
    parser.add_argument("--forget-class", help="class request: the class id to delete, or 'largest' (default: the config's)")
    parser.add_argument("--forget-fraction", type=float, help="samples request: the fraction of the client's samples to delete, in (0, 1)")
    parser.add_argument("--scheme", choices=["iid", "dirichlet"], help="data split (default: the config's first scheme)")
    parser.add_argument("--seed", type=int, help="seed of the split, the training and the methods (default: the config's first)")
    parser.add_argument("--rounds", type=int, help="FedAvg rounds (default: the config's training.rounds)")
    parser.add_argument("--out", default="outputs/federated", help="folder for report.json and report.md (default outputs/federated)")
    return parser


def request_settings(
    config: dict[str, Any],
    *,
    leaving: int | None = None,
    scheme: str | None = None,
    seed: int | None = None,
    rounds: int | None = None,
    request: str | None = None,
    forget_class: int | str | None = None,
    forget_fraction: float | None = None,
) -> tuple[dict[str, Any], str, int]:
    """A copy of the federation ``config`` with the request's overrides applied (``None``: the config's), its split
    scheme and seed (the config's first when not given); the leaving (requesting) client, the request, scheme and
    rounds checked."""
    from lightning_unlearn._errors import check_choice
    from lightning_unlearn.benchmarking import b8

    settings = json.loads(json.dumps(config))  # a deep copy
    for key in ("model", "federation", "training", "methods"):
        if key not in settings:
            raise ValueError(f"--config should hold the keys model, federation, training and methods (a federated_fmnist config); {key!r} is missing.")
    clients = int(settings["federation"]["num_clients"])
    if leaving is not None:
        settings["federation"]["leaving"] = leaving
    leaving = settings["federation"]["leaving"]
    if not isinstance(leaving, int) or not 0 <= leaving < clients:
        raise ValueError(f"--leaving should be a client of the federation, in 0..{clients - 1}; got {leaving!r}.")
    if rounds is not None:
        if rounds < 1:
            raise ValueError(f"--rounds should be a positive number of FedAvg rounds, got {rounds}.")
        settings["training"]["rounds"] = rounds
    scheme = scheme or list(settings.get("schemes") or ["dirichlet"])[0]
    check_choice("scheme", scheme, ("iid", "dirichlet"))
    seed = seed if seed is not None else int(list(settings.get("seeds") or [0])[0])
    for key, value in (("request", request), ("forget_class", forget_class), ("forget_fraction", forget_fraction)):
        if value is not None:
            settings["federation"][key] = int(value) if key == "forget_class" and str(value).isdigit() else value
    b8.request_of(settings, seed)  # checks the request (errors name the setting, the allowed values and the value)
    return settings, scheme, seed


def request_header(settings: dict[str, Any], scheme: str, seed: int, samples: int, forget_samples: int | None = None) -> dict[str, Any]:
    """The ``request`` (the leaving client and its sample count; for a class / samples request also the kind, the
    setting and the number of samples it deletes) and ``federation`` entries of a federated report."""
    fed = settings["federation"]
    request: dict[str, Any] = {"kind": str(fed.get("request", "client")), "leaving_client": int(fed["leaving"]), "samples": int(samples)}
    if request["kind"] == "class":
        request["forget_class"] = fed["forget_class"]
    if request["kind"] == "samples":
        request["forget_fraction"] = float(fed["forget_fraction"])
    if forget_samples is not None and request["kind"] != "client":
        request["forget_samples"] = int(forget_samples)
    return {
        "request": request,
        "federation": {
            "num_clients": int(settings["federation"]["num_clients"]), "scheme": scheme, "seed": seed, "rounds": int(settings["training"]["rounds"]),
        },
    }  # fmt: skip


def build_report(settings: dict[str, Any], scheme: str, seed: int, records: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    """``report.json``: the request, the federation, and per row its metrics, seconds, bytes, rounds and the ratios
    of ``summary`` (``b8.summarize(records)``)."""
    from lightning_unlearn.benchmarking import b8
    from lightning_unlearn.federated.client import client_data

    leaving = int(settings["federation"]["leaving"])
    rows = {}
    for record in records:
        name = record["row"]
        ratios = {k: summary[scheme][name][k][0] for k in ("time_ratio", "comm_ratio", "forget_gap", "test_gap")}
        rows[name] = {k: v for k, v in record.items() if k not in ("scheme", "seed", "row")} | ratios
    federation = b8.federation_for(settings, scheme, seed)
    samples = len(client_data(federation, leaving))
    request = b8.request_of(settings, seed)
    forget_samples = len(b8.forget_and_retain(federation, request)[0])
    header = request_header(settings, scheme, seed, samples, forget_samples)
    if request.kind == "class":
        header["request"]["class_id"] = b8.forgotten_class(federation, request)  # 'largest' resolved (the harness's view)
    return {
        **header,
        "oracle": "retrain",
        "rows": rows,
        "communication_bytes": {name: row["bytes"] for name, row in rows.items()},
    }


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    from lightning_unlearn import benchmarking, configs
    from lightning_unlearn.benchmarking import b8

    try:
        settings, scheme, seed = request_settings(
            configs.load_config(args.config),
            leaving=args.leaving,
            scheme=args.scheme,
            seed=args.seed,
            rounds=args.rounds,
            request=args.request,
            forget_class=args.forget_class,
            forget_fraction=args.forget_fraction,
        )
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"lightning-unlearn federated: {error}") from None
    benchmarking.quiet_lightning()
    records = b8.run(settings, [scheme], [seed])
    summary = b8.summarize(records)
    report = build_report(settings, scheme, seed, records, summary)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    benchmarking.write_json(out / "report.json", report)
    table = b8.markdown(summary)
    request = report["request"]
    what = {
        "client": "leaves",
        "class": f"deletes class {request.get('class_id')} ({request.get('forget_samples')} samples)",
        "samples": f"deletes {request.get('forget_samples')} samples (fraction {request.get('forget_fraction')})",
    }[request["kind"]]
    where = f"{request['samples']} samples; {scheme}, seed {seed}, {report['federation']['rounds']} rounds"
    header = f"# Client {request['leaving_client']} {what} ({where})\n\n"
    (out / "report.md").write_text(header + table + "\n")
    print(table)
    print(f"wrote {out / 'report.json'} and {out / 'report.md'}")


if __name__ == "__main__":
    main()
