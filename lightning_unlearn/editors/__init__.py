"""Training-free editors: a closed-form or one-shot edit of a model's weights, with a record and undo.

An editor is not an :class:`~lightning_unlearn.methods.UnlearningMethod` (a loss stepped by an optimizer): it reads
activations once and writes weights in closed form. ``STAMP`` / ``STAMP-LR`` (after RePAIR, arXiv 2604.12820,
reconstructed) are registered in :data:`EDITORS`.
"""

from lightning_unlearn.editors.stamp import (
    EDITORS,
    STAMP,
    STAMPLR,
    EditRecord,
    choose_layer,
    cosine_separation,
    default_calibration_subjects,
    default_preserve_prompts,
    default_refusals,
    least_squares_edit,
    register_editor,
    truncated_gram_pinv,
    truncated_pinv,
)

__all__ = [
    "EDITORS",
    "STAMP",
    "STAMPLR",
    "EditRecord",
    "choose_layer",
    "cosine_separation",
    "default_calibration_subjects",
    "default_preserve_prompts",
    "default_refusals",
    "least_squares_edit",
    "register_editor",
    "truncated_gram_pinv",
    "truncated_pinv",
]
