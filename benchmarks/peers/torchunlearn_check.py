"""Does ``torchunlearn==0.1.0`` run one method? Run with a scratch venv's python (see README.md); prints JSON.

Builds the peer's ``RobModel`` around the digits CNN and calls ``torchunlearn.unlearn.easymode.Unlearn(...).neggrad(...)`` (and
``.finetune``), the documented easy-mode entry points, on the digits forget/retain split. Records the exact error.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

# run as a script: Python puts this folder first on sys.path, so the shared `_digits` helper imports directly
import _digits  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    out: dict = {"peer": "torchunlearn==0.1.0"}
    try:
        import torchunlearn

        out["import"] = f"ok (torchunlearn.__version__ = {torchunlearn.__version__!r})"
    except Exception as e:  # noqa: BLE001
        out["import"] = f"{type(e).__name__}: {e}"
        print(json.dumps(out, indent=2))
        return
    xf, yf, xr, yr = _digits.digits_split()
    model = _digits.DigitsCNN()
    rmodel = torchunlearn.RobModel(model, n_classes=10, normalization_used={"mean": [0.0], "std": [1.0]}, device="cpu")
    train = {"Retain": DataLoader(TensorDataset(xr, yr), batch_size=32, shuffle=True), "Forget": DataLoader(TensorDataset(xf, yf), batch_size=32, shuffle=True)}
    test = {"Test": DataLoader(TensorDataset(xr, yr), batch_size=128)}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        from torchunlearn.unlearn.easymode import Unlearn

        unlearn = Unlearn(rmodel, None, train, test, save_path=str(Path(tmp) / "run"), overwrite=True)
        for method in ("neggrad", "finetune"):
            try:
                getattr(unlearn, method)(epoch=1, lr=1e-3)
                out[method] = "ran"
            except Exception as e:  # noqa: BLE001
                out[method] = f"{type(e).__name__}: {e}"
                out[f"{method}_traceback_tail"] = traceback.format_exc().strip().splitlines()[-4:]
    pkg = Path(torchunlearn.__file__).parent
    out["unlearn_subpackages_in_wheel"] = sorted(p.name for p in (pkg / "unlearn").iterdir() if p.is_dir() and p.name != "__pycache__")
    out["trainers_dir_exists"] = (pkg / "unlearn" / "trainers").exists()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
