"""Federated unlearning on Flower: a client leaves the federation, or deletes a class or samples (benchmark B8).

The pure-torch parts (client split, the network, FedEraser's calibration, projected gradient ascent, FOUL's losses
and Phase II, MPU's perturbed copies and harmonic aggregation) import without Flower; the Flower apps live in :mod:`lightning_unlearn.federated.apps`, which needs the
``federated`` extra (``pip install 'lightning-unlearn[federated]'``) and is imported only when a federation runs.
"""

from lightning_unlearn.federated.client import REQUESTS, Federation, Request, local_train, projected_ascent, request_split
from lightning_unlearn.federated.federaser import calibrate, calibrated_step
from lightning_unlearn.federated.foul import (
    conflict_corrected_gradient,
    phase_one_loss,
    phase_two,
    prototype_loss,
    reconstruction_loss,
    variance_hinge,
)
from lightning_unlearn.federated.model import FederatedNet
from lightning_unlearn.federated.mpu import harmonic_aggregate, mpu_round, permute_ffn, perturbed_copies
from lightning_unlearn.federated.partition import PARTITION_SCHEMES, partition_clients
from lightning_unlearn.federated.pga import ball_radius, project_to_ball, reference_state
from lightning_unlearn.federated.weights import weighted_mean

__all__ = [
    "PARTITION_SCHEMES",
    "REQUESTS",
    "Request",
    "FederatedNet",
    "Federation",
    "ball_radius",
    "harmonic_aggregate",
    "mpu_round",
    "permute_ffn",
    "perturbed_copies",
    "calibrate",
    "calibrated_step",
    "conflict_corrected_gradient",
    "local_train",
    "partition_clients",
    "phase_one_loss",
    "phase_two",
    "project_to_ball",
    "projected_ascent",
    "prototype_loss",
    "reconstruction_loss",
    "reference_state",
    "request_split",
    "variance_hinge",
    "weighted_mean",
]
