"""``lightning-unlearn federated``: a client-leaving request on a Flower federation from a config, and its report."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from federated_toys import TINY as FEDERATION

from lightning_unlearn.federated.cli import _parser, main, request_settings

# The tests' 3-client federation, with a scheme and a seed (a config may list them).
TINY = {**FEDERATION, "schemes": ["iid"], "seeds": [4]}


def _args(*argv: str) -> dict:
    """The overrides the command passes to ``request_settings`` for ``argv``."""
    args = _parser().parse_args(list(argv))
    return {"leaving": args.leaving, "scheme": args.scheme, "seed": args.seed, "rounds": args.rounds}


def test_overrides_and_defaults():
    settings, scheme, seed = request_settings(TINY, **_args("--leaving", "2", "--rounds", "4"))
    assert settings["federation"]["leaving"] == 2 and settings["training"]["rounds"] == 4
    assert (scheme, seed) == ("iid", 4)  # the config's first scheme and seed
    assert TINY["federation"]["leaving"] == 0 and TINY["training"]["rounds"] == 1  # the config is not modified
    _, scheme, seed = request_settings(TINY, **_args("--scheme", "dirichlet", "--seed", "7"))
    assert (scheme, seed) == ("dirichlet", 7)


@pytest.mark.parametrize(
    ("argv", "config", "message"),
    [
        (["--leaving", "3"], TINY, r"--leaving should be a client of the federation, in 0..2; got 3"),
        (["--leaving", "-1"], TINY, r"in 0..2; got -1"),
        (["--rounds", "0"], TINY, r"--rounds should be a positive number of FedAvg rounds, got 0"),
        ([], {k: v for k, v in TINY.items() if k != "methods"}, r"'methods' is missing"),
    ],
)
def test_bad_requests_are_named(argv, config, message):
    with pytest.raises(ValueError, match=message):
        request_settings(config, **_args(*argv))


def test_an_unknown_config_exits_with_the_message(tmp_path):
    with pytest.raises(SystemExit, match="should be a shipped config"):
        main(["--config", "federated_fmnist/nope", "--out", str(tmp_path)])


@pytest.mark.slow
def test_a_client_leaves_and_the_report_records_it(tmp_path):
    pytest.importorskip("flwr")
    pytest.importorskip("ray")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(copy.deepcopy(TINY)))
    main(["--config", str(config), "--leaving", "1", "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert report["request"] == {"kind": "client", "leaving_client": 1, "samples": 100}
    assert report["federation"] == {"num_clients": 3, "scheme": "iid", "seed": 4, "rounds": 1}
    rows = report["rows"]
    assert set(rows) == {"original", "foul_original", "retrain", "federaser", "pga", "foul"}
    assert rows["retrain"]["comm_ratio"] == 1.0 and rows["retrain"]["forget_gap"] == 0.0
    # FedAvg without the leaving client exchanges 2 of the 3 clients' models; FOUL's Phase II exchanges nothing
    assert rows["retrain"]["bytes"] == pytest.approx(rows["original"]["bytes"] * 2 / 3, rel=0.05)
    assert report["communication_bytes"]["foul"] == 0 and rows["foul"]["comm_ratio"] == 0.0
    for row in rows.values():
        assert 0.0 <= row["forget_acc"] <= 100.0 and 0.0 <= row["test_acc"] <= 100.0 and row["seconds"] >= 0.0
    markdown = (tmp_path / "out/report.md").read_text()
    assert markdown.startswith("# Client 1 leaves (100 samples; iid, seed 4, 1 rounds)") and "| federaser |" in markdown


def test_class_and_samples_requests_from_the_command_line():
    args = _parser().parse_args(["--request", "class", "--forget-class", "2"])
    settings, _, _ = request_settings(TINY, request=args.request, forget_class=args.forget_class)
    assert settings["federation"]["request"] == "class" and settings["federation"]["forget_class"] == 2
    settings, _, _ = request_settings(TINY, request="samples", forget_fraction=0.25)
    assert (settings["federation"]["request"], settings["federation"]["forget_fraction"]) == ("samples", 0.25)
    assert "request" not in TINY["federation"]  # the config is not modified
    with pytest.raises(ValueError, match=r"`forget_fraction` should be a number in \(0, 1\) for request='samples', got 2.0"):
        request_settings(TINY, request="samples", forget_fraction=2.0)
    with pytest.raises(ValueError, match=r"`forget_class` should be a class id \(an int >= 0\) or 'largest' for request='class', got 'shoes'"):
        request_settings(TINY, request="class", forget_class="shoes")
