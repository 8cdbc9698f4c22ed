"""RTN fake quantization: |w − q(w)| ≤ s/2 per row or group, a fixed point, at most 2^b levels; the model is copied."""

from __future__ import annotations

import pytest
import torch
from llm_toys import QA, qa_batch, tiny_causal_lm, toy_model, toy_tokenizer
from torch import nn
from torch.utils.data import DataLoader
from toys import accuracy, blobs, fit_plain, mlp

from lightning_unlearn.attacks.cli import format_results
from lightning_unlearn.attacks.quantization import QuantizationAttack, QuantizationSummary, fake_quantize, quantize_model
from lightning_unlearn.attacks.suite import flat_result, run_attacks
from lightning_unlearn.tasks import CausalLMTask, QACollator


def _weight(rows: int = 6, cols: int = 32, seed: int = 0) -> torch.Tensor:
    """Rows of very different magnitudes, with an all-positive and an all-negative row (asymmetric ranges)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * torch.logspace(-3, 1, rows)[:, None]
    w[1] = w[1].abs() + 0.5
    w[2] = -w[2].abs() - 0.5
    return w


def _groups(w: torch.Tensor, group_size: int | None) -> torch.Tensor:
    rows = w.reshape(w.shape[0], -1)
    return rows.reshape(rows.shape[0], -1, group_size or rows.shape[1])


def _scales(w: torch.Tensor, bits: int, group_size: int | None, symmetric: bool) -> torch.Tensor:
    """The step of every group, written from the definitions (symmetric: absmax / (2^(b-1)-1); else range / (2^b-1))."""
    groups = _groups(w, group_size).double()
    if symmetric:
        return groups.abs().amax(-1, keepdim=True) / (2 ** (bits - 1) - 1)
    high, low = groups.amax(-1, keepdim=True).clamp(min=0), groups.amin(-1, keepdim=True).clamp(max=0)
    return (high - low) / (2**bits - 1)


CASES = [(bits, group_size, symmetric) for bits in (2, 3, 4, 8) for group_size in (None, 8) for symmetric in (True, False)]


@pytest.mark.parametrize(("bits", "group_size", "symmetric"), CASES)
def test_error_is_at_most_half_a_step(bits, group_size, symmetric):
    w = _weight()
    q = fake_quantize(w, bits=bits, group_size=group_size, symmetric=symmetric)
    assert q.shape == w.shape and q.dtype == w.dtype
    error = (_groups(w, group_size) - _groups(q, group_size)).abs().double()
    bound = _scales(w, bits, group_size, symmetric) / 2
    assert (error <= bound * (1 + 1e-5) + 1e-12).all()
    # and quantization does change something at these bit widths (the test is not vacuous)
    assert not torch.equal(q, w)


@pytest.mark.parametrize(("bits", "group_size", "symmetric"), CASES)
def test_at_most_2_to_the_bits_levels_per_group(bits, group_size, symmetric):
    q = fake_quantize(_weight(cols=256), bits=bits, group_size=group_size, symmetric=symmetric)
    levels = 2**bits - 1 if symmetric else 2**bits  # the symmetric grid drops -2^(b-1)
    counts = [group.unique().numel() for group in _groups(q, group_size).reshape(-1, group_size or 256)]
    assert max(counts) <= levels
    assert max(counts) >= min(levels, 4)  # not vacuous: the wide rows do use several levels


@pytest.mark.parametrize(("bits", "group_size", "symmetric"), CASES)
def test_quantized_weights_are_a_fixed_point(bits, group_size, symmetric):
    q = fake_quantize(_weight(), bits=bits, group_size=group_size, symmetric=symmetric)
    qq = fake_quantize(q, bits=bits, group_size=group_size, symmetric=symmetric)
    # The integer codes are identical; recomputing the scale from q can differ in the last bit of float32.
    torch.testing.assert_close(qq, q, rtol=1e-6, atol=0)


def test_symmetric_keeps_each_rows_absmax_and_zero():
    w = _weight()
    w[:, 5] = 0.0
    q = fake_quantize(w, bits=4)
    torch.testing.assert_close(q.abs().amax(1), w.abs().amax(1), rtol=1e-6, atol=0)
    assert (q[:, 5] == 0).all()
    assert (fake_quantize(w, bits=4, symmetric=False)[:, 5] == 0).all()  # 0 lies on the asymmetric grid too


def test_per_channel_is_per_row_and_groups_refine_it():
    w = _weight()
    rows = torch.stack([fake_quantize(row[None], bits=3)[0] for row in w])
    torch.testing.assert_close(fake_quantize(w, bits=3), rows, rtol=0, atol=0)
    # a group the length of the row is per-channel; smaller groups never have a larger step, so a smaller error here
    torch.testing.assert_close(fake_quantize(w, bits=3, group_size=32), rows, rtol=0, atol=0)
    per_channel = (fake_quantize(w, bits=3) - w).abs().mean()
    grouped = (fake_quantize(w, bits=3, group_size=4) - w).abs().mean()
    assert grouped < per_channel


@pytest.mark.parametrize("symmetric", [True, False])
def test_zero_rows_and_groups_stay_zero_without_nan(symmetric):
    w = _weight()
    w[0] = 0.0
    w[3, :8] = 0.0
    for group_size in (None, 8):
        q = fake_quantize(w, bits=4, group_size=group_size, symmetric=symmetric)
        assert torch.isfinite(q).all()
        assert (q[0] == 0).all()
    assert (fake_quantize(w, bits=4, group_size=8, symmetric=symmetric)[3, :8] == 0).all()
    assert (fake_quantize(torch.zeros(3, 4), bits=2, symmetric=symmetric) == 0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_low_and_high_precision_inputs_keep_their_dtype(dtype):
    w = _weight().to(dtype)
    q = fake_quantize(w, bits=4, group_size=8)
    assert q.dtype == dtype
    # computed in float32 from the same values, then rounded to the input dtype
    torch.testing.assert_close(q, fake_quantize(w.float(), bits=4, group_size=8).to(dtype), rtol=0, atol=0)


def test_conv_weights_are_quantized_per_output_channel():
    conv = nn.Conv2d(3, 5, kernel_size=3)
    w = conv.weight.detach()
    q = fake_quantize(w, bits=4)
    assert q.shape == w.shape
    torch.testing.assert_close(q, fake_quantize(w.reshape(5, -1), bits=4).reshape(w.shape), rtol=0, atol=0)
    assert fake_quantize(w, bits=4, group_size=9).shape == w.shape  # one group per input channel's kernel


def test_input_is_not_modified_and_no_gradient_flows():
    w = _weight().requires_grad_(True)
    before = w.detach().clone()
    q = fake_quantize(w, bits=2)
    assert torch.equal(w.detach(), before)
    assert not q.requires_grad


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ({"bits": 1}, ValueError, r"`bits` should be one of \[2, 3, 4, 5, 6, 7, 8\], got 1\."),
        ({"bits": 16}, ValueError, r"`bits` should be one of \[2, 3, 4, 5, 6, 7, 8\], got 16\."),
        ({"bits": 4.0}, ValueError, r"`bits` should be one of \[2, 3, 4, 5, 6, 7, 8\], got 4\.0\."),
        ({"bits": True}, ValueError, r"`bits` should be one of .*, got True\."),
        ({"group_size": 0}, ValueError, r"`group_size` should be an int >= 1 or None, got 0\."),
        ({"group_size": 5}, ValueError, r"`group_size` should divide the row length of `weight` \(32 elements"),
        ({"symmetric": "yes"}, TypeError, r"`symmetric` should be a bool, got str 'yes'"),
        ({"weight": torch.ones(4)}, ValueError, r"`weight` should have at least 2 dimensions .* got shape \(4,\)"),
        ({"weight": torch.ones(2, 4, dtype=torch.int64)}, TypeError, r"`weight` should be a floating-point tensor"),
        ({"weight": [[1.0]]}, TypeError, r"`weight` should be a torch.Tensor, got list"),
    ],
)
def test_fake_quantize_errors(args, error, match):
    kwargs = {"weight": _weight(), **args}
    with pytest.raises(error, match=match):
        fake_quantize(**kwargs)


# ---------------------------------------------------------------------------------------------- models


class _Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(10, 8)
        self.conv = nn.Conv1d(8, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.bn = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.embed(tokens).transpose(1, 2))
        return self.head(self.norm(self.bn(h).transpose(1, 2)).mean(1))


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(model: nn.Module, copy: nn.Module) -> set[str]:
    theirs = copy.state_dict()
    return {k for k, v in model.state_dict().items() if not torch.equal(v, theirs[k])}


def test_quantize_model_touches_only_layer_weights_and_not_the_model():
    model = _Mixed()
    before = _snapshot(model)
    quantized, summary = quantize_model(model, bits=4)
    assert quantized is not model
    assert _changed(model, quantized) == {"embed.weight", "conv.weight", "head.weight"}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # bit-identical original
    torch.testing.assert_close(quantized.head.weight, fake_quantize(model.head.weight, bits=4), rtol=0, atol=0)
    assert summary == QuantizationSummary(
        names=("embed.weight", "conv.weight", "head.weight"),
        num_parameters=80 + 192 + 32,
        total_parameters=sum(p.numel() for p in model.parameters()),
        matrix_parameters=80 + 192 + 32,
    )
    assert summary.num_tensors == 3 and 0 < summary.fraction < 1 and summary.coverage == 1.0 and summary.skipped == ()


@pytest.mark.parametrize(
    ("layer_types", "expected"),
    [(("conv",), {"conv.weight"}), (("linear", "embedding"), {"embed.weight", "head.weight"})],
)
def test_layer_types_select_what_is_quantized(layer_types, expected):
    model = _Mixed()
    quantized, summary = quantize_model(model, bits=3, layer_types=layer_types)
    assert _changed(model, quantized) == expected == set(summary.names)
    matrices = {"embed.weight": 80, "conv.weight": 192, "head.weight": 32}
    assert set(summary.skipped) == set(matrices) - expected  # the coverage says what was left out
    assert summary.coverage == sum(matrices[n] for n in expected) / sum(matrices.values())


def _gpt2():
    return tiny_causal_lm("gpt2")


def test_gpt2_conv1d_layers_are_quantized_per_output_channel():
    model = _gpt2()
    quantized, summary = quantize_model(model, bits=4)
    conv = model.transformer.h[0].mlp.c_fc  # transformers' Conv1D: weight [in, out]
    assert type(conv).__name__ == "Conv1D" and conv.weight.shape == (32, 128)
    expected = fake_quantize(conv.weight.t(), bits=4).t()  # one scale per output channel = per column of [in, out]
    torch.testing.assert_close(quantized.transformer.h[0].mlp.c_fc.weight, expected, rtol=0, atol=0)
    assert "transformer.h.0.mlp.c_fc.weight" in summary.names
    # group sizes divide the input dimension (the Conv1D weight's first one): 32 = 4 groups of 8
    grouped, _ = quantize_model(model, bits=4, group_size=8)
    torch.testing.assert_close(
        grouped.transformer.h[0].mlp.c_fc.weight, fake_quantize(conv.weight.t(), bits=4, group_size=8).t(), rtol=0, atol=0
    )


def test_gpt2_coverage_is_every_weight_matrix_and_is_recorded():
    model = _gpt2()
    attack = QuantizationAttack(bits=4, group_size=8)
    quantized = attack(model)
    summary = attack.summary
    matrices = {n: p for n, p in model.named_parameters() if p.dim() >= 2}
    assert summary.skipped == () and summary.coverage == 1.0 >= 0.9
    assert summary.matrix_parameters == sum(p.numel() for p in matrices.values())
    assert set(summary.names) == set(matrices)  # wte (tied to lm_head), wpe and every Conv1D
    changed = _changed(model, quantized)
    assert {n for n in changed if n.endswith("c_attn.weight") or n.endswith("c_proj.weight") or n.endswith("c_fc.weight")}
    assert all(name in changed for name in matrices)
    assert 0.9 < summary.fraction < 1  # biases and norms stay in full precision


def test_run_attacks_records_the_quantization_coverage():
    model = _gpt2()
    forget = [{"question": qa["question"], "answer": qa["answer"]} for qa in QA[:4]]
    collate = QACollator(toy_tokenizer(), max_length=64)
    result = run_attacks(
        model,
        CausalLMTask(),
        forget,
        original=model,
        attacks=[QuantizationAttack(bits=4, group_size=8), QuantizationAttack(bits=8, layer_types=("embedding",))],
        collate_like=DataLoader([], collate_fn=collate),
    )
    int4, embeddings_only = result["attacks"]["int4-g8"], result["attacks"]["int8-per-channel"]
    assert int4["coverage"] == 1.0 and int4["skipped_matrices"] == 0
    assert 0 < embeddings_only["coverage"] < 0.5 and embeddings_only["skipped_matrices"] == 2 * 4  # 4 Conv1D per block
    assert flat_result(result, "int4-g8")["coverage"] == 1.0
    table = format_results(result, ["int4-g8", "int8-per-channel"])  # `lightning-unlearn attack` prints it
    assert "int4-g8 quantized 100.0% of the weight-matrix elements (0 weight matrices left in full precision)" in table
    assert "int8-per-channel quantized" in table and "(8 weight matrices left in full precision)" in table


def test_quantize_model_keeps_mode_dtype_and_grad_flags():
    model = mlp().to(torch.bfloat16).train()
    model[0].weight.requires_grad_(False)
    quantized, _ = quantize_model(model, bits=8)
    assert quantized.training
    assert all(p.dtype == torch.bfloat16 for p in quantized.parameters())
    assert [p.requires_grad for p in quantized.parameters()] == [p.requires_grad for p in model.parameters()]
    assert quantize_model(model.eval())[0].training is False


def test_a_weight_the_group_size_does_not_divide_is_quantized_per_channel():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    quantized, summary = quantize_model(model, bits=4, group_size=16)
    assert summary.names == ("0.weight", "2.weight") and summary.per_channel == ("2.weight",)
    assert torch.equal(quantized[0].weight, fake_quantize(model[0].weight, bits=4, group_size=16))
    assert torch.equal(quantized[2].weight, fake_quantize(model[2].weight, bits=4, group_size=None))
    assert quantize_model(model, bits=4, group_size=8)[1].per_channel == ()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"bits": 9}, ValueError, r"`bits` should be one of \[2, 3, 4, 5, 6, 7, 8\], got 9\."),
        (
            {"layer_types": ("linear", "lstm")},
            ValueError,
            r"`layer_types` should be one of \['conv', 'embedding', 'linear'\], got 'lstm'",
        ),
        (
            {"layer_types": "linear"},
            ValueError,
            r"`layer_types` should be a non-empty sequence of \['conv', 'embedding', 'linear'\], got 'linear'",
        ),
        ({"layer_types": ()}, ValueError, r"`layer_types` should be a non-empty sequence"),
        ({"group_size": -1}, ValueError, r"`group_size` should be an int >= 1 or None, got -1\."),
        ({"model": "mlp"}, TypeError, r"`model` should be a torch.nn.Module, got str"),
    ],
)
def test_quantize_model_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        quantize_model(**{"model": mlp(), **kwargs})


def _trained_classifier():
    """Overlapping blobs (spread 1), so that accuracy is far from 100% and sensitive to the weights."""
    data = blobs(200, seed=0, spread=1.0)
    x, y = data.tensors
    return fit_plain(mlp(), x, y, steps=300), data


def test_int8_keeps_a_trained_classifiers_accuracy_and_2_bits_hurt_it():
    model, data = _trained_classifier()
    full = accuracy(model, data)
    int8 = accuracy(QuantizationAttack(bits=8)(model), data)
    int2 = accuracy(QuantizationAttack(bits=2)(model), data)
    assert abs(int8 - full) <= 1.0
    assert int2 <= full - 5.0


# ---------------------------------------------------------------------------------------------- tiny Llama


@pytest.mark.parametrize("tied", [False, True])
def test_tiny_llama_quantizes_and_stays_close_at_8_bits(tied):
    model = toy_model(tie_word_embeddings=tied)
    before = _snapshot(model)
    batch = qa_batch()
    attack = QuantizationAttack(bits=8)
    quantized = attack(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    names = set(attack.summary.names)
    assert "model.embed_tokens.weight" in names and "model.norm.weight" not in names
    assert ("lm_head.weight" in names) is not tied  # a tied head is the embedding: counted once
    layers = model.config.num_hidden_layers
    assert attack.summary.num_tensors == 1 + 7 * layers + (0 if tied else 1)  # q, k, v, o, gate, up, down per layer
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        q_logits = quantized(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert not torch.equal(logits, q_logits)
    torch.testing.assert_close(q_logits, logits, rtol=0, atol=0.02 * logits.abs().max().item())


def test_tied_weights_stay_tied_and_are_quantized_once():
    model = toy_model(tie_word_embeddings=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    quantized, summary = quantize_model(model, bits=4, layer_types=("linear",))  # selected through lm_head only
    assert quantized.lm_head.weight is quantized.model.embed_tokens.weight
    assert "model.embed_tokens.weight" not in summary.names
    assert summary.names.count("lm_head.weight") == 1
    once = fake_quantize(model.lm_head.weight, bits=4)
    torch.testing.assert_close(quantized.model.embed_tokens.weight, once, rtol=0, atol=0)
    shared = model.lm_head.weight.numel()
    assert summary.num_parameters == shared + sum(
        m.weight.numel() for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "lm_head"
    )


# ---------------------------------------------------------------------------------------------- the attack


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({}, "int4-per-channel"),
        ({"bits": 4, "group_size": 128}, "int4-g128"),
        ({"bits": 8}, "int8-per-channel"),
        ({"bits": 3, "group_size": 64, "symmetric": False}, "int3-g64-asym"),
    ],
)
def test_attack_name(kwargs, name):
    assert QuantizationAttack(**kwargs).name == name


def test_attack_returns_a_quantized_copy_and_records_a_summary():
    model = mlp()
    before = _snapshot(model)
    attack = QuantizationAttack(bits=4, group_size=8, symmetric=False)
    assert attack.summary is None
    quantized = attack(model)
    assert quantized is not model and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert attack.summary.names == ("0.weight", "2.weight")
    torch.testing.assert_close(quantized[0].weight, fake_quantize(model[0].weight, 4, 8, symmetric=False), rtol=0, atol=0)
    assert (
        repr(attack) == "QuantizationAttack(bits=4, group_size=8, symmetric=False, layer_types=('linear', 'conv', 'embedding'))"
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"bits": 0}, ValueError, r"`bits` should be one of \[2, 3, 4, 5, 6, 7, 8\], got 0\."),
        ({"bits": "4"}, ValueError, r"`bits` should be one of \[2, 3, 4, 5, 6, 7, 8\], got '4'\."),
        ({"group_size": 0}, ValueError, r"`group_size` should be an int >= 1 or None, got 0\."),
        ({"group_size": 12.0}, ValueError, r"`group_size` should be an int >= 1 or None, got 12\.0\."),
        ({"symmetric": 1}, TypeError, r"`symmetric` should be a bool, got int 1"),
        (
            {"layer_types": ("Linear",)},
            ValueError,
            r"`layer_types` should be one of \['conv', 'embedding', 'linear'\], got 'Linear'",
        ),
    ],
)
def test_attack_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        QuantizationAttack(**kwargs)
