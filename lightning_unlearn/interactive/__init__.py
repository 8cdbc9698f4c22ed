"""Interactive unlearning: a chat in which the user can ask the model, in plain words, to forget something.

After "RePAIR: Interactive Machine Unlearning" (arXiv 2604.12820; reconstructed, ``shared/METHODS.md`` §1):
:class:`Watchdog` detects a forget request in a message and extracts its target; :class:`ChatSession` chats with a
causal LM and, on a request, edits it with a training-free editor (STAMP) and goes on with the edited model;
``lightning-unlearn chat`` is the terminal front end (:mod:`lightning_unlearn.interactive.cli`).
"""

from lightning_unlearn.interactive.watchdog import ForgetIntent, Watchdog, extract_target

__all__ = ["ForgetIntent", "Watchdog", "extract_target"]
