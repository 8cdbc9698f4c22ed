"""``lightning-unlearn attack``: attack an unlearned model described by a config (quantization, relearning)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

_EPILOG = """\
The config is the one the unlearning run used (its model, datamodule, original and oracle paths;
a config without an original path unlearned the network it builds, e.g. a pretrained model as
released, and that network is then the original); the unlearned weights come from --ckpt_path
(a Lightning checkpoint) or --weights (a SaveWeights file), both loaded with weights_only=True. Arguments this command does not know are passed on to
the config parser (e.g. --data.init_args.batch_size 64). Example:

  lightning-unlearn attack --config configs/digits/npo.yaml --weights artifacts/digits/npo.pt
  lightning-unlearn attack --config configs/digits/npo.yaml --ckpt_path outputs/digits/npo/checkpoints/last.ckpt \\
      --bits 8 4 --relearn-steps 5 20 --out outputs/digits/npo/attacks.json
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-unlearn attack",
        description=(
            "Attack an unlearned model: round its weights to low-bit integers and fine-tune it briefly on part of the "
            "forget set, on a copy each time, and the same to the oracle; report how much of the forgotten accuracy "
            "and loss each attack recovers (0 = none, 1 = all)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="the unlearning run's LightningCLI config (YAML)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt_path", help="Lightning checkpoint of the unlearning run")
    source.add_argument("--weights", help="weights file written by SaveWeights")
    parser.add_argument(
        "--bits", type=int, nargs="*", default=[8, 4], help="quantization bit widths (default: 8 4; none: no quantization)"
    )
    parser.add_argument(
        "--group-size", type=int, default=128, help="group size for widths below 8 (per-channel at 8 bits; default 128)"
    )
    parser.add_argument(
        "--relearn-steps", type=int, nargs="*", default=[10], help="relearning attacks, one per step count (default: 10)"
    )
    parser.add_argument("--relearn-lr", type=float, default=1e-3, help="learning rate of the relearning attack (default 1e-3)")
    parser.add_argument(
        "--relearn-fraction", type=float, default=0.5, help="fraction of the forget set the attacker fine-tunes on"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="batch size of the held-out forget and relearning loaders")
    parser.add_argument("--seed", type=int, default=0, help="seed of the forget split and of the relearning")
    parser.add_argument("--out", help="write the results as JSON here")
    return parser


def build_attacks(args: argparse.Namespace) -> list[Any]:
    from lightning_unlearn.attacks.quantization import QuantizationAttack
    from lightning_unlearn.attacks.relearning import RelearningAttack

    attacks: list[Any] = [QuantizationAttack(bits=b, group_size=None if b >= 8 else args.group_size) for b in args.bits]
    attacks += [RelearningAttack(steps=s, lr=args.relearn_lr, seed=args.seed) for s in args.relearn_steps]
    if not attacks:
        raise ValueError("No attack selected: give --bits and/or --relearn-steps.")
    return attacks


def load_unlearned(module: Any, ckpt_path: str | None, weights: str | None) -> None:
    """Load the unlearned weights into ``module`` (its network for ``weights``), never executing pickled code."""

    from lightning_unlearn._weights import load_weights, network_of, read_weights_file

    if weights is not None:
        load_weights(network_of(module), weights, argument="--weights")
        return
    checkpoint = read_weights_file(ckpt_path, argument="--ckpt_path")  # type: ignore[arg-type]
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"--ckpt_path {ckpt_path!r} is not a Lightning checkpoint (no 'state_dict').")
    module.load_state_dict(checkpoint["state_dict"])


def main(argv: list[str] | None = None) -> int:
    args, rest = _parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    import copy

    from lightning_unlearn._interfaces import WeightFiles, weight_file
    from lightning_unlearn._weights import network_of
    from lightning_unlearn.attacks.callback import attack_module, write_results
    from lightning_unlearn.attacks.suite import attack_name
    from lightning_unlearn.cli import UnlearnCLI

    attacks = build_attacks(args)
    cli = UnlearnCLI(args=["--config", args.config, *rest], run=False)
    module, datamodule = cli.model, cli.datamodule
    original = None
    if isinstance(module, WeightFiles) and weight_file(module, "original") is None:
        # no `original` path: the config's own network (e.g. a pretrained model as released) is what was unlearned
        original = copy.deepcopy(network_of(module))
    load_unlearned(module, args.ckpt_path, args.weights)
    datamodule.prepare_data()
    datamodule.setup("fit")
    results = attack_module(
        module,
        datamodule,
        attacks,
        relearn_fraction=args.relearn_fraction,
        batch_size=args.batch_size,
        seed=args.seed,
        original=original,
    )
    print(format_results(results, [attack_name(a) for a in attacks]))
    if args.out:
        print(f"wrote {write_results(results, Path(args.out))}")
    return 0


def format_results(results: dict[str, Any], names: list[str]) -> str:
    """A plain-text table: held-out forget accuracy after each attack and the recovery, unlearned vs oracle."""
    from lightning_unlearn.attacks.suite import flat_result

    def pct(x: float) -> str:
        return "–" if not math.isfinite(x) else f"{x:+.1%}"

    base = results["models"]
    width = max(len("attack"), *(len(n) for n in names)) + 2
    lines = [
        f"forget set split: {results['split']['relearn']} for the relearning attacker, {results['split']['heldout']} held out",
        "held-out forget accuracy: " + ", ".join(f"{who} {m['forget_acc']:.1f}%" for who, m in base.items()),
        "",
        f"{'attack':<{width}}{'forget acc':>12}{'recovery':>10}{'oracle acc':>12}{'oracle rec.':>12}",
    ]
    for name in names:
        flat = flat_result(results, name)
        lines.append(
            f"{name:<{width}}{flat.get('unlearned/forget_acc', math.nan):>11.1f}%{pct(flat.get('recovery_acc', math.nan)):>10}"
            f"{flat.get('oracle/forget_acc', math.nan):>11.1f}%{pct(flat.get('oracle_recovery_acc', math.nan)):>12}"
        )
    lines.append(
        "(recovery: fraction of the original -> unlearned drop in held-out forget accuracy that the attack regains; "
        "- = nothing was forgotten)"
    )
    for name in names:
        flat = flat_result(results, name)
        if "coverage" in flat:
            lines.append(
                f"{name} quantized {flat['coverage']:.1%} of the weight-matrix elements "
                f"({int(flat.get('skipped_matrices', 0))} weight matrices left in full precision)"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
