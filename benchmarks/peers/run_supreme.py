"""B7 side-by-side, peer venv: SUPREME (``supreme-unlearning==0.1.5``) NegGrad on the digits model; prints JSON.

Run with the scratch venv's interpreter (see README.md; the driver ``b7_peers.py`` does this)::

    /tmp/peers/supreme/bin/python benchmarks/peers/run_supreme.py --configs 32x200,128x50

SUPREME has no single-step "gradient ascent + retain" method: ``neg_grad`` is gradient ascent on the forget set
only (``L = -CE_f``), ``finetune`` is CE on the retain set only, ``scrub`` alternates max-steps on forget and
min-steps on retain with a KD teacher. So the like-for-like workload is forget-only GA, compared with our
``GradientAscent(retain_weight=0)`` and a forget-only plain loop. Variants:

* ``supreme_neggrad``: the path SUPREME's ``unlearn_main`` takes, driven through its own functions:
  ``initialize_fabric`` (CPU, ``32-true``, CSV logger flag on, no callbacks), ``fabric.setup_dataloaders``, then
  ``track_resources(dynamic_method_call, module_name="supreme.methods.unlearning_methods.neg_grad", ...)``, i.e.
  ``neg_grad`` -> ``fit_one_learning_cycle(epochs=5, neggrad_flag=True)``. Loaders come from SUPREME's
  ``create_dataloader`` with ``num_workers=0`` (same loading as ours), batches are ``(images, labels, clabels)``,
  and ``forget_test`` = ``forget_train`` (SUPREME's rule for random forgetting), which it evaluates after every
  epoch. Two changes, both made from this script without editing the package: ``torch.optim.SGD`` is replaced
  by a factory returning ``Adam(lr=--lr)`` (``fit_one_learning_cycle`` hard-codes SGD lr 0.02, momentum 0.9,
  wd 5e-4), so the optimizer matches ours; the 5 epochs are kept and the forget set has 1,280 samples, so the
  step count is exactly 200 (batch 32) / 50 (batch 128).
* ``supreme_neggrad_sgd``: the same with SUPREME's own SGD (no patch), to show the optimizer does not matter.
* ``supreme_neggrad_w8``: the same with ``create_dataloader``'s default ``num_workers=8`` (as shipped).
* ``plain_ga_peervenv``: the plain forget-only loop of ``run_ours.py`` in this venv (venv parity check).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import tempfile
import time
import warnings

# run as a script: Python puts this folder first on sys.path, so the shared `_digits` helper imports directly
import _digits  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

VARIANTS = ("supreme_neggrad", "supreme_neggrad_sgd", "supreme_neggrad_w8", "plain_ga_peervenv")
_SGD = torch.optim.SGD


def run_supreme(variant: str, data, state, batch: int, n_forget: int, lr: float, log_dir: str) -> None:
    from supreme.utils.fabric.fabric_setup import initialize_fabric
    from supreme.utils.generic_utils import create_dataloader, dynamic_method_call
    from supreme.utils.unlearning.evaluation_utils import track_resources

    if variant == "supreme_neggrad_sgd":
        torch.optim.SGD = _SGD
    else:  # fit_one_learning_cycle builds torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=5e-4)
        torch.optim.SGD = lambda params, **_: torch.optim.Adam(params, lr=lr)
    xf, yf, _, _ = data
    xf, yf = xf[:n_forget], yf[:n_forget]
    fabric, *_ = initialize_fabric(
        {
            "accelerator": "cpu",
            "model_name": "DigitsCNN",
            "precision": "32-true",
            "num_gpus": 1,
            "callbacks": [],
            "distributed_strategy": "auto",
            "deepspeed_stage": None,
            "tensorboard_logging_flag": False,
            "csv_logging_flag": True,
            "logging_root_dir": log_dir,
            "logging_run_name": "b7_peers",
        }
    )
    workers = {} if variant == "supreme_neggrad_w8" else {"num_workers": 0}
    forget_train = TensorDataset(xf, yf, yf)  # (images, labels, clabels)
    train_loader = create_dataloader(forget_train, batch_size=batch, is_training=True, pin_memory=False, num_gpus=1, **workers)
    test_loader = create_dataloader(forget_train, batch_size=batch, is_training=False, pin_memory=False, num_gpus=1, **workers)
    train_loader, test_loader = fabric.setup_dataloaders(train_loader, test_loader)
    model = _digits.DigitsCNN()
    model.load_state_dict(state)
    track_resources(
        dynamic_method_call,
        module_name="supreme.methods.unlearning_methods.neg_grad",
        file_name="neg_grad",
        fabric=fabric,
        num_gpus=1,
        wandb_logging_flag=False,
        model=model,
        forget_train_dataloader=train_loader,
        forget_test_dataloader=test_loader,
    )


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="32x200,128x50", help="comma-separated BATCHxSTEPS (STEPS must be 5 epochs x 1280/BATCH)")
    p.add_argument("--variants", default="supreme_neggrad,plain_ga_peervenv")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import lightning  # noqa: F401

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    from run_ours import run_plain  # the same plain loop as in the project venv (imports torch only)

    data = _digits.digits_split()
    state = _digits.initial_state()
    out = []
    with tempfile.TemporaryDirectory() as log_dir:
        for cfg in args.configs.split(","):
            batch, steps = map(int, cfg.split("x"))
            if steps * batch != 5 * _digits.FORGET_SIZE:
                raise SystemExit(f"{cfg}: SUPREME's neg_grad runs 5 epochs over the forget set; need BATCH*STEPS = {5 * _digits.FORGET_SIZE}")
            for variant in args.variants.split(","):
                if variant == "plain_ga_peervenv":
                    run = lambda n, batch=batch: run_plain(0.0, data, state, batch, n, args.lr)  # noqa: E731
                else:
                    run = lambda n, variant=variant, batch=batch: run_supreme(variant, data, state, batch, n * batch // 5, args.lr, log_dir)  # noqa: E731
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    run(10)  # untimed warm-up: 5 epochs x 2 batches
                    clock = _digits.StepClock()
                    t0 = time.perf_counter()
                    run(steps)
                    t1 = time.perf_counter()
                    clock.close()
                torch.optim.SGD = _SGD
                out.append({"variant": variant, "venv": "supreme", "batch": batch, "steps": steps, **clock.summary(steps, args.warmup, t0, t1)})
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
