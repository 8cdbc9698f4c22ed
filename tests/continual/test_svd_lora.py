"""ContinualUnlearner: orthogonal SVD-LoRA vs naive LoRA fusion vs full fine-tuning, on tiny models."""

from __future__ import annotations

import functools
import sys

import pytest
import torch
import toys
from torch import nn
from torch.utils.data import TensorDataset

from lightning_unlearn.continual import (
    ContinualUnlearner,
    as_matrix,
    energy_rank,
    lora_delta,
    project_out,
    protected_basis,
)

peft = pytest.importorskip("peft")

NUM_CLASSES = 4


class TinyConvNet(nn.Module):
    """A Conv2d and two Linear layers on 1×4×4 inputs (4 classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 16, 12)
        self.head = nn.Linear(12, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc(torch.relu(self.conv(x)).flatten(1))))


def conv_net(seed: int = 0) -> TinyConvNet:
    torch.manual_seed(seed)
    return TinyConvNet()


def images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(NUM_CLASSES).repeat(16)
    x = torch.randn(len(y), 1, 4, 4, generator=g) + y[:, None, None, None].float()
    return x, y


def class_request(x: torch.Tensor, y: torch.Tensor, forgotten: list[int]) -> tuple[TensorDataset, TensorDataset]:
    """Forget the last class of ``forgotten``; retain every class not in ``forgotten``."""
    f = y == forgotten[-1]
    r = ~torch.isin(y, torch.tensor(forgotten))
    return TensorDataset(x[f], y[f]), TensorDataset(x[r], y[r])


def run_stream(strategy: str, n_requests: int = 3, **kwargs) -> ContinualUnlearner:
    x, y = images()
    options = dict(target_modules=["conv", "fc"], rank=2, energy=0.99, lr=1e-2, steps_per_request=4, batch_size=8)
    options.update(kwargs)
    unlearner = ContinualUnlearner(conv_net(), strategy, **options)
    for t in range(n_requests):
        unlearner.unlearn(*class_request(x, y, list(range(t + 1))))
    return unlearner


def relative_leak(delta: torch.Tensor, basis) -> float:
    """max(‖U_kᵀ ΔW‖, ‖ΔW V_k‖) / ‖ΔW‖ on the matrix view of ``delta``."""
    d = as_matrix(delta).double()
    leak = max(float((basis.U.double().T @ d).norm()), float((d @ basis.V.double()).norm()))
    return leak / float(d.norm())


# ------------------------------------------------------------------ the subspace helpers


def test_energy_rank_is_the_smallest_k_reaching_the_energy():
    s = torch.tensor([3.0, 2.0, 1.0])  # energies 9, 4, 1 of 14
    assert energy_rank(s, 9 / 14) == 1
    assert energy_rank(s, 0.65) == 2
    assert energy_rank(s, 13 / 14) == 2
    assert energy_rank(s, 0.93) == 3
    assert energy_rank(s, 1.0) == 3
    assert energy_rank(torch.zeros(4), 0.9) == 0
    with pytest.raises(ValueError, match=r"`energy` should lie in \(0, 1\], got 1.5"):
        energy_rank(s, 1.5)


def test_protected_basis_of_a_low_rank_update_and_of_a_conv_update():
    g = torch.Generator().manual_seed(0)
    low_rank = torch.randn(7, 2, generator=g) @ torch.randn(2, 5, generator=g)
    full = protected_basis(low_rank, 1.0)
    assert full.k == 2 and full.energy_captured == pytest.approx(1.0)
    assert torch.allclose(full.U.T @ full.U, torch.eye(2), atol=1e-5)
    # the projector onto the kept subspace reproduces the matrix
    assert torch.allclose(full.U @ full.U.T @ low_rank @ full.V @ full.V.T, low_rank, atol=1e-4)
    conv_update = torch.randn(6, 3, 3, 3, generator=g)
    sub = protected_basis(conv_update, 0.5)
    assert sub.U.shape[0] == 6 and sub.V.shape[0] == 27 and sub.energy_captured >= 0.5
    # it is the smallest such k
    s = torch.linalg.svdvals(as_matrix(conv_update).double())
    assert float(s[: sub.k - 1].pow(2).sum() / s.pow(2).sum()) < 0.5


def test_project_out_left_and_right():
    g = torch.Generator().manual_seed(1)
    basis = torch.linalg.qr(torch.randn(5, 2, generator=g)).Q
    b = torch.randn(5, 3, generator=g)
    assert (basis.T @ project_out(b.clone(), basis, "left")).abs().max() < 1e-5
    a = torch.randn(3, 5, generator=g)
    assert (project_out(a.clone(), basis, "right") @ basis).abs().max() < 1e-5


def test_lora_delta_matches_peft_for_linear_and_conv():
    model = conv_net()
    config = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["conv", "fc"], lora_dropout=0.0)
    peft.inject_adapter_in_model(config, model, adapter_name="x")
    for name in ("conv", "fc"):
        layer = model.get_submodule(name)
        nn.init.normal_(layer.lora_B["x"].weight)  # peft starts B at zero
        a, b, scale = layer.lora_A["x"].weight, layer.lora_B["x"].weight, layer.scaling["x"]
        ours = lora_delta(a, b, scale, layer.get_base_layer().weight.shape)
        assert torch.allclose(ours, layer.get_delta_weight("x"), atol=1e-5)


# ------------------------------------------------------------------ the strategies


def test_orthogonal_updates_avoid_the_earlier_subspace_for_linear_and_conv():
    unlearner = run_stream("orthogonal", n_requests=3)
    for layer in ("conv", "fc"):
        first = protected_basis(unlearner.delta(0, layer), unlearner.energy)
        assert first.k > 0
        assert relative_leak(unlearner.delta(1, layer), first) < 1e-4
        both = protected_basis(unlearner.delta(0, layer) + unlearner.delta(1, layer), unlearner.energy)
        assert relative_leak(unlearner.delta(2, layer), both) < 1e-4
        assert unlearner.delta(2, layer).norm() > 1e-4  # the later requests did learn something
        # the bases used are the ones the unlearner stores
        assert unlearner.history[2]["protected_rank_used"][layer] == both.k


def test_naive_updates_do_not_avoid_the_earlier_subspace():
    unlearner = run_stream("naive", n_requests=2)
    leaks = [relative_leak(unlearner.delta(1, layer), protected_basis(unlearner.delta(0, layer), 0.99)) for layer in ("conv", "fc")]
    assert max(leaks) > 1e-2, leaks
    assert unlearner.subspaces == {}


@pytest.mark.parametrize("strategy", ["orthogonal", "naive"])
def test_fused_model_equals_w0_plus_the_sum_of_the_updates(strategy):
    unlearner = run_stream(strategy, n_requests=3)
    manual = conv_net()
    state = manual.state_dict()
    with torch.no_grad():
        for layer in ("conv", "fc"):
            total = sum(unlearner.delta(t, layer) for t in range(3))
            state[f"{layer}.weight"] = state[f"{layer}.weight"] + total
            assert torch.allclose(total.double(), unlearner.accumulated[layer], atol=1e-5)
    manual.load_state_dict(state)
    x, _ = images(seed=5)
    fused = unlearner.merged_model()
    assert [type(m) for m in fused.modules()] == [type(m) for m in conv_net().modules()]  # no adapter left
    with torch.no_grad():
        assert torch.allclose(fused(x), manual(x), atol=1e-5)
    # the layers without adapters are untouched
    assert torch.equal(fused.head.weight, conv_net().head.weight)


def test_full_updates_every_weight():
    unlearner = run_stream("full", n_requests=1, target_modules=None)
    before = conv_net().state_dict()
    for name, value in unlearner.model.state_dict().items():
        assert not torch.equal(value, before[name]), name
    assert unlearner.history[0]["trainable_parameters"] == sum(p.numel() for p in conv_net().parameters())
    # with target_modules, full fine-tuning trains exactly those modules' parameters
    restricted = run_stream("full", n_requests=1, target_modules=["fc"])
    changed = {k for k, v in restricted.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"fc.weight", "fc.bias"}


@pytest.mark.parametrize("strategy", ["orthogonal", "naive", "full"])
def test_the_model_passed_in_is_not_modified(strategy):
    model = conv_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = images()
    unlearner = ContinualUnlearner(model, strategy, target_modules=["conv", "fc"] if strategy != "full" else None, steps_per_request=3, batch_size=8, lr=1e-2)
    unlearner.unlearn(*class_request(x, y, [0]))
    assert [type(m) for m in model.modules()] == [type(m) for m in conv_net().modules()]
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert unlearner.model is not model


def test_copy_model_false_unlearns_in_place():
    model = conv_net()
    x, y = images()
    unlearner = ContinualUnlearner(model, "naive", target_modules=["fc"], steps_per_request=3, batch_size=8, lr=1e-2, copy_model=False)
    unlearner.unlearn(*class_request(x, y, [0]))
    assert unlearner.model is model and isinstance(model.fc, nn.Linear)
    assert not torch.equal(model.fc.weight, conv_net().fc.weight)
    assert all(p.requires_grad for p in model.parameters())  # flags restored after the adapter is fused


def test_same_seed_same_result_and_rl_with_npo_methods_run():
    a = run_stream("orthogonal", n_requests=2, method="rl")
    b = run_stream("orthogonal", n_requests=2, method="rl")
    for (name, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), name
    c = run_stream("orthogonal", n_requests=2, method="npo", method_kwargs={"beta": 1.0})
    assert len(c.history) == 2 and c.history[1]["protected_rank_used"]


@functools.cache
def _blobs_state() -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    x, y = toys.blobs(40, seed=0).tensors
    model = toys.fit_plain(toys.mlp(0, named=True), x, y, steps=150)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, x, y


@pytest.mark.parametrize("strategy", ["orthogonal", "naive", "full"])
def test_each_strategy_forgets_the_requested_classes(strategy):
    state, x, y = _blobs_state()
    model = toys.mlp(0, named=True)
    model.load_state_dict(state)
    unlearner = ContinualUnlearner(
        model, strategy, target_modules=["body.0", "head"] if strategy != "full" else None, rank=4, energy=0.95,
        method="graddiff", lr=1e-2, steps_per_request=30, batch_size=40,
    )
    for t in range(2):
        unlearner.unlearn(*class_request(x, y, list(range(t + 1))))
    with torch.no_grad():
        pred = unlearner.model(x).argmax(-1)
    for c in (0, 1):
        assert (pred[y == c] == c).float().mean() < 0.2, (strategy, c)
    kept = y >= 2
    assert (pred[kept] == y[kept]).float().mean() > 0.9


def test_save_and_load_round_trip(tmp_path):
    unlearner = run_stream("orthogonal", n_requests=2)
    path = tmp_path / "continual.pt"
    unlearner.save(path)
    restored = ContinualUnlearner.load(path, conv_net())
    x, y = images(seed=3)
    with torch.no_grad():
        assert torch.equal(restored.model(x), unlearner.model(x))
    assert {k: s.k for k, s in restored.subspaces.items()} == {k: s.k for k, s in unlearner.subspaces.items()}
    assert restored.history == unlearner.history and restored.config() == unlearner.config()
    # the stream continues with the same protected bases as an uninterrupted run
    restored.unlearn(*class_request(*images(), [0, 1, 2]))
    unlearner.unlearn(*class_request(*images(), [0, 1, 2]))
    for layer in ("conv", "fc"):
        assert torch.allclose(restored.delta(2, layer), unlearner.delta(2, layer), atol=1e-6)
    with pytest.raises(ValueError, match="strategy='orthogonal' but this unlearner has strategy='naive'"):
        ContinualUnlearner(conv_net(), "naive", target_modules=["conv", "fc"]).load_state_dict(torch.load(path, weights_only=True))


def test_full_strategy_save_load_and_a_retain_free_method(tmp_path):
    x, y = images()
    unlearner = ContinualUnlearner(conv_net(), "full", method="ga", steps_per_request=3, batch_size=8, lr=1e-3)
    record = unlearner.unlearn(TensorDataset(x[y == 0], y[y == 0]))  # no retain set: GA needs none
    assert record["retain_size"] == 0 and set(record["final_loss"]) == {"forget_loss", "loss"}
    unlearner.save(tmp_path / "full.pt")
    restored = ContinualUnlearner.load(tmp_path / "full.pt", conv_net())
    assert restored.strategy == "full" and restored.target_modules == [] and restored.num_requests == 1
    with torch.no_grad():
        assert torch.equal(restored.model(x), unlearner.model(x))


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "text"])
def test_load_names_what_is_wrong_with_a_corrupt_file(tmp_path, kind):
    path, problem = toys.corrupt_weights_files(tmp_path)[kind]
    with pytest.raises(ValueError, match=rf"`path` file '.*{kind}\.pt' {problem}"):
        ContinualUnlearner.load(path, conv_net())


def test_load_refuses_a_file_that_is_not_a_saved_unlearner(tmp_path):
    torch.save(conv_net().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match=r"`path` file '.*weights\.pt' does not hold a saved ContinualUnlearner \(a dict with a 'config' entry"):
        ContinualUnlearner.load(tmp_path / "weights.pt", conv_net())




@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"strategy": "ortho"}, ValueError, r"`strategy` should be one of \['full', 'naive', 'orthogonal'\], got 'ortho'"),
        ({"energy": 1.5}, ValueError, r"`energy` should lie in \(0, 1\], got 1.5"),
        ({"energy": 0}, ValueError, r"`energy` should lie in \(0, 1\], got 0"),
        ({"rank": 0}, ValueError, r"`rank` should be an int >= 1, got 0"),
        ({"rank": 2.5}, ValueError, r"`rank` should be an int >= 1, got 2.5"),
        ({"lr": -1.0}, ValueError, r"`lr` should be > 0, got -1.0"),
        ({"steps_per_request": 0}, ValueError, r"`steps_per_request` should be an int >= 1, got 0"),
        ({"optimizer": "lbfgs"}, ValueError, r"`optimizer` should be one of \['adam', 'adamw', 'sgd'\], got 'lbfgs'"),
        ({"method": "forget_everything"}, ValueError, r"Unknown method 'forget_everything'; registered methods are \["),
        ({"target_modules": ["nope"]}, ValueError, r"`target_modules` should name nn.Linear / nn.Conv2d modules of the model \['conv', 'fc', 'head'\], got 'nope' \(not a module"),
        ({"target_modules": [""]}, ValueError, r"got '' \(a TinyConvNet\)"),
        ({"target_modules": "fc"}, TypeError, r"`target_modules` should be a list of module names, got 'fc'"),
        ({"target_modules": []}, ValueError, r"`target_modules` should name at least one module"),
        ({"method_kwargs": [1]}, TypeError, r"`method_kwargs` should be a dict or None, got list"),
    ],
)
def test_bad_arguments_name_the_argument_the_allowed_values_and_the_value(kwargs, error, match):
    kwargs = {"strategy": "orthogonal", **kwargs}
    with pytest.raises(error, match=match):
        ContinualUnlearner(conv_net(), **kwargs)


def test_unlearn_errors():
    unlearner = ContinualUnlearner(conv_net(), "naive", target_modules=["fc"])
    with pytest.raises(ValueError, match="non-empty dataset"):
        unlearner.unlearn(TensorDataset(torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"`steps` should be an int >= 1, got 0"):
        unlearner.unlearn(TensorDataset(*images()), steps=0)
    with pytest.raises(ValueError, match=r"`layer` should be one of \['fc'\], got 'conv'"):
        unlearner.adapters.append({})
        unlearner.delta(0, "conv")
    with pytest.raises(ValueError, match="`delta` exists for the LoRA strategies"):
        ContinualUnlearner(conv_net(), "full").delta(0, "fc")


def test_a_failed_request_leaves_the_fused_model_as_it_was():
    unlearner = ContinualUnlearner(conv_net(), "orthogonal", target_modules=["conv", "fc"], steps_per_request=2)
    bad = TensorDataset(torch.randn(8, 1, 4, 4), torch.full((8,), 7))  # label 7 of a 4-class model
    with pytest.raises(ValueError, match="Targets should lie in"):
        unlearner.unlearn(bad)
    assert [type(m) for m in unlearner.model.modules()] == [type(m) for m in conv_net().modules()]
    assert unlearner.history == [] and unlearner.adapters == []
    for name, value in unlearner.model.state_dict().items():
        assert torch.equal(value, conv_net().state_dict()[name]), name


def test_missing_peft_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ImportError, match=r"pip install 'lightning-unlearn\[vision\]'"):
        ContinualUnlearner(conv_net(), "orthogonal")
    ContinualUnlearner(conv_net(), "full")  # full fine-tuning needs no peft
