"""A real Flower simulation (Ray backend): 3 SuperNodes, 1 round of every B8 phase, tiny model and data."""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("flwr")
pytest.importorskip("ray")

from federated_toys import TINY  # noqa: E402

from lightning_unlearn.benchmarking import b8  # noqa: E402


@pytest.mark.slow
def test_every_b8_phase_runs_on_flowers_simulation_engine():
    import ray

    records = b8.run(copy.deepcopy(TINY), ["iid"], [0], log=lambda _: None)
    assert not ray.is_initialized(), "the simulation left Ray running"
    rows = {r["row"]: r for r in records}
    assert set(rows) == set(b8.ROWS)
    # One model exchange (download + upload) per client and round, measured from Flower's messages.
    one_model = sum(p.numel() * 4 for p in b8.FederatedNet(**TINY["model"]["init_args"]).parameters())
    assert rows["original"]["rounds"] == 1 and rows["retrain"]["rounds"] == 1
    assert 6 * one_model < rows["original"]["bytes"] < 6 * one_model * 1.5
    assert rows["retrain"]["bytes"] == pytest.approx(rows["original"]["bytes"] * 2 / 3, rel=0.05)
    # FOUL's Phase II is server-only: no message (post_rounds = 0).
    assert rows["foul"]["bytes"] == 0 and rows["foul"]["rounds"] == 0
    # PGA: one message pair with the leaving client (two weight sets down) and one round of the two others.
    assert rows["pga"]["rounds"] == 2
    for r in records:
        assert 0.0 <= r["test_acc"] <= 100.0 and 0.0 <= r["mia"] <= 100.0
    # Time-to-forget is measured for every unlearning row against the oracle (None: never within 2 points).
    assert rows["retrain"]["time_to_forget"] == 1
    assert len(rows["federaser"]["forget_curve"]) == 1 and len(rows["pga"]["forget_curve"]) == 2
    assert len(rows["foul"]["forget_curve"]) == 1
    # Training moved the model: well above chance (10%) on the test set after one round of 15 local steps.
    assert rows["original"]["test_acc"] > 30.0


def test_apps_import_flower_only_when_asked():
    import subprocess
    import sys

    code = "import sys, lightning_unlearn, lightning_unlearn.federated, lightning_unlearn.benchmarking.b8; print('flwr' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_message_bytes_grow_with_the_arrays():
    from flwr.app import ArrayRecord, RecordDict

    from lightning_unlearn.federated.apps import message_bytes

    small = message_bytes(RecordDict({"model": ArrayRecord({"w": torch.zeros(10)})}))
    big = message_bytes(RecordDict({"model": ArrayRecord({"w": torch.zeros(1010)})}))
    assert big - small == pytest.approx(4000, abs=16)


@pytest.mark.slow
def test_mpu_on_flower_never_sends_the_true_weights_nor_receives_data():
    from lightning_unlearn.federated import mpu_lm
    from lightning_unlearn.federated.apps import simulate

    tokenizer, forget, retain = mpu_lm.authors_setup(2, 1, 0)
    theta = {k: v.detach().clone() for k, v in mpu_lm.build_lm(tokenizer, hidden=16, layers=1, heads=2).state_dict().items()}
    sent: list = []
    received: list = []
    out: dict = {}

    def main(server) -> None:
        server.connect()
        server.sent_log, server.received_log = sent, received
        out["new"] = server.mpu(
            theta, 0, m=2, kappa=0.05, seed=0, method="ga", lr=1e-3, epochs=1,
            **{"n-authors": 2, "forget-authors": 1, "data-seed": 0, "hidden": 16, "layers": 1, "heads": 2},
        )

    simulate(main, None, {}, num_nodes=1, num_cpus=1)
    assert len(sent) == 2 and len(received) == 2
    for content in sent:
        copy = content["model"].to_torch_state_dict()
        for k, v in theta.items():
            assert not torch.allclose(copy[k], v), f"{k} reached the client unperturbed"
    for content in received:
        # only the update and a step count come back: no array but the update, no config, no text
        assert set(content.array_records) == {"update"} and not content.config_records
        assert set(content["metrics"]) == {"steps"}
        assert set(content["update"]) == set(theta)
    moved = sum(float((out["new"][k] - theta[k]).abs().sum()) for k in theta)
    assert moved > 0.0


@pytest.mark.slow
def test_a_class_request_runs_on_flower_and_no_index_reaches_the_server():
    """Client 0 deletes its most frequent class: the request crosses the wire as settings only, the oracle and
    the other rows train client 0 on its retained part, PGA ascends on its forget part, FOUL is not run."""
    from lightning_unlearn.federated.apps import simulate
    from lightning_unlearn.federated.client import client_part

    settings = copy.deepcopy(TINY)
    settings["federation"].update(request="class", forget_class="largest")
    federation = b8.federation_for(settings, "iid", 0)
    request = b8.request_of(settings, 0)
    kept, forget = (len(client_part(federation, 0, request, p)) for p in ("retain", "forget"))
    sent: list = []
    received: list = []
    out: dict = {}

    def main(server) -> None:
        server.sent_log, server.received_log = sent, received
        out["rows"] = b8.run_protocol(server, settings, 0)

    simulate(main, federation, dict(settings["model"]["init_args"]))
    assert set(out["rows"]) == {"original", "retrain", "federaser", "pga"}
    for content in received:  # replies: the weights and counts only
        assert set(content.array_records) <= {"model"} and not content.config_records
        assert set(content["metrics"]) <= {"partition-id", "num-examples", "steps", "accuracy"}
    configs = [content["config"] for content in sent]
    assert all(c["request"] == "class" and c["forget-class"] == "largest" and c["request-client"] == 0 for c in configs)
    # what client 0 reported training on: all of its data (original), its retained part (oracle, FedEraser, PGA's
    # post rounds), its forget part (PGA's ascent)
    sizes = {int(r["metrics"]["num-examples"]) for r in received if int(r["metrics"]["partition-id"]) == 0 and "steps" in r["metrics"]}
    assert sizes == {kept + forget, kept, forget}
    assert {c.get("requester-part", "all") for c in configs} == {"all", "retain", "forget"}
    # every client stays: the oracle exchanges as many models as the original training
    assert out["rows"]["retrain"]["bytes"] == pytest.approx(out["rows"]["original"]["bytes"], rel=0.01)
    from lightning_unlearn.datamodules.vision import load_fashion_mnist

    metrics = b8.evaluate(out["rows"]["retrain"]["state"], federation, request, settings["model"]["init_args"], load_fashion_mnist("test", limit=200))
    assert set(metrics) == {*b8.METRIC_KEYS, "class_acc"} and 0.0 <= metrics["class_acc"] <= 100.0
