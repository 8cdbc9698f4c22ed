"""Relearning attack: a masked output layer recovers under a few fine-tuning steps, an oracle does not."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from llm_toys import QA, qa_batch, toy_model, toy_tokenizer
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.data import DataLoader, IterableDataset, RandomSampler, TensorDataset
from toys import DIM, accuracy, blobs, mlp

from lightning_unlearn.attacks.recovery import recovery
from lightning_unlearn.attacks.relearning import RelearningAttack, split_forget
from lightning_unlearn.tasks import CausalLMTask, ClassificationTask
from lightning_unlearn.tasks.causal_lm import QACollator

from ._facts import facts_problem


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: nn.Module, b: nn.Module) -> bool:
    other = b.state_dict()
    return all(torch.equal(v, other[k]) for k, v in a.state_dict().items())


def _data(n_per_class: int = 5, seed: int = 0) -> TensorDataset:
    return blobs(n_per_class, seed=seed)


# ---------------------------------------------------------------------------------------------- the key test


@pytest.fixture(scope="module")
def unlearning_problem():
    return facts_problem()


def test_masked_output_layer_recovers_under_relearning_and_an_oracle_does_not(unlearning_problem):
    """The check of issue 6: a model that only *masks* the forget set comes back, one that never learned it does not.

    256 random facts (entity -> one of 4 answers) in 4 topics; forget set = the 64 facts of topic 0.
    - original: an MLP (hidden 128, 5 outputs) that memorised all facts (100%);
    - masked: the original with only its output layer changed, a 5th "refuse" output that wins on topic 0
      (forget accuracy 0%, retain 100%, hidden layer untouched);
    - oracle: the same MLP trained on the retain facts only (forget accuracy at chance, ~25%).
    Both get the same attack: 10 plain-SGD steps at lr 0.1 on batches of 16 from a random half of the forget set
    (``split_forget``); recovery is forget accuracy on the *other* half, with the original's (100%) as ``before``.
    Measured (seed 0): masked recovery 0.94 (0% -> 93.75%) with retain accuracy still 100%, oracle recovery -0.14
    (34.4% -> 25%, chance level: the held-out answers are random, so there is nothing to learn from the relearning
    half). With seeds 0-7 for everything the masked recovery ranged 0.88-1.0 and the oracle's -0.17-0.21.
    Not used: Adam at the same budget (it moves every weight by ~lr, damages the memorised features, recovers less),
    and the blob problem of ``tests/toys.py`` (an oracle learns a whole blob class from the relearning samples about
    as fast as a class-masked model regains it, so a class-level forget set cannot tell the two apart).
    """
    p = unlearning_problem
    relearn, heldout = split_forget(p["forget"], relearn_fraction=0.5, seed=0)
    before = accuracy(p["original"], heldout)
    assert before == 100.0 and accuracy(p["original"], p["retain"]) == 100.0
    assert accuracy(p["masked"], heldout) == 0.0 and accuracy(p["masked"], p["retain"]) == 100.0
    assert accuracy(p["oracle"], heldout) <= 40.0

    attack = RelearningAttack(steps=10, lr=0.1, batch_size=16, optimizer="sgd", seed=0)
    task = ClassificationTask()
    results = {}
    for name in ("masked", "oracle"):
        unlearned = p[name]
        attacked = attack(unlearned, task, relearn)
        results[name] = recovery(before, accuracy(unlearned, heldout), accuracy(attacked, heldout))
        results[name + "_retain"] = accuracy(attacked, p["retain"])
    assert results["masked"] >= 0.8, results
    assert results["oracle"] <= 0.3, results
    assert results["masked_retain"] >= 95.0, results  # the answers came back, not a collapse of the model


# ---------------------------------------------------------------------------------------------- mechanics


def test_exactly_steps_optimizer_steps_cycling_over_the_data():
    calls = []
    handle = register_optimizer_step_post_hook(lambda *_: calls.append(1))

    class Counting(ClassificationTask):
        sizes: list[int] = []

        def forward(self, model, batch):
            self.sizes.append(self.batch_size(batch))
            return super().forward(model, batch)

    try:
        task = Counting()
        RelearningAttack(steps=7, batch_size=8)(mlp(), task, _data(5))  # 20 samples: batches of 8, 8, 4
    finally:
        handle.remove()
    assert len(calls) == 7
    assert task.sizes == [8, 8, 4, 8, 8, 4, 8]


def test_sgd_matches_a_hand_written_loop():
    data = _data(3)
    x, y = data.tensors
    model = nn.Linear(DIM, 4)
    attacked = RelearningAttack(steps=3, lr=0.1, batch_size=len(data), optimizer="sgd")(model, ClassificationTask(), data)
    expected = copy.deepcopy(model)
    for _ in range(3):
        expected.zero_grad()
        F.cross_entropy(expected(x), y).backward()
        with torch.no_grad():
            for p in expected.parameters():
                p -= 0.1 * p.grad
    for a, b in zip(attacked.parameters(), expected.parameters()):
        torch.testing.assert_close(a, b)
    assert not _same(attacked, model)


def test_the_model_is_not_modified_and_the_copy_is_returned_in_eval_mode():
    model = mlp().train()
    model[0].weight.requires_grad_(False)  # frozen in the unlearned model: the attacker trains it anyway
    before = _snapshot(model)
    attacked = RelearningAttack(steps=3)(model, ClassificationTask(), _data())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and not model[0].weight.requires_grad and model[0].weight.grad is None
    assert attacked is not model and not attacked.training
    assert not torch.equal(attacked[0].weight, model[0].weight)
    assert [p.requires_grad for p in attacked.parameters()] == [p.requires_grad for p in model.parameters()]
    assert all(p.grad is None for p in attacked.parameters())


def test_train_mode_during_the_steps():
    class Recording(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()
            self.modes: list[bool] = []

        def forward(self, x):
            self.modes.append(self.training)
            return self.net(x)

    model = Recording().eval()
    attacked = RelearningAttack(steps=4)(model, ClassificationTask(), _data())
    assert attacked.modes == [True] * 4 and model.modes == []


def test_same_seed_same_result_and_the_global_rng_is_untouched():
    model, data, task = mlp(), _data(5), ClassificationTask()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = RelearningAttack(steps=5, batch_size=4, seed=1)(model, task, data)
    assert torch.equal(torch.get_rng_state(), state)
    b = RelearningAttack(steps=5, batch_size=4, seed=1)(model, task, data)
    c = RelearningAttack(steps=5, batch_size=4, seed=2)(model, task, data)
    assert _same(a, b)
    assert not _same(a, c)  # another shuffle


def test_a_dataset_and_the_equivalent_dataloader_give_the_same_copy():
    model, data, task = mlp(), _data(5), ClassificationTask()
    from_dataset = RelearningAttack(steps=6, batch_size=4, seed=3)(model, task, data)
    loader = DataLoader(data, batch_size=4, sampler=RandomSampler(data, generator=torch.Generator().manual_seed(3)))
    from_loader = RelearningAttack(steps=6, batch_size=99, seed=3)(model, task, loader)  # the loader's batch size wins
    assert _same(from_dataset, from_loader)


def test_dict_batches_from_a_dataloader():
    data = _data(5)
    loader = DataLoader([{"inputs": x, "targets": y} for x, y in data], batch_size=5, shuffle=True)
    attacked = RelearningAttack(steps=4, lr=1e-2)(mlp(), ClassificationTask(), loader)
    x, y = data.tensors
    assert F.cross_entropy(attacked(x), y) < F.cross_entropy(mlp()(x), y)


def test_a_non_finite_loss_raises():
    model = mlp()
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    with pytest.raises(RuntimeError, match=r"The relearning loss is not finite \(nan\) at step 1 of 5; lower `lr`"):
        RelearningAttack(steps=5)(model, ClassificationTask(), _data())


def test_a_tiny_causal_lm_relearns_qa_answers():
    model, task = toy_model(), CausalLMTask()
    forget = QA[:2]
    loader = DataLoader(forget, batch_size=2, collate_fn=QACollator(toy_tokenizer(), max_length=64))
    attacked = RelearningAttack(steps=5, lr=1e-2, seed=0)(model, task, loader)
    batch = qa_batch(forget)
    with torch.no_grad():
        nll_before = task.per_sample_loss(task.forward(model, batch), batch)
        nll_after = task.per_sample_loss(task.forward(attacked, batch), batch)
    assert (nll_after < nll_before - 0.5).all(), (nll_before, nll_after)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": 0}, ValueError, r"`steps` should be an int >= 1, got 0\."),
        ({"steps": 2.5}, ValueError, r"`steps` should be an int >= 1, got 2\.5\."),
        ({"lr": 0.0}, ValueError, r"`lr` should be > 0, got 0\.0\."),
        ({"lr": "1e-3"}, TypeError, r"`lr` should be a number, got str '1e-3'\."),
        ({"batch_size": 0}, ValueError, r"`batch_size` should be an int >= 1, got 0\."),
        ({"optimizer": "Adam"}, ValueError, r"`optimizer` should be one of \['adam', 'adamw', 'sgd'\], got 'Adam'\."),
        ({"seed": -1}, ValueError, r"`seed` should be an int >= 0, got -1\."),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        RelearningAttack(**kwargs)


class _Stream(IterableDataset):
    def __iter__(self):
        yield from _data()


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ({"model": "mlp"}, TypeError, r"`model` should be a torch.nn.Module, got str\."),
        ({"task": "classification"}, TypeError, r"`task` should be a lightning_unlearn Task, got str\."),
        ({"data": _Stream()}, TypeError, r"`data` should be a map-style dataset .* got an IterableDataset \(_Stream\)"),
        ({"data": 3}, TypeError, r"`data` should be a map-style dataset \(with __len__ and __getitem__\), got int\."),
        ({"data": []}, ValueError, r"`data` should hold at least one sample to relearn on; it is empty\."),
        ({"data": DataLoader([], batch_size=1)}, ValueError, r"`data` should yield at least one batch"),
        ({"model": nn.ReLU()}, ValueError, r"`model` has no floating-point parameters to fine-tune\."),
    ],
)
def test_call_errors(args, error, match):
    kwargs = {"model": mlp(), "task": ClassificationTask(), "data": _data(), **args}
    with pytest.raises(error, match=match):
        RelearningAttack(steps=2)(**kwargs)


def test_name_and_repr():
    attack = RelearningAttack(steps=20, lr=5e-4, optimizer="sgd")
    assert attack.name == "relearn-sgd-20steps-lr0.0005"
    assert repr(attack) == "RelearningAttack(steps=20, lr=0.0005, batch_size=16, optimizer='sgd', seed=0)"


# ---------------------------------------------------------------------------------------------- split_forget


def test_split_forget_is_a_seeded_disjoint_cover():
    data = _data(5)  # 20 samples
    relearn, heldout = split_forget(data, relearn_fraction=0.25, seed=0)
    assert len(relearn) == 5 and len(heldout) == 15
    assert set(relearn.indices).isdisjoint(heldout.indices)
    assert sorted(relearn.indices + heldout.indices) == list(range(20))
    assert relearn.indices == sorted(relearn.indices) and relearn.dataset is data
    again, _ = split_forget(data, relearn_fraction=0.25, seed=0)
    other, _ = split_forget(data, relearn_fraction=0.25, seed=1)
    assert again.indices == relearn.indices and other.indices != relearn.indices
    assert [len(part) for part in split_forget(list(range(3)), 0.5)] == [2, 1]  # round(1.5) == 2
    assert [len(part) for part in split_forget(list(range(2)), 0.5)] == [1, 1]


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ({"relearn_fraction": 0.0}, ValueError, r"`relearn_fraction` should lie in \(0, 1\), got 0\.0\."),
        ({"relearn_fraction": 1.0}, ValueError, r"`relearn_fraction` should lie in \(0, 1\), got 1\.0\."),
        ({"relearn_fraction": "0.5"}, TypeError, r"`relearn_fraction` should be a number, got str '0\.5'\."),
        ({"relearn_fraction": 0.01}, ValueError, r"`relearn_fraction` = 0\.01 of a forget set of 20 samples leaves 0 to relearn"),
        ({"relearn_fraction": 0.99}, ValueError, r"leaves 20 to relearn on and 0 held out; both parts should be non-empty"),
        ({"dataset": [1]}, ValueError, r"a forget set of 1 samples leaves"),
        ({"dataset": _Stream()}, TypeError, r"`dataset` should be a map-style dataset"),
        ({"seed": -3}, ValueError, r"`seed` should be an int >= 0, got -3\."),
    ],
)
def test_split_forget_errors(args, error, match):
    kwargs = {"dataset": _data(5), "relearn_fraction": 0.5, "seed": 0, **args}
    with pytest.raises(error, match=match):
        split_forget(**kwargs)


# ---------------------------------------------------------------------------------------------- vision-language models


def test_relearning_brings_back_what_npo_made_a_vlm_forget():
    """The suite's relearning attack on a VLM (VisionLanguageTask batches: tokens + images, the datamodule's
    VQACollator): five Adam steps on half the forget images bring the held-out half's answers back.

    Measured (seed 0): held-out forget answer NLL 0.47 (original) -> 1.62 (NPO) -> 0.65 after the attack (recovery
    0.84 of the loss gap); exact-answer accuracy 66.7% -> 0% -> 0%.
    """
    from lightning_unlearn.attacks.suite import run_attacks
    from lightning_unlearn.report import model_hash
    from lightning_unlearn.tasks import VisionLanguageTask

    from ._vlm import vlm_problem

    p = vlm_problem()
    dm = p["datamodule"]
    dm.setup("fit")
    unlearned_hash = model_hash(p["unlearned"])
    result = run_attacks(
        p["unlearned"], VisionLanguageTask(), dm.forget_set, original=p["original"],
        retain=DataLoader(dm.retain_set, batch_size=32, collate_fn=dm.collate_fn),
        attacks=[RelearningAttack(steps=5, lr=1e-3, batch_size=3)], collate_like=DataLoader(dm.forget_set, collate_fn=dm.collate_fn),
    )  # fmt: skip
    base, entry = result["models"], result["attacks"]["relearn-adam-5steps-lr0.001"]
    assert result["split"] == {"relearn": 3, "heldout": 3, "relearn_fraction": 0.5, "seed": 0}
    assert base["unlearned"]["forget_loss"] > base["original"]["forget_loss"] + 1.0, base  # NPO forgot
    assert entry["unlearned"]["forget_loss"] < base["unlearned"]["forget_loss"] - 0.5, entry
    assert entry["recovery_loss"] > 0.5, entry
    assert model_hash(p["unlearned"]) == unlearned_hash  # the attack fine-tuned a copy
    # called directly on the VQA dataset, with the collator: the same fine-tuning as the suite's (same seeded shuffle)
    relearn, heldout = split_forget(dm.forget_set, relearn_fraction=0.5, seed=0)
    attacked = RelearningAttack(steps=5, lr=1e-3, batch_size=3, collate_fn=dm.collate_fn)(p["unlearned"], VisionLanguageTask(), relearn)
    task, batch = VisionLanguageTask(), dm.collate_fn([heldout[i] for i in range(len(heldout))])
    with torch.no_grad():
        loss = float(task.per_sample_loss(task.forward(attacked, batch), batch).mean())
    assert loss == pytest.approx(entry["unlearned"]["forget_loss"], rel=1e-4)
    with pytest.raises(TypeError, match=r"`collate_fn` should be a callable\(samples\) -> batch or None, got str"):
        RelearningAttack(collate_fn="vqa")  # type: ignore[arg-type]
