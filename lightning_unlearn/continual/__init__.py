"""Continual unlearning: a stream of deletion requests served on one static model.

:class:`ContinualUnlearner` handles each request with a new LoRA (``"orthogonal"`` SVD-LoRA, the
``"naive"`` sequential fusion baseline) or with full fine-tuning (``"full"``), and fuses it, so the
deployed model is always a single network ``W₀ + Σ_t ΔW_t``. ``peft`` is needed by the LoRA strategies.
"""

from lightning_unlearn.continual.svd_lora import (
    STRATEGIES,
    ContinualUnlearner,
    ProtectedSubspace,
    as_matrix,
    energy_rank,
    lora_delta,
    project_out,
    protected_basis,
)

__all__ = [
    "STRATEGIES",
    "ContinualUnlearner",
    "ProtectedSubspace",
    "as_matrix",
    "energy_rank",
    "lora_delta",
    "project_out",
    "protected_basis",
]
