#!/usr/bin/env python
"""Benchmark B7 — framework overhead: time and peak memory of lightning_unlearn vs a hand-written loop.

The same unlearning step — forward on a forget batch and on a retain batch, the method's loss, backward,
``Adam`` step — runs for GA and NPO on the B1 model (``SmallCNN``, 1×28×28 inputs) through

* ``module``: ``UnlearningModule`` + ``Trainer.fit`` on paired ``{"forget", "retain"}`` batches;
* ``callback_before``: the ``Unlearn`` callback, ``schedule="before_training"`` (its own phase with its own
  optimizer) on a user's minimal LightningModule;
* ``callback_interleaved``: the ``Unlearn`` callback, ``schedule="interleaved"``: the user's training step
  supplies the retain loss (cross-entropy on its own batch) and the callback adds the forget term;
* ``plain``: a hand-written PyTorch loop doing the identical maths;
* ``lightning``: a hand-written minimal ``LightningModule`` doing the identical maths on the same paired loader
  and ``self.log``-ing its loss every step, as Lightning's own examples do — the floor any Lightning-based
  library stands on, so ``module / lightning`` is the part of the overhead that is ours.

The users' regime adds two rows that separate the callback's forget monitor (its before/after scoring of the
forget set and of up to 2,048 retain samples, on by default) from the framework: ``callback_before_unmonitored``
(``Unlearn(..., monitor=False)``), ``plain_scored`` (the plain loop plus the same before/after scoring of the
forget and retain sets written by hand: the like-for-like baseline of a monitored phase) and
``plain_scored_forget`` (the same scoring of the forget set only: the interleaved callback's monitor, which is
given no retain loader, scores nothing else).

GA runs with ``retain_weight=1`` (``L = -CE_f + CE_r``) so every path does forget + retain forwards; NPO is
``NPO(beta=0.1, retain_weight=1)`` (reference model forward on the forget batch, no grad). A fixed set of
pre-made batches (random tensors of the B1 shape, labels 0..9) is cycled by every path, so data loading is
(nearly) free everywhere and the difference is the framework. Lightning's progress bar, logger,
checkpointing, model summary and validation are disabled in every Trainer.

Timing: a post-step hook on the optimizer stamps the end of every step; the figure is the time from the end
of the last warm-up step to the end of the last timed step (so Trainer start-up and teardown are excluded,
and Lightning's per-step hooks, logging and data fetching are included). Rounds alternate the order of
variants; the headline is the median over rounds of the per-round ratio framework / plain.

Memory: peak resident set size above the level just before each run (``VmHWM`` − ``VmRSS`` from
``/proc/self/status``; the high-water mark is reset by writing 5 to ``/proc/self/clear_refs``, freed heap is
returned with ``malloc_trim`` and glibc's mmap threshold is pinned at 128 KiB so tensor buffers are unmapped
when freed). The baseline is plain fine-tuning on the same two batches (``CE_f + CE_r``, no reference
model), i.e. the same activations; the ratio shows what keeping the reference model costs.

Run from the repository root::

    python benchmarks/b7_overhead.py --quick     # ~30 s
    python benchmarks/b7_overhead.py             # full: batch 128, 100 timed steps, 5 rounds
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import functools
import gc
import math
import re
import statistics
import time
from pathlib import Path
from typing import Any

from lightning_unlearn import benchmarking

BENCH_DIR = Path(__file__).resolve().parent

PATHS = ("plain", "lightning", "module", "callback_before", "callback_interleaved")
#: The users' regime also times the monitor apart: the phase without it, and the plain loop with the same scoring.
USERS_PATHS = PATHS + ("callback_before_unmonitored", "plain_scored", "plain_scored_forget")
METHODS = ("ga", "npo")
BASELINE = ("finetune", "plain")  # the memory baseline: plain fine-tuning on the same two batches


# ----------------------------------------------------------------------------------------------------------
# memory measurement
# ----------------------------------------------------------------------------------------------------------


class RSSMeter:
    """Peak RSS above the pre-run level, with the kernel's high-water mark reset before every run."""

    def __init__(self) -> None:
        try:
            self.libc = ctypes.CDLL("libc.so.6")
        except OSError:
            self.libc = None
        self.resettable = self._try_reset()
        self.how = (
            "peak RSS (VmHWM, reset via /proc/self/clear_refs) minus RSS just before the run, after gc + malloc_trim, "
            "with glibc's mmap threshold pinned at 128 KiB so freed tensor buffers leave the RSS"
            if self.resettable
            else "UNAVAILABLE (/proc/self/clear_refs not writable): memory columns are not measured"
        )

    def pin_mmap_threshold(self) -> None:
        """Serve every allocation >= 128 KiB with mmap (returned to the OS on free): RSS then tracks live tensors.

        Called only for the memory phase: it makes every step slower (page faults), so timing runs before it.
        """
        if self.libc is not None:
            self.libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD (fixed: disables glibc's dynamic threshold)
            self.libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD

    @staticmethod
    def _status() -> dict[str, int]:
        text = Path("/proc/self/status").read_text()
        return {k: int(re.search(rf"{k}:\s+(\d+)", text).group(1)) * 1024 for k in ("VmRSS", "VmHWM")}

    def _try_reset(self) -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def start(self) -> int:
        gc.collect()
        if self.libc is not None:
            self.libc.malloc_trim(0)
        if self.resettable:
            self._try_reset()
        self.base = self._status()["VmRSS"]
        return self.base

    def peak_delta(self) -> float:
        if not self.resettable:
            return math.nan
        return float(self._status()["VmHWM"] - self.base)


# ----------------------------------------------------------------------------------------------------------
# the workload
# ----------------------------------------------------------------------------------------------------------


class StepClock:
    """Optimizer post-step hook: stamps the end of every optimizer step."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def attach(self, optimizer):
        optimizer.register_step_post_hook(lambda *_: self.stamps.append(time.perf_counter()))
        return optimizer

    def seconds(self, warmup: int, steps: int) -> float:
        if len(self.stamps) < warmup + steps:
            raise RuntimeError(f"only {len(self.stamps)} optimizer steps ran, expected {warmup + steps}")
        return self.stamps[warmup + steps - 1] - self.stamps[warmup - 1]


#: The models: B1's SmallCNN on 28×28 inputs and the digits model of B1's quick scale on 8×8 inputs.
ARCHS: dict[str, dict[str, Any]] = {
    "b1": {"model": {}, "image_size": 28},
    "digits": {"model": {"image_size": 8, "width": 16, "hidden": 64}, "image_size": 8},
}
#: The run being timed: which model, and where a CSVLogger writes (``None``: no logger, as in the steady regime).
RUN: dict[str, Any] = {"arch": "b1", "log_dir": None}


def make_model():
    from lightning_unlearn.models import SmallCNN

    return SmallCNN(**ARCHS[RUN["arch"]]["model"])


def make_batches(n: int, batch_size: int, seed: int, arch: str = "b1") -> list[tuple[Any, Any]]:
    import torch

    size = ARCHS[arch]["image_size"]
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch_size, 1, size, size, generator=g), torch.randint(0, 10, (batch_size,), generator=g)) for _ in range(n)]


def make_method(name: str):
    from lightning_unlearn.methods import NPO, GradientAscent

    if name == "ga":
        return GradientAscent(forget_weight=1.0, retain_weight=1.0)
    if name == "npo":
        return NPO(beta=0.1, forget_weight=1.0, retain_weight=1.0)
    raise ValueError(name)


def trainer(max_steps: int, callbacks=None):
    logger: Any = False
    if RUN["log_dir"] is not None:  # the users' regime: a logger attached, Lightning's default log_every_n_steps
        from lightning.pytorch.loggers import CSVLogger

        logger = CSVLogger(RUN["log_dir"], name="b7")
    return benchmarking.quiet_trainer(callbacks=callbacks, max_steps=max_steps, max_epochs=-1, logger=logger)


def _unwrap(items):  # DataLoader(batch_size=1) over pre-made batches -> the batch itself
    return items[0]


class _ListDataset:
    """Map-style dataset whose items are whole pre-made batches (for the callback's BatchStream)."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def run_plain(method: str, state, forget, retain, steps: int, lr: float, clock: StepClock, scored: tuple[str, ...] = ()) -> dict | None:
    """The hand-written loop; ``scored``: also score these splits (``"forget"``, ``"retain"``) before and after, as
    the callback's monitor does (its retain subset is every pre-made batch here: 16 batches <= 2,048 items)."""
    import torch

    model = make_model()
    model.load_state_dict(state)
    model.train()
    reference = copy.deepcopy(model).eval().requires_grad_(False) if method == "npo" else None
    optimizer = clock.attach(torch.optim.Adam(model.parameters(), lr=lr))
    splits = {"forget": forget, "retain": retain}
    before = {name: score_by_hand(model, splits[name]) for name in scored}
    k = len(forget)
    for i in range(steps):
        (xf, yf), (xr, yr) = forget[i % k], retain[i % k]
        loss = _plain_step_loss(method, model, reference, xf, yf, xr, yr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if scored:  # {split: ((loss, acc) before, (loss, acc) after)}
        return {name: (before[name], score_by_hand(model, splits[name])) for name in scored}
    return None


def _plain_step_loss(method: str, model, reference, xf, yf, xr, yr, beta: float = 0.1):
    """The step's loss, written out: what every framework path computes through the library."""
    import torch
    import torch.nn.functional as F

    logits_f = model(xf)
    logits_r = model(xr)
    retain_loss = F.cross_entropy(logits_r, yr)
    if method == "finetune":
        return F.cross_entropy(logits_f, yf) + retain_loss
    if method == "ga":
        return -F.cross_entropy(logits_f, yf) + retain_loss
    # npo: (2/β)·softplus(β·(log π_θ − log π_ref)), the paper's loss in its stable form
    with torch.no_grad():
        ref_logits = reference(xf)
    log_p = torch.log_softmax(logits_f, -1).gather(-1, yf[:, None]).squeeze(-1)
    ref_log_p = torch.log_softmax(ref_logits, -1).gather(-1, yf[:, None]).squeeze(-1)
    return (2.0 / beta) * F.softplus(beta * (log_p - ref_log_p)).mean() + retain_loss


def score_by_hand(model, batches) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` over ``batches`` in eval mode without gradients — the scoring
    the callback's monitor does before and after a phase, written out for the ``plain_scored`` baseline."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    loss, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for x, y in batches:
            logits = model(x)
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(-1) == y).sum())
            count += len(y)
    model.train(was_training)
    return loss / count, 100.0 * correct / count


def run_lightning(method: str, state, forget, retain, steps: int, lr: float, clock: StepClock) -> None:
    """A minimal hand-written LightningModule doing the plain loop's maths on the module's paired loader."""
    import lightning.pytorch as pl
    import torch

    class PlainLightning(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = make_model()
            self.net.load_state_dict(state)
            self.reference = [copy.deepcopy(self.net).eval().requires_grad_(False)] if method == "npo" else [None]

        def training_step(self, batch, batch_idx):
            (xf, yf), (xr, yr) = batch["forget"], batch["retain"]
            loss = _plain_step_loss(method, self.net, self.reference[0], xf, yf, xr, yr)
            self.log("train/loss", loss)
            return loss

        def configure_optimizers(self):
            return clock.attach(torch.optim.Adam(self.net.parameters(), lr=lr))

    trainer(steps).fit(PlainLightning(), train_dataloaders=_paired_loader(forget, retain))


def _paired_loader(forget, retain):
    from lightning.pytorch.utilities.combined_loader import CombinedLoader
    from torch.utils.data import DataLoader

    return CombinedLoader(
        {"forget": DataLoader(_ListDataset(forget), batch_size=None), "retain": DataLoader(_ListDataset(retain), batch_size=None)},
        mode="max_size_cycle",
    )


def run_module(method: str, state, forget, retain, steps: int, lr: float, clock: StepClock) -> None:
    import torch

    from lightning_unlearn import UnlearningModule

    model = make_model()
    model.load_state_dict(state)
    module = UnlearningModule(model, make_method(method), optimizer=lambda ps: clock.attach(torch.optim.Adam(ps, lr=lr)))
    trainer(steps).fit(module, train_dataloaders=_paired_loader(forget, retain))


def _user_module(state, lr: float, clock: StepClock | None):
    """A user's minimal LightningModule: plain supervised training with cross-entropy."""
    import lightning.pytorch as pl
    import torch
    import torch.nn.functional as F

    class UserModule(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = make_model()
            self.net.load_state_dict(state)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self(x), y)

        def configure_optimizers(self):
            opt = torch.optim.Adam(self.parameters(), lr=lr)
            return clock.attach(opt) if clock is not None else opt

    return UserModule()


def run_variant(method: str, path: str, state, forget, retain, steps: int, lr: float) -> StepClock:
    import torch
    from torch.utils.data import DataLoader

    from lightning_unlearn import Unlearn

    clock = StepClock()
    if path in PLAIN_SCORING:
        run_plain(method, state, forget, retain, steps, lr, clock, scored=PLAIN_SCORING[path])
    elif path == "lightning":
        run_lightning(method, state, forget, retain, steps, lr, clock)
    elif path == "module":
        run_module(method, state, forget, retain, steps, lr, clock)
    else:
        forget_loader = DataLoader(_ListDataset(forget), batch_size=1, collate_fn=_unwrap)
        retain_loader = DataLoader(_ListDataset(retain), batch_size=1, collate_fn=_unwrap)
        if path in ("callback_before", "callback_before_unmonitored"):
            callback = Unlearn(
                make_method(method),
                forget=forget_loader,
                retain=retain_loader,
                schedule="before_training",
                epochs=math.ceil(steps / len(forget)),
                max_steps=steps,
                optimizer=lambda ps: clock.attach(torch.optim.Adam(ps, lr=lr)),
                progress_bar=False,
                monitor=path == "callback_before",
            )
            module = _user_module(state, lr, None)
            user_steps = 1  # the phase runs in on_train_start; then the user's own training takes one step
        else:
            callback = Unlearn(make_method(method), forget=forget_loader, schedule="interleaved", progress_bar=False)
            module = _user_module(state, lr, clock)
            user_steps = steps
        fit = trainer(user_steps, callbacks=[callback])
        fit.fit(module, train_dataloaders=DataLoader(_ListDataset(retain), batch_size=None))
    return clock


# ----------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="b7_overhead.py",
        description="Benchmark B7: wall time and peak memory of GA/NPO steps through UnlearningModule, the Unlearn callback and a plain PyTorch loop.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="~30-60 s: batch 32, 15 timed steps, 3 rounds (default: batch 128, 100 steps, 5 rounds).")
    parser.add_argument("--steps", type=int, default=None, help="Timed optimizer steps per run (after warm-up).")
    parser.add_argument("--warmup", type=int, default=None, help="Untimed warm-up steps per run.")
    parser.add_argument("--rounds", type=int, default=None, help="Timing repetitions; the order of variants alternates every round.")
    parser.add_argument("--memory-rounds", type=int, default=None, help="Memory repetitions (default 5; 2 with --quick).")
    parser.add_argument("--batch-size", type=int, default=None, help="Forget and retain batch size (B1 uses 128).")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0 = torch's default).")
    parser.add_argument("--lr", type=float, default=1e-5, help="Adam learning rate (small, so GA stays finite; timing does not depend on it).")
    parser.add_argument("--out", default=None, help="Output JSON (default benchmarks/results/b7[_quick].json).")
    parser.add_argument("--quiet", action="store_true", help="No line per finished run.")
    parser.add_argument(
        "--regime",
        choices=("steady", "users", "all"),
        default="all",
        help="'steady': per-step time without a logger, Trainer set-up excluded, plus memory (the original B7); "
        "'users': the regime users run — a CSVLogger attached, the B1 model and the small digits model, short runs "
        "timed whole (Trainer set-up included) and per step; 'all': both.",
    )
    parser.add_argument("--users-steps", type=int, default=None, help="Optimizer steps of each short run in the users' regime (default: 50 on the B1 model, 200 on the digits model; 30 and 60 with --quick).")
    return parser.parse_args(argv)


#: The users' regime: each model at the batch size its benchmark uses, and the length of a short run (steps; the
#: same wall time on both models, ~20 s).
USERS_BATCH = {"b1": 128, "digits": 32}
USERS_STEPS = {"b1": 50, "digits": 200}
USERS_STEPS_QUICK = {"b1": 30, "digits": 60}
USERS_WARMUP = 10
#: The baseline doing the same work as a path: the plain loop, except for the monitored phase (the plain loop plus
#: the monitor's before/after scoring of the same splits) and the library's module (a bare LightningModule: Lightning's own share).
LIKE_FOR_LIKE = {"callback_before": "plain_scored", "callback_interleaved": "plain_scored_forget", "module": "lightning"}
#: The plain loops and the splits each scores before and after.
PLAIN_SCORING: dict[str, tuple[str, ...]] = {"plain": (), "plain_scored": ("forget", "retain"), "plain_scored_forget": ("forget",)}


def run_users_regime(args: argparse.Namespace, log) -> dict[str, Any]:
    """Short runs with a logger attached, timed whole (model and Trainer set-up, the monitor's before/after scoring,
    every step, teardown) and per step after ``USERS_WARMUP`` steps, on the B1 and the digits model."""
    import tempfile

    import torch

    if args.users_steps is not None and args.users_steps <= USERS_WARMUP:
        raise ValueError(f"`--users-steps` should be > {USERS_WARMUP} (the per-step clock skips {USERS_WARMUP} warm-up steps), got {args.users_steps}.")
    steps_of = {a: args.users_steps or (USERS_STEPS_QUICK if args.quick else USERS_STEPS)[a] for a in USERS_BATCH}
    quick = args.quick
    rounds = args.rounds or (3 if quick else 5)
    raw: list[dict[str, Any]] = []
    variants = [(m, p) for m in METHODS for p in USERS_PATHS]
    with tempfile.TemporaryDirectory() as log_dir:
        RUN["log_dir"] = log_dir
        try:
            for arch, batch in USERS_BATCH.items():
                RUN["arch"] = arch
                steps = steps_of[arch]
                torch.manual_seed(0)
                state = {k: v.clone() for k, v in make_model().state_dict().items()}
                forget = make_batches(16, batch, seed=1, arch=arch)
                retain = make_batches(16, batch, seed=2, arch=arch)
                for method, path in variants:  # untimed: first-use costs
                    run_variant(method, path, state, forget, retain, USERS_WARMUP + 2, args.lr)
                for r in range(rounds):
                    for method, path in variants if r % 2 == 0 else list(reversed(variants)):
                        start = time.perf_counter()
                        clock = run_variant(method, path, state, forget, retain, steps, args.lr)
                        whole = time.perf_counter() - start
                        per_step = clock.seconds(USERS_WARMUP, steps - USERS_WARMUP) / (steps - USERS_WARMUP)
                        raw.append({"arch": arch, "round": r, "method": method, "path": path, "whole_seconds": whole, "step_seconds": per_step})
                        log(f"[b7] users  {arch:6s} round {r} {method:4s} {path:21s} whole {whole:6.3f}s  {1000 * per_step:6.2f} ms/step")
        finally:
            RUN["log_dir"], RUN["arch"] = None, "b1"

    def get(arch, method, path, r, key):
        return next(x[key] for x in raw if (x["arch"], x["method"], x["path"], x["round"]) == (arch, method, path, r))

    rows = []
    for arch in USERS_BATCH:
        for method, path in variants:
            base = LIKE_FOR_LIKE.get(path, "plain")
            like = [get(arch, method, path, r, "whole_seconds") / get(arch, method, base, r, "whole_seconds") for r in range(rounds)]
            whole = [get(arch, method, path, r, "whole_seconds") / get(arch, method, "plain", r, "whole_seconds") for r in range(rounds)]
            step = [get(arch, method, path, r, "step_seconds") / get(arch, method, "plain", r, "step_seconds") for r in range(rounds)]
            rows.append(
                {
                    "arch": arch,
                    "batch_size": USERS_BATCH[arch],
                    "steps": steps_of[arch],
                    "method": method,
                    "path": path,
                    "whole_seconds_median": statistics.median(get(arch, method, path, r, "whole_seconds") for r in range(rounds)),
                    "whole_ratio_median": statistics.median(whole),
                    "whole_ratio_min": min(whole),
                    "whole_ratio_max": max(whole),
                    "ms_per_step_median": 1000 * statistics.median(get(arch, method, path, r, "step_seconds") for r in range(rounds)),
                    "step_ratio_median": statistics.median(step),
                    "step_ratio_min": min(step),
                    "step_ratio_max": max(step),
                    "like_for_like": base,
                    "whole_ratio_like_for_like_median": statistics.median(like),
                    "whole_ratio_like_for_like_max": max(like),
                }
            )
    config = {
        "models": {a: f"SmallCNN({ARCHS[a]['model']}) on 1x{ARCHS[a]['image_size']}x{ARCHS[a]['image_size']}, batch {b}" for a, b in USERS_BATCH.items()},
        "steps_per_run": steps_of,
        "warmup_steps_of_the_per_step_clock": USERS_WARMUP,
        "rounds": rounds,
        "logger": "lightning.pytorch.loggers.CSVLogger, log_every_n_steps=50 (Lightning's default)",
        "monitor": "the Unlearn callback's defaults (forget/retain scored before and after); UnlearningModule on a CombinedLoader has no forget loader to score",
        "timing": "whole: from building the model to fit's return (plain: model, optimizer, loop); per step: optimizer post-step hook after the warm-up; headline = median over rounds of the per-round ratio to the plain loop",
    }
    return {"config": config, "rows": rows, "raw": raw}


def format_users_table(result: dict[str, Any]) -> str:
    header = [
        "Model",
        "Method",
        "Path",
        "whole run s (median)",
        "whole / plain (median [min–max])",
        "ms/step",
        "step / plain (median [min–max])",
        "whole / like-for-like (median, max)",
    ]
    body = [
        [
            f"{r['arch']} (batch {r['batch_size']}, {r['steps']} steps)",
            r["method"],
            r["path"],
            f"{r['whole_seconds_median']:.2f}",
            f"{r['whole_ratio_median']:.2f} [{r['whole_ratio_min']:.2f}–{r['whole_ratio_max']:.2f}]",
            f"{r['ms_per_step_median']:.2f}",
            f"{r['step_ratio_median']:.2f} [{r['step_ratio_min']:.2f}–{r['step_ratio_max']:.2f}]",
            f"{r['whole_ratio_like_for_like_median']:.2f}, {r['whole_ratio_like_for_like_max']:.2f} (vs {r['like_for_like']})",
        ]
        for r in result["rows"]
    ]
    config = result["config"]
    note = (
        f"### B7 — the users' regime: a logger attached, short runs, {config['rounds']} rounds\n\n"
        f"Timing: {config['timing']}.\n"
        "Targets (issue 12): <= 1.10 x the plain loop on the B1 model with a logger attached; <= 1.5 x on the digits model.\n"
        "Like-for-like: the monitored phase vs the plain loop with the same before/after scoring; the module vs a bare "
        "LightningModule (Lightning's own share); every other path vs the plain loop.\n\n"
    )
    return note + benchmarking.markdown_table(header, body)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    meter = RSSMeter()
    benchmarking.quiet_lightning()
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    quick = args.quick
    steps = args.steps or (15 if quick else 100)
    warmup = args.warmup or (3 if quick else 10)
    rounds = args.rounds or (3 if quick else 5)
    mem_rounds = args.memory_rounds or (2 if quick else 5)
    batch = args.batch_size or (32 if quick else 128)
    log = (lambda *a, **k: None) if args.quiet else functools.partial(print, flush=True)

    payload: dict[str, Any] = {
        "benchmark": "B7",
        "command": benchmarking.command_line(),
        "git_commit": benchmarking.git_commit(BENCH_DIR.parent),
        "versions": benchmarking.versions(),
    }
    wall = time.perf_counter()
    if args.regime in ("steady", "all"):
        payload.update(run_steady_regime(args, meter, log, steps, warmup, rounds, mem_rounds, batch))
    if args.regime in ("users", "all"):
        payload["users_regime"] = run_users_regime(args, log)
    payload["wall_seconds"] = time.perf_counter() - wall
    out = Path(args.out) if args.out else BENCH_DIR / "results" / ("b7_quick.json" if quick else "b7.json")
    benchmarking.write_json(out, payload)
    if "rows" in payload:
        print(format_table(payload["rows"], payload["config"]))
    if "users_regime" in payload:
        print("\n" + format_users_table(payload["users_regime"]))
    print(f"\nwrote {out}")
    return payload



def run_steady_regime(args: argparse.Namespace, meter: RSSMeter, log, steps: int, warmup: int, rounds: int, mem_rounds: int, batch: int) -> dict[str, Any]:
    """The original B7: per-step time on the B1 model without a logger (Trainer set-up excluded), and peak memory."""
    import torch

    from lightning_unlearn.models import SmallCNN

    torch.manual_seed(0)
    state = {k: v.clone() for k, v in SmallCNN().state_dict().items()}
    n_batches = 16
    forget = make_batches(n_batches, batch, seed=1)
    retain = make_batches(n_batches, batch, seed=2)
    variants = [BASELINE] + [(m, p) for m in METHODS for p in PATHS]
    total = warmup + steps

    # one untimed pass over every variant: imports, oneDNN primitive caches, Lightning's first-use costs
    for method, path in variants:
        run_variant(method, path, state, forget, retain, warmup + 2, args.lr)

    raw: list[dict[str, Any]] = []
    wall = time.perf_counter()
    # phase 1 — time: rounds alternate the order of the variants
    for r in range(rounds):
        order = variants if r % 2 == 0 else list(reversed(variants))
        for method, path in order:
            clock = run_variant(method, path, state, forget, retain, total, args.lr)
            seconds = clock.seconds(warmup, steps)
            raw.append({"round": r, "method": method, "path": path, "seconds": seconds})
            log(f"[b7] time   round {r} {method:8s} {path:21s} {seconds:7.3f}s ({1000 * seconds / steps:6.2f} ms/step)")
    # phase 2 — memory: the peak is reached within the first steps, so a short run per variant suffices
    meter.pin_mmap_threshold()
    mem_steps = warmup + 5
    for r in range(mem_rounds):
        order = variants if r % 2 == 0 else list(reversed(variants))
        for method, path in order:
            meter.start()
            run_variant(method, path, state, forget, retain, mem_steps, args.lr)
            mem = meter.peak_delta()
            raw.append({"round": r, "method": method, "path": path, "peak_rss_delta_bytes": mem})
            log(f"[b7] memory round {r} {method:8s} {path:21s} peak RSS +{mem / 2**20:7.1f} MiB")

    rows = summarise(raw, variants, rounds, mem_rounds, steps)
    return {
        "config": {
            "model": "SmallCNN() (1x28x28 inputs, 421,642 parameters)",
            "batch_size": batch,
            "steps": steps,
            "warmup_steps": warmup,
            "rounds": rounds,
            "memory_rounds": mem_rounds,
            "memory_steps": warmup + 5,
            "torch_threads": torch.get_num_threads(),
            "lr": args.lr,
            "ga": "GradientAscent(forget_weight=1, retain_weight=1): -CE_f + CE_r",
            "npo": "NPO(beta=0.1, forget_weight=1, retain_weight=1)",
            "finetune": "plain loop, CE_f + CE_r (memory baseline: same batches, no reference model)",
            "data": f"{n_batches} pre-made random batches per split, cycled",
            "trainer": "logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0",
            "timing": "end of last warm-up step -> end of last timed step (optimizer post-step hook); headline = median over rounds of per-round framework/plain ratio",
            "memory": meter.how + "; baseline = plain fine-tuning on the same two batches",
            "wall_seconds": time.perf_counter() - wall,
        },
        "rows": rows,
        "raw": raw,
    }

def summarise(raw: list[dict[str, Any]], variants, rounds: int, mem_rounds: int, steps: int) -> list[dict[str, Any]]:
    def get(method, path, r, key):
        return next(x[key] for x in raw if x["method"] == method and x["path"] == path and x["round"] == r and key in x)

    rows = []
    for method, path in variants:
        secs = [get(method, path, r, "seconds") for r in range(rounds)]
        mems = [get(method, path, r, "peak_rss_delta_bytes") for r in range(mem_rounds)]
        plain_method = method if method in METHODS else "finetune"
        time_ratios = [get(method, path, r, "seconds") / get(plain_method, "plain", r, "seconds") for r in range(rounds)]
        mem_ratios = [get(method, path, r, "peak_rss_delta_bytes") / get(*BASELINE, r, "peak_rss_delta_bytes") for r in range(mem_rounds)]
        base_mems = [get(*BASELINE, r, "peak_rss_delta_bytes") for r in range(mem_rounds)]
        rows.append(
            {
                "method": method,
                "path": path,
                "seconds_median": statistics.median(secs),
                "ms_per_step_median": 1000 * statistics.median(secs) / steps,
                "time_ratio_to_plain_median": statistics.median(time_ratios),
                "time_ratio_to_plain_min": min(time_ratios),
                "time_ratio_to_plain_max": max(time_ratios),
                "peak_rss_delta_mib_median": statistics.median(mems) / 2**20,
                "peak_rss_delta_mib_min": min(mems) / 2**20,
                "memory_ratio_to_plain_finetune_median": statistics.median(mem_ratios),
                # transient extra allocations only ever add to a run's peak, so the minimum over rounds is the
                # least noisy estimate of what a step needs; its ratio is given beside the paired median
                "memory_ratio_to_plain_finetune_of_min": min(mems) / min(base_mems),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]], config: dict[str, Any]) -> str:
    header = ["Method", "Path", "ms/step (median)", "time / plain (median [min–max])", "peak RSS Δ MiB (median / min)", "memory / plain FT (median of ratios / ratio of mins)"]
    body = [
        [
            r["method"],
            r["path"],
            f"{r['ms_per_step_median']:.1f}",
            f"{r['time_ratio_to_plain_median']:.3f} [{r['time_ratio_to_plain_min']:.2f}–{r['time_ratio_to_plain_max']:.2f}]",
            f"{r['peak_rss_delta_mib_median']:.1f} / {r['peak_rss_delta_mib_min']:.1f}",
            f"{r['memory_ratio_to_plain_finetune_median']:.2f} / {r['memory_ratio_to_plain_finetune_of_min']:.2f}",
        ]
        for r in rows
    ]
    note = (
        f"### B7 — framework overhead (SmallCNN, batch {config['batch_size']}, {config['steps']} timed steps after "
        f"{config['warmup_steps']} warm-up, {config['rounds']} rounds, {config['torch_threads']} thread(s))\n\n"
        f"Time: {config['timing']}.\nMemory: {config['memory']}.\n"
        "Targets: time ratio <= 1.10; NPO memory <= 1.3 x plain fine-tuning.\n\n"
    )
    return note + benchmarking.markdown_table(header, body)


if __name__ == "__main__":
    main()
