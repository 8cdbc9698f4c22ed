"""``lightning-unlearn-attack``'s loading of the unlearned weights (``--weights`` / ``--ckpt_path``)."""

from __future__ import annotations

import pytest
import torch
from toys import corrupt_weights_files, mlp

from lightning_unlearn import UnlearningModule
from lightning_unlearn.attacks.cli import load_unlearned
from lightning_unlearn.methods import GradientAscent


def _module() -> UnlearningModule:
    return UnlearningModule(mlp(1), GradientAscent())


def test_weights_and_checkpoints_load(tmp_path):
    source = UnlearningModule(mlp(0), GradientAscent())
    torch.save(source.model.state_dict(), tmp_path / "weights.pt")
    torch.save({"state_dict": source.state_dict()}, tmp_path / "last.ckpt")
    for ckpt_path, weights in ((None, tmp_path / "weights.pt"), (tmp_path / "last.ckpt", None)):
        module = _module()
        load_unlearned(module, ckpt_path and str(ckpt_path), weights and str(weights))
        for key, value in source.model.state_dict().items():
            assert torch.equal(module.model.state_dict()[key], value)


@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "text"])
@pytest.mark.parametrize("argument", ["--weights", "--ckpt_path"])
def test_a_corrupt_file_is_named_for_what_it_is(tmp_path, kind, argument):
    # `--ckpt_path` used a bare torch.load: an empty file was an EOFError, a text file a KeyError.
    path, problem = corrupt_weights_files(tmp_path)[kind]
    module = _module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(ValueError, match=rf"`{argument}` file '.*{kind}\.pt' {problem}"):
        load_unlearned(module, str(path) if argument == "--ckpt_path" else None, str(path) if argument == "--weights" else None)
    assert all(torch.equal(module.state_dict()[k], v) for k, v in before.items())
