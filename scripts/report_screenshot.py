"""Produce a real unlearning report on scikit-learn digits and screenshot it for the README.

    python scripts/report_screenshot.py                      # -> docs/images/report.png
    python scripts/report_screenshot.py --run-dir outputs/report_example --out /tmp/report.png

Steps (about a minute on 2 CPU cores): train the original SmallCNN on all digits (15 epochs,
``SupervisedModule``), train the oracle on the retain split only (same recipe), unlearn the digit 3
with SalUn through ``UnlearningModule`` with the ``UnlearningReport`` callback, then render
``report.html`` with headless Chromium (``/usr/bin/chromium``, installed by ``scripts/setup.sh``).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from pathlib import Path

from lightning_unlearn import benchmarking  # quiet_lightning, quiet_trainer: shared with the benchmarks

REPO_ROOT = Path(__file__).resolve().parent.parent

CHROMIUM = "/usr/bin/chromium"
TRAIN_EPOCHS, TRAIN_LR, BATCH_SIZE = 15, 1e-3, 32
#: SalUn for 3 passes over the forget set at lr 5e-4: forgets the digit and keeps retain/test accuracy near the oracle's.
UNLEARN_EPOCHS, UNLEARN_LR = 3, 5e-4


def make_report(run_dir: Path, seed: int) -> Path:
    import lightning.pytorch as pl
    import torch

    from lightning_unlearn import DigitsDataModule, SupervisedModule, UnlearningModule
    from lightning_unlearn.methods import SalUn
    from lightning_unlearn.models import SmallCNN
    from lightning_unlearn.report import UnlearningReport

    def model() -> SmallCNN:
        return SmallCNN(image_size=8, width=16, hidden=64)

    def data(train_on: str) -> DigitsDataModule:
        return DigitsDataModule(forget_class=3, holdout_fraction=0.5, batch_size=BATCH_SIZE, train_on=train_on, seed=seed)

    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {"original": run_dir / "original.pt", "oracle": run_dir / "oracle.pt"}
    for kind, train_on in (("original", "all"), ("oracle", "retain")):
        pl.seed_everything(seed, verbose=False)
        net = model()
        benchmarking.quiet_trainer(max_epochs=TRAIN_EPOCHS).fit(
            SupervisedModule(net, optimizer=functools.partial(torch.optim.Adam, lr=TRAIN_LR)), datamodule=data(train_on)
        )
        torch.save(net.state_dict(), paths[kind])
        print(f"trained the {kind} model ({TRAIN_EPOCHS} epochs on {train_on!r}) -> {paths[kind]}")

    pl.seed_everything(seed, verbose=False)
    module = UnlearningModule(
        model(),
        SalUn(threshold=0.5),
        original=str(paths["original"]),
        oracle=str(paths["oracle"]),
        optimizer=functools.partial(torch.optim.Adam, lr=UNLEARN_LR),
    )
    report = UnlearningReport(dirpath=run_dir)
    benchmarking.quiet_trainer(max_epochs=UNLEARN_EPOCHS, callbacks=[report]).fit(module, datamodule=data("forget_retain"))
    print(f"unlearned the digit 3 with SalUn -> {report.json_path}")
    return report.html_path


def screenshot(page: Path, out: Path, height: int) -> None:
    """Render ``page`` at 1280×``height`` with headless Chromium and trim the blank space below the page."""
    import matplotlib.image

    from lightning_unlearn.report import html

    html.screenshot(page, out, height=height)
    pixels = matplotlib.image.imread(out)[..., :3]
    rows = (pixels < 0.98).any(axis=(1, 2)).nonzero()[0]
    bottom = min(len(pixels), int(rows[-1]) + 32) if len(rows) else len(pixels)
    matplotlib.image.imsave(out, pixels[:bottom])
    print(f"screenshot ({pixels.shape[1]}x{bottom}) -> {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, help="keep the weights and report here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "images" / "report.png", help="the PNG to write")
    parser.add_argument(
        "--height", type=int, default=3600, help="window height in pixels (width 1280); blank space below the page is trimmed"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing; install Debian's `chromium` (scripts/setup.sh does).")
    benchmarking.quiet_lightning()
    if args.run_dir is not None:
        screenshot(make_report(args.run_dir, args.seed), args.out, args.height)
        return
    with tempfile.TemporaryDirectory() as tmp:
        screenshot(make_report(Path(tmp), args.seed), args.out, args.height)


if __name__ == "__main__":
    main()
