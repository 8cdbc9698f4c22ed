"""RAZOR: φ-scored layer / attention-head selection, masked editing and iterative expansion."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from toys import fit_plain

from lightning_unlearn.methods import METHODS, RAZOR
from lightning_unlearn.methods.razor import editing_units
from lightning_unlearn.models import ViTClassifier
from lightning_unlearn.tasks import ClassificationTask

from ._toy import accuracy, batch, context, perturbed, pretrained, snapshot

ATTN = "vit.vit.layers.0.attention"


def _two_layers(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict(fc1=nn.Linear(3, 5), act=nn.Tanh(), fc2=nn.Linear(5, 4)))


def _deep(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)
    )


def _tiny_vit() -> ViTClassifier:
    torch.manual_seed(0)
    return ViTClassifier(hidden_size=16, num_heads=2, num_layers=1, image_size=8, patch_size=4, in_channels=1, num_classes=3)


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def _setup(method: RAZOR, model: nn.Module, forget: list, retain: list | None) -> None:
    method.setup(model, ClassificationTask(), forget, retain)


def _phi(model: nn.Module, modules: dict[str, list[str]], forget: list, retain: list | None, alpha: float, eps: float = 1e-8):
    """φ computed by hand from the mean losses over the concatenated batches."""

    def grads(batches):
        x = torch.cat([b[0] for b in batches])
        y = torch.cat([b[1] for b in batches])
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        out = {n: p.grad.clone() for n, p in model.named_parameters()}
        model.zero_grad()
        return out

    g_f = grads(forget)
    g_r = grads(retain) if retain is not None else None
    params = dict(model.named_parameters())
    scores = {}
    for unit, names in modules.items():
        f = torch.cat([g_f[n].flatten() for n in names]).double()
        theta = torch.cat([params[n].detach().flatten() for n in names]).double()
        cos = 0.0
        if g_r is not None:
            r = torch.cat([g_r[n].flatten() for n in names]).double()
            cos = float(F.cosine_similarity(f, r, dim=0))
        scores[unit] = float(f.norm()) / (float(theta.norm()) + eps) * (1 - cos) ** alpha
    return scores


def _train(method: RAZOR, model: nn.Module, forget, retain, steps: int = 3, lr: float = 1e-2) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        optimizer.zero_grad()
        method.loss(context(method, model, forget, retain, global_step=step)).loss.backward()
        method.before_optimizer_step(model)
        optimizer.step()


def test_registered():
    assert METHODS.get("razor") is RAZOR
    assert RAZOR.uses_forget and RAZOR.needs_reference
    assert RAZOR(mismatch_weight=0).needs_reference is False


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
def test_scores_follow_the_formula(alpha):
    model = _two_layers()
    g = torch.Generator().manual_seed(3)
    forget = [
        (torch.randn(5, 3, generator=g), torch.tensor([0, 1, 2, 3, 0])),
        (torch.randn(3, 3, generator=g), torch.tensor([2, 2, 1])),
    ]
    retain = [(torch.randn(6, 3, generator=g), torch.tensor([0, 1, 2, 3, 0, 1]))]  # forget: two batches of different sizes
    method = RAZOR(alpha=alpha, top_k=1)
    _setup(method, model, forget, retain)
    expected = _phi(model, {"fc1": ["fc1.weight", "fc1.bias"], "fc2": ["fc2.weight", "fc2.bias"]}, forget, retain, alpha)
    assert list(method.scores) == ["fc1", "fc2"] == list(method.units)
    for unit, value in expected.items():
        assert method.scores[unit] == pytest.approx(value, rel=1e-5), unit
    assert method.selected == [max(expected, key=expected.get)]


def test_scores_without_retain_data_ignore_the_conflict_factor():
    model = _two_layers()
    forget = [(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3]))]
    method = RAZOR(alpha=1.0)
    method.setup(model, ClassificationTask(), forget, None)
    expected = _phi(model, {"fc1": ["fc1.weight", "fc1.bias"], "fc2": ["fc2.weight", "fc2.bias"]}, forget, None, 1.0)
    assert method.scores == pytest.approx(expected, rel=1e-5)


def test_selection_modes():
    forget, retain = [batch(n=8, seed=1, label=3)], [batch(n=16, seed=2)]
    scores = None
    for kwargs, count in [({"top_k": 2}, 2), ({"top_fraction": 0.5}, 2), ({"top_fraction": 0.1}, 1), ({"top_k": 9}, 4)]:
        method = RAZOR(**kwargs)
        _setup(method, _deep(), forget, retain)
        scores = method.scores
        ranked = sorted(scores, key=scores.get, reverse=True)
        assert method.selected == ranked[:count], kwargs
    middle = sorted(scores.values())[1]
    method = RAZOR(threshold=middle)
    _setup(method, _deep(), forget, retain)
    assert sorted(method.selected) == sorted(u for u, s in scores.items() if s > middle)
    method = RAZOR(threshold=1e9)  # nobody passes τ: the single best unit
    _setup(method, _deep(), forget, retain)
    assert method.selected == [max(scores, key=scores.get)]


def test_vit_units_are_heads_and_layers_and_partition_the_parameters():
    model = _tiny_vit()
    units = editing_units(model)
    assert f"{ATTN}.head0" in units and f"{ATTN}.head1" in units and f"{ATTN}.o_proj.bias" in units
    for layer in [
        "vit.vit.embeddings",
        "vit.vit.embeddings.patch_embeddings.projection",
        "vit.vit.layers.0.mlp.fc1",
        "vit.vit.layers.0.mlp.fc2",
        "vit.vit.layers.0.layernorm_before",
        "vit.vit.layernorm",
        "vit.classifier",
    ]:
        assert layer in units, layer
    assert not any(name.endswith(("q_proj", "k_proj", "v_proj")) for name in units)
    head1 = {(s.param, s.dim, s.start, s.stop) for s in units[f"{ATTN}.head1"]}
    assert (f"{ATTN}.q_proj.weight", 0, 8, 16) in head1 and (f"{ATTN}.v_proj.bias", 0, 8, 16) in head1
    assert (f"{ATTN}.o_proj.weight", 1, 8, 16) in head1 and len(head1) == 7
    # every parameter entry is in exactly one unit
    counts = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for parts in units.values():
        for part in parts:
            part.take(counts[part.param]).add_(1)
    assert all(bool((c == 1).all()) for c in counts.values())
    # four heads read from the argument instead of the config
    assert sum(name.startswith(f"{ATTN}.head") for name in editing_units(model, num_heads=4)) == 4


def test_only_the_selected_head_changes():
    model = _tiny_vit()
    forget, retain = _images(6, 1), _images(6, 2)
    method = RAZOR(top_k=1, max_rounds=0)
    _setup(method, model, [forget], [retain])
    method.select([f"{ATTN}.head1"])
    before = snapshot(model)
    _train(method, model, forget, retain)
    after = snapshot(model)
    h = slice(8, 16)
    for proj in ("q_proj", "k_proj", "v_proj"):
        for kind in ("weight", "bias"):
            key = f"{ATTN}.{proj}.{kind}"
            assert torch.equal(after[key][:8], before[key][:8]), f"head 0 of {key} changed"
            assert not torch.equal(after[key][h], before[key][h]), f"head 1 of {key} did not change"
    key = f"{ATTN}.o_proj.weight"
    assert torch.equal(after[key][:, :8], before[key][:, :8])
    assert not torch.equal(after[key][:, h], before[key][:, h])
    others = [k for k in before if not k.startswith(f"{ATTN}.") or k.endswith("o_proj.bias")]
    assert len(others) == 17
    for key in others:
        assert torch.equal(after[key], before[key]), f"{key} is outside the edit set but changed"


def test_vit_selection_by_score_edits_only_the_selected_units():
    model = _tiny_vit()
    forget, retain = _images(6, 3), _images(6, 4)
    method = RAZOR(top_fraction=0.3, max_rounds=0)
    _setup(method, model, [forget], [retain])
    assert len(method.selected) == round(0.3 * len(method.units))
    before = snapshot(model)
    _train(method, model, forget, retain)
    after = snapshot(model)
    for name, parts in method.units.items():
        moved = any(not torch.equal(p.take(after[p.param]), p.take(before[p.param])) for p in parts)
        assert moved == (name in method.selected), name


def test_only_the_selected_mlp_layer_changes():
    model = pretrained()
    forget, retain = batch(label=3), batch(n=16, seed=2)
    method = RAZOR(top_k=1)
    _setup(method, model, [forget], [retain])
    assert list(method.units) == ["body.0", "head"]
    (chosen,) = method.selected
    before = snapshot(model)
    _train(method, model, forget, retain)
    after = snapshot(model)
    for key in before:
        assert torch.equal(after[key], before[key]) != key.startswith(chosen + "."), key


def test_loss_is_ascent_plus_retain_plus_mismatch():
    model = pretrained()
    forget, retain = batch(label=3), batch(n=16, seed=2)
    method = RAZOR(rho=0.4, mismatch_weight=0.3, forget_weight=2.0, retain_weight=0.5)
    _setup(method, model, [forget], [retain])
    perturbed(model, scale=0.5)  # the reference keeps the original weights, so the KL is not zero
    out = method.loss(context(method, model, forget, retain))
    ce_f = F.cross_entropy(model(forget[0]), forget[1])
    ce_r = F.cross_entropy(model(retain[0]), retain[1])
    log_q = F.log_softmax(method.reference(retain[0]), -1)
    kl = (log_q.exp() * (log_q - F.log_softmax(model(retain[0]), -1))).sum(-1).mean()
    assert float(kl.detach()) > 1e-3
    torch.testing.assert_close(out.loss, 2.0 * (-0.4 * ce_f) + 0.5 * ce_r + 0.3 * kl)
    assert set(out.parts) == {"forget_loss", "retain_loss", "regularizer", "loss"}


def test_iterative_expansion_adds_the_next_best_unit_until_max_rounds():
    deep = _deep()
    forget, retain = batch(label=3), batch(n=16, seed=2)
    x, y = torch.cat([forget[0], retain[0]]), torch.cat([forget[1], retain[1]])
    fit_plain(deep, x, y, steps=60)
    assert accuracy(deep, *forget) == 1.0  # far above the target: forgetting is insufficient
    method = RAZOR(top_k=1, max_rounds=2, target_forget_acc=0.5, mismatch_weight=0)
    _setup(method, deep, [forget], [retain])
    first = list(method.selected)
    method.loss(context(method, deep, forget, retain, epoch=0))  # the first epoch never expands
    assert method.selected == first and method.rounds == 0
    for epoch in (1, 2):
        method.loss(context(method, deep, forget, retain, epoch=epoch))
        names = [f"{i}" for i in (0, 2, 4, 6)]
        expected = _phi(deep, {n: [f"{n}.weight", f"{n}.bias"] for n in names}, [forget], [retain], method.alpha)
        assert method.scores == pytest.approx(expected, rel=1e-5)
        best = max((u for u in expected if u not in method.selected[:-1]), key=expected.get)
        assert method.selected[-1] == best and len(method.selected) == 1 + epoch and method.rounds == epoch
        method.loss(context(method, deep, forget, retain, epoch=epoch))  # once per epoch
        assert len(method.selected) == 1 + epoch
        assert set(method.masks) == {f"{u}.{k}" for u in method.selected for k in ("weight", "bias")}
    method.loss(context(method, deep, forget, retain, epoch=3))
    assert len(method.selected) == 3 and method.rounds == 2  # max_rounds reached

    # forgetting already sufficient: no expansion
    method = RAZOR(top_k=1, max_rounds=2, target_forget_acc=1.0, mismatch_weight=0)
    _setup(method, deep, [forget], [retain])
    method.loss(context(method, deep, forget, retain, epoch=1))
    assert len(method.selected) == 1 and method.rounds == 0


def test_state_keeps_the_edit_set():
    forget, retain = batch(label=3), batch(n=16, seed=2)
    method = RAZOR(top_k=1, max_rounds=3, target_forget_acc=0.0, mismatch_weight=0)
    model = pretrained()
    _setup(method, model, [forget], [retain])
    method.loss(context(method, model, forget, retain, epoch=1))
    assert len(method.selected) == 2
    state = method.state_dict()
    resumed = RAZOR(top_k=1, max_rounds=3, target_forget_acc=0.0, mismatch_weight=0)
    _setup(resumed, pretrained(), [forget], [retain])
    resumed.load_state_dict(state)
    assert resumed.selected == method.selected and resumed.rounds == 1
    assert resumed.masks.keys() == method.masks.keys()
    assert all(torch.equal(resumed.masks[k], method.masks[k]) for k in method.masks)
    resumed.loss(context(resumed, model, forget, retain, epoch=1))  # epoch 1 was already checked
    assert resumed.rounds == 1
    # a checkpoint written before `add_state` (no mask, "rounds"/"checked_epoch") rebuilds the mask from `selected`
    legacy = RAZOR(top_k=1, max_rounds=3, target_forget_acc=0.0, mismatch_weight=0)
    _setup(legacy, pretrained(), [forget], [retain])
    legacy.load_state_dict(
        {"extra/selected": method.selected, "extra/rounds": 1, "extra/checked_epoch": 1, "extra/scores": method.scores}
    )
    assert legacy.selected == method.selected and legacy.rounds == 1 and legacy.scores == method.scores
    assert all(torch.equal(legacy.masks[k], method.masks[k]) for k in method.masks) and legacy.masks.keys() == method.masks.keys()


def test_head_count_errors():
    class Attention(nn.Module):
        def __init__(self, q_out: int = 8) -> None:
            super().__init__()
            self.q_proj, self.k_proj, self.v_proj = nn.Linear(8, q_out), nn.Linear(8, 8), nn.Linear(8, 8)
            self.o_proj = nn.Linear(8, 8)

    with pytest.raises(ValueError, match="Cannot tell how many heads the attention module 'attn'.*pass `num_heads`"):
        editing_units(nn.Sequential(OrderedDict(attn=Attention())))
    with pytest.raises(ValueError, match=r"`num_heads` should divide the attention width 8 of 'attn', got 3"):
        editing_units(nn.Sequential(OrderedDict(attn=Attention())), num_heads=3)
    with pytest.raises(ValueError, match="grouped-query attention is not supported"):
        editing_units(nn.Sequential(OrderedDict(attn=Attention(q_out=16))), num_heads=2)
    assert len(editing_units(nn.Sequential(OrderedDict(attn=Attention())), num_heads=2)) == 3


def test_select_errors():
    method = RAZOR()
    with pytest.raises(RuntimeError, match="call `setup`"):
        method.select(["head"])
    _setup(method, pretrained(), [batch(label=3)], None)
    with pytest.raises(ValueError, match=r"Unknown RAZOR units \['tail'\]; the model's units are \['body.0', 'head'\]"):
        method.select(["tail"])
    with pytest.raises(ValueError, match="at least one unit"):
        method.select([])
    with pytest.raises(ValueError, match="RAZOR scores layers and heads with the forget data"):
        RAZOR().setup(pretrained(), ClassificationTask(), None)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"top_fraction": 0.0}, ValueError, r"`top_fraction` should lie in \(0, 1\], got 0.0"),
        ({"top_k": 0}, ValueError, "`top_k` should be an int >= 1 or None, got 0"),
        ({"threshold": -1.0}, ValueError, "`threshold` should be >= 0, got -1.0"),
        ({"top_k": 2, "threshold": 0.1}, ValueError, "Give either `top_k` or `threshold`, not both"),
        ({"alpha": 1.5}, ValueError, r"`alpha` should lie in \[0, 1\], got 1.5"),
        ({"alpha": "x"}, TypeError, "`alpha` should be a number, got str 'x'"),
        ({"rho": 0}, ValueError, r"`rho` should lie in \(0, 1\], got 0"),
        ({"mismatch_weight": -0.1}, ValueError, "`mismatch_weight` should be >= 0, got -0.1"),
        ({"target_forget_acc": 2}, ValueError, r"`target_forget_acc` should lie in \[0, 1\], got 2"),
        ({"max_rounds": -1}, ValueError, "`max_rounds` should be an int >= 0, got -1"),
        ({"num_heads": 0}, ValueError, "`num_heads` should be an int >= 1 or None, got 0"),
        ({"eps": 0}, ValueError, "`eps` should be > 0, got 0"),
        ({"max_batches": 0}, ValueError, "`max_batches` should be an int >= 1 or None, got 0"),
        ({"retain_loss": "KL"}, ValueError, r"`retain_loss` should be one of \['kl', 'nll', 'none'\], got 'KL'"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        RAZOR(**kwargs)


def test_hparams():
    hp = RAZOR(top_k=3, alpha=0.25).hparams()
    assert hp["method"] == "razor" and hp["top_k"] == 3 and hp["alpha"] == 0.25 and "rounds" not in hp
    assert math.isclose(hp["top_fraction"], 0.1)
