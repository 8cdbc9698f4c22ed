"""The one unlearning engine: every loop that steps a method (``UnlearningModule``, the ``Unlearn`` callback's
schedules, continual unlearning) computes its loss and steps through :mod:`lightning_unlearn.engine.step`, and
measures what it forgot with :class:`~lightning_unlearn.engine.monitor.ForgetMonitor`."""

from lightning_unlearn.engine.monitor import ForgetMonitor, SplitScore, check_stop_arguments, score
from lightning_unlearn.engine.step import (
    SUPPORTED_STRATEGIES,
    FabricStepper,
    Progress,
    RunResult,
    StepBatch,
    TrainerStepper,
    UnlearningEngine,
    average_gradients,
    check_strategy,
    logging_step,
    make_fabric,
    run_steps,
    swapped_training_step,
)

__all__ = [
    "SUPPORTED_STRATEGIES",
    "FabricStepper",
    "ForgetMonitor",
    "Progress",
    "RunResult",
    "SplitScore",
    "StepBatch",
    "TrainerStepper",
    "UnlearningEngine",
    "average_gradients",
    "check_stop_arguments",
    "check_strategy",
    "logging_step",
    "make_fabric",
    "run_steps",
    "score",
    "swapped_training_step",
]
