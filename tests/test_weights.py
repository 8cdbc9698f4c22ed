"""Loading and saving weights: ``weights_only`` loading, clear mismatch errors, the original is never overwritten."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from toys import corrupt_weights_files, sha256

from lightning_unlearn import SupervisedModule, UnlearningModule
from lightning_unlearn._weights import copy_with_weights, load_weights, save_weights
from lightning_unlearn.methods import GradientAscent


def net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


class Payload:
    """A pickle that would create ``marker`` when unpickled without ``weights_only``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# ---------------------------------------------------------------------- save
def test_save_then_load_round_trip(tmp_path):
    source = net(0)
    path = save_weights(source, tmp_path / "a" / "b" / "weights.pt")
    assert path == tmp_path / "a" / "b" / "weights.pt" and path.is_file()
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    state = torch.load(path, weights_only=True)
    assert all(t.device.type == "cpu" and not t.requires_grad for t in state.values())
    target = net(1)
    load_weights(target, path)
    assert_same_weights(target, source)


def test_save_refuses_to_overwrite_a_protected_file(tmp_path):
    original = tmp_path / "original.pt"
    save_weights(net(0), original)
    before = sha256(original)
    for spelling in (original, str(original), tmp_path / "sub" / ".." / "original.pt"):
        with pytest.raises(ValueError, match="Refusing to overwrite the original model at .*; choose another output path"):
            save_weights(net(1), spelling, protected=(None, str(original)))
    assert sha256(original) == before
    save_weights(net(1), tmp_path / "unlearned.pt", protected=(None, original))  # any other path is fine


# ---------------------------------------------------------------------- load
def test_load_from_lightning_checkpoints(tmp_path):
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    trainer = pl.Trainer(
        max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    supervised = SupervisedModule(net(0))
    trainer.fit(supervised, DataLoader(TensorDataset(x, y), batch_size=8))
    trainer.save_checkpoint(tmp_path / "supervised.ckpt")
    target = net(1)
    load_weights(target, tmp_path / "supervised.ckpt")  # keys under "model." in "state_dict"
    assert_same_weights(target, supervised.model)

    # A checkpoint of an UnlearningModule (hyper-parameters, callbacks, loops) loads with weights_only too.
    unlearning = UnlearningModule(net(2), GradientAscent(), original=str(tmp_path / "supervised.ckpt"))
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(unlearning)
    trainer.save_checkpoint(tmp_path / "unlearning.ckpt")
    target = net(3)
    load_weights(target, tmp_path / "unlearning.ckpt", argument="oracle")
    assert_same_weights(target, supervised.model)


def test_load_a_state_dict_nested_without_prefix(tmp_path):
    source = net(0)
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, tmp_path / "nested.pt")
    target = net(1)
    load_weights(target, tmp_path / "nested.pt")
    assert_same_weights(target, source)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"`oracle` weights file '.*nope\.pt' does not exist"):
        load_weights(net(), tmp_path / "nope.pt", argument="oracle")


def test_load_refuses_pickled_objects_without_running_them(tmp_path):
    marker = tmp_path / "payload-ran"
    torch.save({"0.weight": Payload(marker)}, tmp_path / "evil.pt")
    model = net(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    match = r"`original` file '.*evil\.pt' holds pickled objects that are not plain tensors.*weights_only=True"
    with pytest.raises(ValueError, match=match):
        load_weights(model, tmp_path / "evil.pt")
    assert not marker.exists()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_load_refuses_what_is_not_a_state_dict(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"`original` file '.*list\.pt' holds a list, not a state dict"):
        load_weights(net(), tmp_path / "list.pt")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: {k: v for k, v in s.items() if not k.startswith("2.")}, r"2 missing keys \(e.g. \['2.weight', '2.bias'\]\)\.$"),
        (lambda s: {**s, "3.weight": torch.zeros(1)}, r"1 unexpected keys \(e.g. \['3.weight'\]\)\.$"),
        (
            lambda s: {**s, "2.weight": torch.zeros(2, 5)},
            r"1 shape mismatches \(e.g. \['2.weight: \(2, 5\) in the file vs \(2, 4\) in the model'\]\)\.$",
        ),
    ],
    ids=["missing", "unexpected", "shape"],
)
def test_load_rejects_a_mismatched_state_dict_and_leaves_the_model_alone(tmp_path, edit, match):
    torch.save(edit(net(0).state_dict()), tmp_path / "other.pt")
    model = net(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"`original` file '.*other\.pt' does not match the model: " + match):
        load_weights(model, tmp_path / "other.pt")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_unlearning_module_names_the_argument_of_a_bad_file(tmp_path):
    torch.save(net(0).state_dict(), tmp_path / "good.pt")
    torch.save({"weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="`original` file"):
        UnlearningModule(net(), GradientAscent(), original=str(tmp_path / "bad.pt"))
    with pytest.raises(ValueError, match="`oracle` file"):
        UnlearningModule(net(), GradientAscent(), original=str(tmp_path / "good.pt"), oracle=str(tmp_path / "bad.pt"))


CORRUPT = ["random", "truncated", "empty", "text"]


@pytest.mark.parametrize("kind", CORRUPT)
@pytest.mark.parametrize(
    ("argument", "load"),
    [
        pytest.param("original", lambda path, good: load_weights(net(), path), id="load_weights"),
        pytest.param("original", lambda path, good: UnlearningModule(net(), GradientAscent(), original=str(path)), id="module-original"),
        pytest.param(
            "oracle",
            lambda path, good: UnlearningModule(net(), GradientAscent(), original=str(good), oracle=str(path)),
            id="module-oracle",
        ),
        # what UnlearningReport, AttackSuiteCallback and the LLM evaluation callback load `original`/`oracle` with
        pytest.param("oracle", lambda path, good: copy_with_weights(net(), path, "oracle"), id="copy_with_weights"),
    ],
)
def test_a_corrupt_weights_file_is_named_for_what_it_is(tmp_path, kind, argument, load):
    # Before: random bytes were "pickled objects that are not plain tensors", a truncated file a RuntimeError/OSError
    # from the zip reader, an empty one a bare EOFError and a text file a KeyError.
    path, problem = corrupt_weights_files(tmp_path)[kind]
    good = tmp_path / "good.pt"
    torch.save(net(0).state_dict(), good)
    with pytest.raises(ValueError, match=rf"`{argument}` file '.*{kind}\.pt' {problem}"):
        load(path, good)


def test_safetensors_files_load_and_a_truncated_one_is_named(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    safetensors_torch.save_file(net(0).state_dict(), str(tmp_path / "w.safetensors"))
    model = net(1)
    load_weights(model, tmp_path / "w.safetensors")
    assert_same_weights(model, net(0))
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-20])
    with pytest.raises(ValueError, match=r"`original` file '.*cut\.safetensors' is a safetensors file but is truncated or corrupted"):
        load_weights(net(), tmp_path / "cut.safetensors")


def test_a_legacy_format_file_cut_short_is_named(tmp_path):
    torch.save(net(0).state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    model = net(1)
    load_weights(model, tmp_path / "legacy.pt")
    assert_same_weights(model, net(0))
    data = (tmp_path / "legacy.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"`original` file '.*cut\.pt' looks like a legacy PyTorch file but is truncated or corrupted"):
        load_weights(net(), tmp_path / "cut.pt")
