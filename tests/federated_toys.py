"""The tiny federation the Flower tests run (import as ``from federated_toys import TINY``; ``tests/`` is on
``sys.path``): 3 clients of 100 Fashion-MNIST images, a small FederatedNet, one FedAvg round, every B8 method."""

from __future__ import annotations

TINY = {
    "model": {"class_path": "lightning_unlearn.federated.FederatedNet", "init_args": {"hidden": 16, "latent": 4}},
    "federation": {"num_clients": 3, "alpha": 0.5, "samples_per_client": 100, "leaving": 0, "train_limit": 2000},
    "test_limit": 200,
    "training": {"rounds": 1, "epochs": 3, "lr": 0.1, "batch_size": 20},
    "methods": {
        "federaser": {"interval": 1},
        "pga": {"lr": 0.01, "max_epochs": 1, "stop_accuracy": 0.1, "radius_fraction": 0.3333, "post_rounds": 1},
        "foul": {"kappa": 1.0, "server_lr": 0.05, "post_rounds": 0},
    },
}
