"""B7 side-by-side, our venv: the plain PyTorch loop and lightning_unlearn on the digits model; prints JSON.

Run with the project's interpreter from the repository root (the driver ``b7_peers.py`` does this)::

    .venv/bin/python benchmarks/peers/run_ours.py --configs 32x200,128x50 --variants plain_gar,ours_gar

Variants (``gar`` = gradient ascent + retain, ``L = -CE_f + CE_r``; ``ga`` = forget only, ``L = -CE_f``):

* ``plain_gar`` / ``plain_ga``: a hand-written loop: shuffled ``DataLoader``s over the forget and retain tensors
  (the retain loader is cycled), ``Adam``; 5 epochs over the forget set (= the step count).
* ``ours_gar`` / ``ours_ga``: ``UnlearningModule(SmallCNN(8, 16, 64), GradientAscent(retain_weight=1 | 0),
  optimizer=Adam)`` + ``ForgetRetainDataModule(forget=..., retain=..., mode="max_size_cycle")`` + ``Trainer.fit``
  with a ``CSVLogger`` (the regime users run; default monitor: forget/retain loss+accuracy before and after).
  Progress bar, checkpointing and model summary are off (not a TTY; the peer saves nothing either).
* ``ours_gar_nomon``: as ``ours_gar`` with ``monitor=False`` (no before/after evaluation passes).
* ``ours_gar_noval`` / ``ours_ga_noval``: as ``ours_gar`` / ``ours_ga`` with ``Trainer(limit_val_batches=0)``: the
  datamodule's evaluation loaders otherwise make Lightning run ``UnlearningModule``'s validation (forget/retain
  metrics) after every epoch, as the default Trainer does.

Every variant runs once untimed (10 steps: imports, oneDNN caches, Lightning's first-use costs) before the timed
run; times are in ``_digits.StepClock.summary``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import tempfile
import time
import warnings

# run as a script: Python puts this folder first on sys.path, so the shared `_digits` helper imports directly
import _digits  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

VARIANTS = ("plain_gar", "plain_ga", "ours_gar", "ours_ga", "ours_gar_nomon", "ours_gar_noval", "ours_ga_noval")


def run_plain(retain_weight: float, data, state, batch: int, steps: int, lr: float) -> None:
    xf, yf, xr, yr = data
    g = torch.Generator().manual_seed(0)
    forget = DataLoader(TensorDataset(xf, yf), batch_size=batch, shuffle=True, generator=g)
    retain = DataLoader(TensorDataset(xr, yr), batch_size=batch, shuffle=True, generator=g)
    model = _digits.DigitsCNN()
    model.load_state_dict(state)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    retain_iter = itertools.cycle(retain) if retain_weight else None  # cycle: caches the first pass; data is tiny
    done = 0
    while done < steps:
        for xb, yb in forget:
            loss = -F.cross_entropy(model(xb), yb)
            if retain_weight:
                xrb, yrb = next(retain_iter)
                loss = loss + retain_weight * F.cross_entropy(model(xrb), yrb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break


def run_ours(retain_weight: float, monitor: bool, data, state, batch: int, steps: int, lr: float, log_dir: str, validate: bool = True) -> None:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from lightning_unlearn import ForgetRetainDataModule, UnlearningModule
    from lightning_unlearn.methods import GradientAscent
    from lightning_unlearn.models import SmallCNN

    xf, yf, xr, yr = data
    model = SmallCNN(image_size=8, width=16, hidden=64)
    model.load_state_dict(state)
    module = UnlearningModule(
        model,
        GradientAscent(retain_weight=retain_weight),
        optimizer=lambda ps: torch.optim.Adam(ps, lr=lr),
        monitor=monitor,
    )
    dm = ForgetRetainDataModule(forget=TensorDataset(xf, yf), retain=TensorDataset(xr, yr), batch_size=batch, mode="max_size_cycle")
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        max_epochs=-1,
        logger=CSVLogger(log_dir, name="b7_peers"),
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **({} if validate else {"limit_val_batches": 0}),
    )
    trainer.fit(module, datamodule=dm)


def run_variant(variant: str, data, state, batch: int, steps: int, lr: float, log_dir: str) -> None:
    retain_weight = 0.0 if variant.endswith("_ga") or "_ga_" in variant else 1.0
    if variant.startswith("plain"):
        run_plain(retain_weight, data, state, batch, steps, lr)
    else:
        run_ours(retain_weight, not variant.endswith("_nomon"), data, state, batch, steps, lr, log_dir, validate=not variant.endswith("_noval"))


def quiet() -> None:
    import lightning.pytorch  # noqa: F401

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_unlearn"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="32x200,128x50", help="comma-separated BATCHxSTEPS")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--warmup", type=int, default=5, help="steps excluded from steps_s (timed window starts after them)")
    p.add_argument("--lr", type=float, default=1e-5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    quiet()
    from lightning_unlearn.models import SmallCNN

    smallcnn_params = sum(q.numel() for q in SmallCNN(image_size=8, width=16, hidden=64).parameters())
    assert smallcnn_params == _digits.N_PARAMS, smallcnn_params
    data = _digits.digits_split()
    state = _digits.initial_state()
    out = []
    with tempfile.TemporaryDirectory() as log_dir:
        for cfg in args.configs.split(","):
            batch, steps = map(int, cfg.split("x"))
            for variant in args.variants.split(","):
                import contextlib
                import io

                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    run_variant(variant, data, state, batch, 10, args.lr, log_dir)  # untimed warm-up
                    clock = _digits.StepClock()
                    t0 = time.perf_counter()
                    run_variant(variant, data, state, batch, steps, args.lr, log_dir)
                    t1 = time.perf_counter()
                    clock.close()
                rec = {"variant": variant, "venv": "project", "batch": batch, "steps": steps, **clock.summary(steps, args.warmup, t0, t1)}
                out.append(rec)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
