"""Data and model shared by the B7 peer scripts; imports only torch + scikit-learn, so every scratch venv can use it.

* data: scikit-learn's bundled ``load_digits`` (1,797 images, 8×8, pixel values /16), a seeded random forget set of
  ``FORGET_SIZE`` = 1,280 samples and the other 517 as the retain set. 1,280 = 40 batches of 32 = 10 batches of 128,
  so SUPREME's NegGrad (5 epochs over the forget set, hard-coded) takes exactly 200 (batch 32) / 50 (batch 128) steps.
* model: ``DigitsCNN`` re-declares ``lightning_unlearn.models.SmallCNN(image_size=8, width=16, hidden=64)`` layer for
  layer (same module names, so state dicts are interchangeable); 13,706 parameters, checked against SmallCNN by
  ``run_ours.py``.
"""

from __future__ import annotations

import torch
from torch import nn

FORGET_SIZE = 1280
N_PARAMS = 13_706


class DigitsCNN(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 8, width: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.penultimate = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * (image_size // 4) ** 2, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.penultimate(self.features(x)))


def digits_split(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_forget, y_forget, x_retain, y_retain) as float32 (N, 1, 8, 8) images and int64 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    f, r = perm[:FORGET_SIZE], perm[FORGET_SIZE:]
    return x[f], y[f], x[r], y[r]


def initial_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """The same initial weights in every venv (the timing does not depend on them; a trained model is not needed)."""
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in DigitsCNN().state_dict().items()}


class StepClock:
    """Stamps the end of every optimizer step of *any* optimizer (global post-step hook), without touching its code."""

    def __init__(self) -> None:
        import time

        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.stamps: list[float] = []
        self._now = time.perf_counter
        self._handle = register_optimizer_step_post_hook(lambda *_: self.stamps.append(self._now()))

    def close(self) -> None:
        self._handle.remove()

    def summary(self, steps: int, warmup: int, t_start: float, t_end: float) -> dict:
        """``fit_s``: whole run incl. set-up/teardown; ``steps_s``: end of step ``warmup`` -> end of the last step
        (everything the framework does between steps, incl. per-epoch evaluation/logging); ``median_step_ms``: the
        median step-to-step interval over the same window (the steady-state step, epoch-boundary work excluded)."""
        import statistics

        s = self.stamps
        if len(s) != steps:
            raise RuntimeError(f"{len(s)} optimizer steps ran, expected {steps}")
        gaps = [b - a for a, b in zip(s[warmup - 1 : -1], s[warmup:])]
        return {
            "fit_s": t_end - t_start,
            "steps_s": s[-1] - s[warmup - 1],
            "timed_steps": steps - warmup,
            "ms_per_step": 1000 * (s[-1] - s[warmup - 1]) / (steps - warmup),
            "median_step_ms": 1000 * statistics.median(gaps),
            "setup_s": s[0] - t_start,
            "teardown_s": t_end - s[-1],
        }
