"""TRURec (TRU for recommendation, RECONSTRUCTED): each part against its closed form on a tiny ContentMF, and the
ablation switches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.engine import UnlearningEngine
from lightning_unlearn.engine.step import Progress
from lightning_unlearn.methods import METHODS, StepContext, TRURec
from lightning_unlearn.methods.tru_rec import branch_scales, module_groups, ranking_gate, select_modules
from lightning_unlearn.models import ContentMF
from lightning_unlearn.tasks import RecommendationTask

TASK = RecommendationTask()
FORGET = {"user": torch.tensor([0, 0, 1]), "pos": torch.tensor([1, 2, 3]), "neg": torch.tensor([0, 4, 2])}
RETAIN = {"user": torch.tensor([1, 2, 2, 2]), "pos": torch.tensor([0, 1, 3, 4]), "neg": torch.tensor([2, 0, 0, 1])}


def _model():
    torch.manual_seed(0)
    genres = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    return ContentMF(3, 5, dim=4, genres=genres, title_embeddings=torch.randn(5, 6), init_std=0.5)


def _setup(method, model):
    method.setup(model, TASK, [FORGET], [RETAIN])
    return method


def test_registered_and_recommendation_only():
    assert METHODS.get("tru_rec") is TRURec
    assert TRURec.supported_tasks == ("recommendation",)
    with pytest.raises(ValueError, match="`reverse`"):
        TRURec(reverse="sgd")
    with pytest.raises(TypeError, match="`rank_gate` should be True or False"):
        TRURec(rank_gate=1)


def test_ranking_gate_closed_form():
    gate = ranking_gate(torch.tensor([3.0, 1.0, 1.0]), torch.tensor([1.0, 1.0, 3.0]), temperature=0.5)
    torch.testing.assert_close(gate, torch.sigmoid(torch.tensor([4.0, 0.0, -4.0])))


def test_branch_scales_closed_form():
    scales = branch_scales({"id": 0.6, "genre": 0.1, "text": 0.3})
    assert scales == pytest.approx({"id": 1 / 6, "genre": 1.0, "text": 1 / 3})
    assert branch_scales({"id": 0.6, "genre": 0.1, "text": 0.3}, power=0.5)["id"] == pytest.approx((1 / 6) ** 0.5)
    assert branch_scales({"id": 0.0, "text": 0.0}) == {"id": 1.0, "text": 1.0}


def test_select_modules_fills_the_capacity_in_sensitivity_order():
    sensitivity = {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}
    sizes = {"a": 10, "b": 60, "c": 20, "d": 10}
    assert select_modules(sensitivity, sizes, 0.5) == ["a", "c", "d"]  # b does not fit in 50 of 100
    assert select_modules(sensitivity, {"a": 90, "b": 5, "c": 3, "d": 2}, 0.1) == ["a"]  # the top one always
    assert module_groups(_model()) == {
        "user_embedding": ["user_embedding.weight"],
        "item_embedding": ["item_embedding.weight"],
        "item_bias": ["item_bias.weight"],
        "genre_proj": ["genre_proj.weight"],
        "text_proj": ["text_proj.weight"],
        "gate_logits": ["gate_logits"],
    }


def test_branch_shares_are_the_retained_utility_of_each_branch():
    model = _model()
    method = _setup(TRURec(layer_isolation=False), model)
    with torch.no_grad():
        p = model.user_embedding(RETAIN["user"])
        v = model.item_branches(RETAIN["pos"])
        totals = {"id": (p * v["id"]).sum(-1).abs().sum(), "genre": 0.5 * (p * v["genre"]).sum(-1).abs().sum(), "text": 0.5 * (p * v["text"]).sum(-1).abs().sum()}
    total = sum(totals.values())
    assert method.branch_shares == pytest.approx({b: float(t / total) for b, t in totals.items()})
    assert method.scales == pytest.approx(branch_scales(method.branch_shares))


def test_forget_loss_is_ga_plus_the_gated_ranking_penalty():
    model = _model()
    method = _setup(TRURec(branch_scaling=False, layer_isolation=False, top_k=2, gate_temperature=0.7, rank_weight=0.3), model)
    loss = method.forget_loss(StepContext(model=model, task=TASK, forget=FORGET, retain=RETAIN))
    with torch.no_grad():
        s_pos, s_neg = model(FORGET["user"], FORGET["pos"]), model(FORGET["user"], FORGET["neg"])
        kth = model.score_all(FORGET["user"]).topk(2, dim=1).values[:, 1]
        gate = torch.sigmoid((s_pos - kth) / 0.7)
        expected = -F.softplus(s_neg - s_pos).mean() + 0.3 * (gate * F.softplus(s_pos - s_neg)).mean()
    torch.testing.assert_close(loss.detach(), expected)
    plain = _setup(TRURec(rank_gate=False, branch_scaling=False, layer_isolation=False), _model())
    torch.testing.assert_close(plain.forget_loss(StepContext(model=model, task=TASK, forget=FORGET, retain=RETAIN)).detach(), -F.softplus(s_neg - s_pos).mean())


def test_npo_reverse_is_zero_log_ratio_at_the_start():
    model = _model()
    method = _setup(TRURec(reverse="npo", beta=0.5, rank_gate=False, branch_scaling=False, layer_isolation=False), model)
    loss = method.forget_loss(StepContext(model=model, task=TASK, forget=FORGET, retain=RETAIN, reference=method.reference))
    assert loss.item() == pytest.approx((2 / 0.5) * torch.nn.functional.softplus(torch.tensor(0.0)).item())


def test_branch_scaling_multiplies_each_branchs_forget_gradient():
    def grads(branch_scaling):
        model = _model()
        method = _setup(TRURec(rank_gate=False, branch_scaling=branch_scaling, layer_isolation=False), model)
        method.forget_loss(StepContext(model=model, task=TASK, forget=FORGET, retain=RETAIN)).backward()
        return method, {n: p.grad.clone() for n, p in model.named_parameters()}

    method, scaled = grads(True)
    _, plain = grads(False)
    torch.testing.assert_close(scaled["text_proj.weight"], method.scales["text"] * plain["text_proj.weight"])
    torch.testing.assert_close(scaled["genre_proj.weight"], method.scales["genre"] * plain["genre_proj.weight"])
    torch.testing.assert_close(scaled["item_embedding.weight"], method.scales["id"] * plain["item_embedding.weight"])
    torch.testing.assert_close(scaled["user_embedding.weight"], plain["user_embedding.weight"])  # users: unscaled
    assert min(method.scales.values()) < 1.0 and max(method.scales.values()) == pytest.approx(1.0)


def test_layer_isolation_updates_only_the_most_sensitive_modules():
    model = _model()
    method = _setup(TRURec(branch_scaling=False, capacity=0.3), model)
    params = dict(model.named_parameters())
    reference = _model()  # the same weights: sensitivity ‖∇ Σ BPR(θ₀; D_f)‖ / ‖θ‖ per module
    grads = torch.autograd.grad(TASK.per_sample_loss(TASK.forward(reference, FORGET), FORGET).sum(), list(reference.parameters()))
    for (name, p), g in zip(reference.named_parameters(), grads):
        assert method.sensitivity[name.rpartition(".")[0] or name] == pytest.approx(float(g.norm() / (p.detach().norm() + 1e-3 * p.numel() ** 0.5)), rel=1e-5)
    assert method.isolated[0] == max(method.sensitivity, key=method.sensitivity.get)
    assert sum(params[f"{m}.weight" if m != "gate_logits" else m].numel() for m in method.isolated[1:]) <= 0.3 * sum(p.numel() for p in params.values())
    before = {n: p.detach().clone() for n, p in params.items()}
    engine = UnlearningEngine(method, TASK)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        engine.loss(model, FORGET, RETAIN, Progress()).loss.backward()
        engine.before_optimizer_step(model)
        optimizer.step()
        engine.after_optimizer_step(model)
    for name, param in model.named_parameters():
        moved = not torch.equal(param.detach(), before[name])
        assert moved == ((name.rpartition(".")[0] or name) in method.isolated), name


def test_branch_scaling_needs_a_multimodal_model():
    model = torch.nn.Module()
    model.forward = lambda users, items: users.float()
    with pytest.raises(TypeError, match="branch_scaling needs a multimodal recommender"):
        TRURec(layer_isolation=False, rank_gate=False).setup(model, TASK, [FORGET], [RETAIN])
    with pytest.raises(ValueError, match="pass `num_items`"):
        TRURec(layer_isolation=False, branch_scaling=False).setup(model, TASK, [FORGET], [RETAIN])
