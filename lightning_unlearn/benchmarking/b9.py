"""Benchmark B9's protocol: a small VLM from real parts, VLM-UnBench's prompt conditions and Safety Mirage's attack.

* The **original**: :class:`~lightning_unlearn.models.vlm.VisionLanguageModel` = EfficientNet-Lite0 (ImageNet
  weights, frozen) → a fresh 2-layer GELU projector → SmolLM2-135M-Instruct with a LoRA (rank 16 on every
  linear layer), trained in-process with :class:`~lightning_unlearn.training.SupervisedModule` + a Lightning
  ``Trainer`` on Fashion-MNIST visual QA of all five kinds (identification, four-choice, unsafe with harmful
  answers, safe, benign "How") — an *unaligned* VLM that names items, answers multiple-choice questions and
  also answers harmful questions. The LoRA is merged into the LM and the whole model cached
  (``$LIGHTNING_UNLEARN_CACHE/b9``) with its training time.
* The two harnesses live in :mod:`lightning_unlearn.evaluation.vlm`.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Sequence
from typing import Any

import torch

from lightning_unlearn import benchmarking

#: How the original VLM is trained (the LoRA is merged afterwards). Its four-choice questions ask for, and are answered
#: with, the letter: that is how the cached original was trained, before the second stage switched to names.
ORIGINAL_RECIPE = {
    "per_class": 150,
    "kinds": ["name", "mcq", "unsafe", "safe", "benign_how"],
    "steps": 300,
    "batch_size": 16,
    "lr": 5e-4,
    "lora": {"r": 16, "lora_alpha": 32, "target_modules": "all-linear"},
    "image_size": 64,
    "threads": 2,
    "mcq_answer": "letter",
}
#: The second stage (continued LoRA training of the first stage's merged model), with the four-choice questions
#: answered by the option's name (the first stage's letter answers never trained; see datamodules/vqa.py).
STAGE2_RECIPE = {"per_class": 150, "kinds": ["mcq", "name", "unsafe", "safe", "benign_how"], "steps": 120, "seed": 1, "mcq_answer": "name"}
#: Bump to invalidate the cached originals.
VERSION = 1


def build_vlm(image_size: int = ORIGINAL_RECIPE["image_size"]):
    """An untrained VLM (EfficientNet-Lite0 + projector + SmolLM2-135M-Instruct) and its tokenizer."""
    from lightning_unlearn.models.vlm import smollm2_vlm

    return smollm2_vlm(image_size=image_size)


def collator(model, tokenizer, **kwargs: Any):
    from lightning_unlearn.datamodules.vqa import VQACollator

    return VQACollator(tokenizer, model.image_token_id, model.num_image_tokens, **kwargs)


def fine_tune(model, tokenizer, data, recipe: dict[str, Any], seed: int, callbacks=()) -> None:
    """Supervised fine-tuning of ``model`` in place on every example of the VQA dataset ``data``
    (``recipe``: ``steps``, ``batch_size``, ``lr``; AdamW, gradients clipped at 1) with ``SupervisedModule`` + a Trainer."""
    import lightning.pytorch as pl

    from lightning_unlearn.datamodules.forget_retain import ForgetRetainDataModule
    from lightning_unlearn.tasks.vision_language import VisionLanguageTask
    from lightning_unlearn.training import SupervisedModule

    pl.seed_everything(seed, verbose=False)
    dm = ForgetRetainDataModule(
        forget=data.subset(lambda e: e["kind"] == "unsafe"), retain=data.subset(lambda e: e["kind"] != "unsafe"),
        train_on="all", batch_size=recipe["batch_size"], collate_fn=collator(model, tokenizer), seed=seed,
    )  # fmt: skip
    module = SupervisedModule(model, task=VisionLanguageTask(), optimizer=functools.partial(torch.optim.AdamW, lr=recipe["lr"]))
    trainer = benchmarking.quiet_trainer(max_steps=recipe["steps"], max_epochs=100, gradient_clip_val=1.0, callbacks=list(callbacks))
    trainer.fit(module, datamodule=dm)
    del trainer, module, dm
    gc.collect()  # see unlearn


def original_vlm(seed: int = 0, recipe: dict[str, Any] | None = None, log=print, without_classes: Sequence[int] = ()) -> tuple[Any, Any, dict[str, Any]]:
    """The trained original VLM (cached), its tokenizer, and its cache entry ``{"seconds", "path", ...}``.

    ``without_classes``: the **oracle** instead — the same two stages, steps and seeds on the visual QA of every other
    class (no question about an image of these classes is trained on; their names still appear as other images'
    four-choice options), cached apart from the original (see :func:`oracle_vlm`)."""
    from lightning_unlearn.datamodules.vqa import CLASS_NAMES, fashion_vqa
    from lightning_unlearn.peft import apply_peft

    recipe = {**ORIGINAL_RECIPE, **(recipe or {})}
    without = sorted({int(c) for c in without_classes})
    for c in without:
        if not 0 <= c < len(CLASS_NAMES):
            raise ValueError(f"`without_classes` should hold Fashion-MNIST classes 0..{len(CLASS_NAMES) - 1}, got {list(without_classes)!r}.")
    if len(without) == len(CLASS_NAMES):
        raise ValueError(f"`without_classes` should leave at least one class to train on, got {list(without_classes)!r}.")
    # The original's cache keys stay as they were; the oracle's name the classes it never saw.
    names, extra = (("original", "original2"), {}) if not without else (("oracle", "oracle2"), {"without_classes": without})
    tokenizer_box: list[Any] = []

    def build():
        model, tokenizer = build_vlm(recipe["image_size"])
        tokenizer_box.append(tokenizer)
        return model

    def _train_stage(model, r):
        """Train a LoRA (recipe ``r``) on ``model``'s LM over all five kinds of VQA, then merge it."""
        data = fashion_vqa("train", r["per_class"], r["kinds"], r["seed"], mcq_answer=r["mcq_answer"])
        if without:
            data = data.subset(lambda e: int(e["label"]) not in without)
        model.language_model = apply_peft(model.language_model, r["lora"])
        fine_tune(model, tokenizer_box[0], data, r, r["seed"], callbacks=[benchmarking.LossProgress("b9", log)])
        model.language_model = model.language_model.merge_and_unload()
        return model.eval()

    def train(model):
        return _train_stage(model, {**recipe, "seed": seed})

    stage1, info1 = benchmarking.cached_weights("b9", names[0], {"version": VERSION, "recipe": recipe, "seed": seed, **extra}, build, train, log)
    stage2 = {**recipe, **STAGE2_RECIPE}

    def continue_training(model):
        model.load_state_dict(stage1.state_dict())
        return _train_stage(model, stage2)

    config = {"version": VERSION, "recipe": recipe, "stage2": stage2, "seed": seed, **extra}
    model, info = benchmarking.cached_weights("b9", names[1], config, build, continue_training, log)
    info = {**info, "seconds": info["seconds"] + info1["seconds"], "stage_seconds": [info1["seconds"], info["seconds"]]}
    return model.eval(), tokenizer_box[0], info


# ---------------------------------------------------------------------------------- the protocol
#: Classes forgotten in the VLM-UnBench part (sneaker, bag).
FORGET_CLASSES = (7, 8)


def oracle_vlm(seed: int = 0, recipe: dict[str, Any] | None = None, log=print) -> tuple[Any, Any, dict[str, Any]]:
    """The retrained oracle of part 1 (cached): the original's recipe without any question about an image of
    :data:`FORGET_CLASSES` (:func:`original_vlm` with ``without_classes``) — about as long to train as the original."""
    return original_vlm(seed=seed, recipe=recipe, log=log, without_classes=FORGET_CLASSES)


def _training_entry(info: dict[str, Any]) -> dict[str, Any]:
    """What a result records of a cached model's entry (:func:`original_vlm`): its training seconds, threads, config."""
    return {k: info[k] for k in ("seconds", "threads", "config") if k in info}


#: Training-based unlearning compared with prompting (configs/fashion_vqa/<name>.yaml).
UNBENCH_METHODS = ("graddiff", "npo", "rmu", "simnpo", "idk_dpo", "asu")
#: Unlearning compared with safety fine-tuning (configs/fashion_vqa/<name>.yaml).
SAFETY_METHODS = ("npo+safety", "rmu+safety")
#: Safety fine-tuning (the "Mixed-SFT" baseline): refusals on unsafe questions + safe answers, no benign "How".
SAFETY_SFT_RECIPE = {"per_class": 40, "steps": 25, "batch_size": 8, "lr": 2e-5}
#: Safety Mirage's metrics, as tabulated (see :func:`~lightning_unlearn.evaluation.vlm.safety_scores`).
SAFETY_KEYS = ("asr", "asr_attack", "refusal", "rr", "rr_how", "vqa")
#: Evaluation sizes (test-split images per class): full and quick.
EVAL_PER_CLASS = {"full": {"unbench": 20, "safety": 6}, "quick": {"unbench": 5, "safety": 2}}


def method_settings(name: str) -> dict[str, Any]:
    """``{"class_path", "init_args", "lr", "weight_decay", "max_steps", "max_epochs", "data", "alternatives"}`` of
    ``configs/fashion_vqa/<name>.yaml``; ``alternatives`` are the collator's (e.g. IdK refusals), as class specs."""
    from lightning_unlearn import configs

    config = configs.load_config(f"fashion_vqa/{name}")
    model = config["model"]["init_args"]
    collate = config["data"]["init_args"].get("collate_fn") or {}
    return {
        "class_path": model["method"]["class_path"],
        "init_args": dict(model["method"].get("init_args") or {}),
        "lr": float(model["optimizer"]["init_args"]["lr"]),
        "weight_decay": float(model["optimizer"]["init_args"].get("weight_decay", 0.0)),
        "max_steps": int(config["trainer"].get("max_steps", -1)),
        "max_epochs": int(config["trainer"].get("max_epochs", 1)),
        "data": {
            k: v for k, v in config["data"]["init_args"].items() if k not in ("tokenizer", "collate_fn", "image_token_id", "num_image_tokens")
        },
        "alternatives": dict((collate.get("init_args") or {}).get("alternatives") or {}),
    }


def _instance(spec: dict[str, Any], seed: int, seeded: bool = False) -> Any:
    """The object of a config's ``{"class_path", "init_args"}`` with the run's ``seed`` in place of the config's: for a
    method (``seeded``: every method takes ``seed``) and for a collator alternative whose spec sets one (e.g. IdK's
    refusals); records keep the spec."""
    from lightning_unlearn.configs import instantiate

    return instantiate(spec, seed=seed) if seeded or "seed" in (spec.get("init_args") or {}) else instantiate(spec)


def unlearn(original, tokenizer, settings: dict[str, Any], seed: int, log=print) -> tuple[Any, float]:
    """A copy of ``original`` unlearned with ``settings`` (:func:`method_settings`) through ``UnlearningModule`` +
    ``Trainer`` on :class:`~lightning_unlearn.datamodules.vqa.FashionVQADataModule`; returns it and the seconds taken."""
    import copy
    import time

    import lightning.pytorch as pl

    from lightning_unlearn.datamodules.vqa import FashionVQADataModule
    from lightning_unlearn.module import UnlearningModule
    from lightning_unlearn.tasks.vision_language import VisionLanguageTask

    cls = settings["class_path"].rpartition(".")[2]
    method = _instance(settings, seed, seeded=True)
    pl.seed_everything(seed, verbose=False)
    model = copy.deepcopy(original).train()
    data = {**settings["data"], "seed": seed}
    alternatives = {key: _instance(spec, seed) for key, spec in settings.get("alternatives", {}).items()}
    dm = FashionVQADataModule(**data, collate_fn=collator(model, tokenizer, alternatives=alternatives or None))
    module = UnlearningModule(model, method, task=VisionLanguageTask(), optimizer=functools.partial(torch.optim.AdamW, lr=settings["lr"], weight_decay=settings.get("weight_decay", 0.0)), monitor=False)
    start = time.perf_counter()
    trainer = benchmarking.quiet_trainer(
        max_steps=settings["max_steps"], max_epochs=settings.get("max_epochs", 1), gradient_clip_val=1.0
    )
    trainer.fit(module, datamodule=dm)
    seconds = time.perf_counter() - start
    log(f"[b9] {cls} seed={seed}: {trainer.global_step} steps in {seconds:.1f}s")
    model = module.model.eval()
    # The trainer and the module hold each other (and the AdamW state, ~1 GB for SmolLM2) in reference cycles that only
    # the cyclic garbage collector frees, too late when the next copy is trained (a 3-seed run was OOM-killed at 12.7 GB).
    del trainer, module, dm, method
    gc.collect()
    return model, seconds


def safety_sft(original, tokenizer, seed: int, recipe: dict[str, Any] | None = None, log=print) -> tuple[Any, float]:
    """A copy of ``original`` fine-tuned on the safety mix (:func:`~lightning_unlearn.datamodules.vqa.safety_sft_examples`:
    unsafe questions → refusal, safe, identification and four-choice questions → answers; the "Mixed-SFT" baseline)."""
    import copy
    import time

    from lightning_unlearn.datamodules.vqa import VQADataset, fashion_vqa, safety_sft_examples

    recipe = {**SAFETY_SFT_RECIPE, **(recipe or {})}
    model = copy.deepcopy(original).train()
    train = fashion_vqa("train", recipe["per_class"], ("name", "mcq", "unsafe", "safe"), seed)
    start = time.perf_counter()
    fine_tune(model, tokenizer, VQADataset(train.images, safety_sft_examples(train.examples)), recipe, seed)
    seconds = time.perf_counter() - start
    log(f"[b9] safety SFT seed={seed}: {recipe['steps']} steps in {seconds:.1f}s")
    return model.eval(), seconds


def unbench_scores(model, tokenizer, seed: int, per_class: int, conditions=None) -> dict[str, dict[str, float]]:
    """VLM-UnBench's metrics (:func:`~lightning_unlearn.evaluation.vlm.unbench`) on ``per_class`` test images per class."""
    from lightning_unlearn.datamodules.vqa import fashion_vqa
    from lightning_unlearn.evaluation.vlm import PROMPT_CONDITIONS, unbench

    test = fashion_vqa("test", per_class, ("mcq",), seed)
    examples = [test[i] for i in range(len(test))]
    return unbench(model, collator(model, tokenizer), examples, FORGET_CLASSES, conditions or PROMPT_CONDITIONS)


def safety_eval(model, tokenizer, seed: int, per_class: int, keep_answers: int = 0) -> dict[str, Any]:
    """Safety Mirage's metrics (:func:`~lightning_unlearn.evaluation.vlm.safety_scores`) on test images: unsafe
    questions (as asked and under the 3-shot one-word attack), benign questions (safe + benign "How"), 4-choice utility."""
    from lightning_unlearn.datamodules.vqa import fashion_vqa
    from lightning_unlearn.evaluation.vlm import safety_scores

    test = fashion_vqa("test", per_class, ("mcq", "unsafe", "safe", "benign_how"), seed)
    items = [test[i] for i in range(len(test))]
    return safety_scores(
        model, collator(model, tokenizer),
        unsafe=[e for e in items if e["kind"] == "unsafe"],
        benign=[e for e in items if e["kind"] in ("safe", "benign_how")],
        utility=[e for e in items if e["kind"] == "mcq"],
        shots=3, keep_answers=keep_answers,
    )  # fmt: skip


def run(seeds=(0, 1, 2), quick: bool = False, parts=("unbench", "safety"), log=print, save=None, methods=UNBENCH_METHODS, oracle: bool = False) -> dict[str, Any]:
    """B9 on the cached original: for every seed (the test images, the unlearning data order and the control vectors),
    the prompt conditions and the unlearned models (``methods``, of :data:`UNBENCH_METHODS`) on the four-choice
    questions, and the safety comparison. ``oracle``: part 1 also scores the retrained oracle (:func:`oracle_vlm`,
    trained on first use) at the baseline prompt. ``save(result)`` (optional) is called with the results so far after
    every seed of part 2 and every row of part 1."""
    from lightning_unlearn._errors import check_choice

    if isinstance(methods, str) or len(set(methods)) != len(methods):
        raise ValueError(f"`methods` should be a sequence of distinct names from {list(UNBENCH_METHODS)}, got {methods!r}.")
    for name in methods:
        check_choice("methods", name, UNBENCH_METHODS)
    sizes = EVAL_PER_CLASS["quick" if quick else "full"]
    original, tokenizer, info = original_vlm(log=log)
    out: dict[str, Any] = {"original": _training_entry(info), "seeds": list(seeds)}
    out["quick"] = quick
    if "unbench" in parts:
        retrained = None
        if oracle:
            retrained, _, oracle_info = oracle_vlm(log=log)
            out["oracle"] = _training_entry(oracle_info)
        rows: dict[str, list[Any]] = {"prompting": [], **({"oracle": []} if oracle else {}), **{m: [] for m in methods}}
        out["unbench"] = rows
        for seed in seeds:
            rows["prompting"].append(unbench_scores(original, tokenizer, seed, sizes["unbench"]))
            log(f"[b9] prompting seed={seed}: {rows['prompting'][-1]}")
            if retrained is not None:
                rows["oracle"].append(unbench_scores(retrained, tokenizer, seed, sizes["unbench"], conditions=("baseline",))["baseline"])
                log(f"[b9] oracle seed={seed}: {rows['oracle'][-1]}")
            if save is not None:
                save(out)
            for name in methods:
                model, seconds = unlearn(original, tokenizer, method_settings(name), seed, log)
                scores = unbench_scores(model, tokenizer, seed, sizes["unbench"], conditions=("baseline",))["baseline"]
                rows[name].append({**scores, "seconds": seconds})
                log(f"[b9] {name} seed={seed}: {scores}")
                del model
                if save is not None:  # after every unlearned model: a long seed keeps what it measured
                    save(out)
        del retrained
    if "safety" in parts:
        rows = {"original": [], "safety_sft": [], **{m: [] for m in SAFETY_METHODS}}
        for seed in seeds:
            rows["original"].append(safety_eval(original, tokenizer, seed, sizes["safety"], keep_answers=3))
            model, seconds = safety_sft(original, tokenizer, seed, log=log)
            rows["safety_sft"].append({**safety_eval(model, tokenizer, seed, sizes["safety"], keep_answers=3), "seconds": seconds})
            del model
            for name in SAFETY_METHODS:
                model, seconds = unlearn(original, tokenizer, method_settings(name), seed, log)
                rows[name].append({**safety_eval(model, tokenizer, seed, sizes["safety"], keep_answers=3), "seconds": seconds})
                del model
            log(f"[b9] safety seed={seed}: " + ", ".join(f"{k}: asr {v[-1]['asr']:.2f} attack {v[-1]['asr_attack']:.2f} rr {v[-1]['rr']:.2f}" for k, v in rows.items()))
            out["safety"] = rows
            if save is not None:
                save(out)
    return out


#: The tuning seed (never reported) and its evaluation size (test images per class) for each part.
TUNING_SEED = 99
TUNING_PER_CLASS = {"unbench": 8, "safety": 2}


def tune(candidates, log=print, original=None, tokenizer=None) -> list[dict[str, Any]]:
    """Score candidate settings on :data:`TUNING_SEED`. Each candidate is ``{"config": "<fashion_vqa config>",
    "init_args": {...}, "data": {...}, "lr": ..., "max_steps": ...}`` (``init_args``/``data`` update the config's,
    the rest replaces its settings); a class-forgetting config is scored on the four-choice questions (baseline
    prompt), a ``+safety`` one on Safety Mirage's metrics. Returns one record per candidate, after the original's
    scores (per part). ``original``/``tokenizer`` default to the cached B9 original."""
    if original is None:
        original, tokenizer, _ = original_vlm(log=log)

    def part_of(config: str) -> str:
        return "safety" if config.endswith("+safety") else "unbench"

    def score(model, part: str) -> dict[str, float]:
        per_class = TUNING_PER_CLASS[part]
        if part == "unbench":
            return unbench_scores(model, tokenizer, TUNING_SEED, per_class, conditions=("baseline",))["baseline"]
        scores = safety_eval(model, tokenizer, TUNING_SEED, per_class)
        return {k: scores[k] for k in SAFETY_KEYS}

    def record(part: str, **entries: Any) -> dict[str, Any]:
        return {"part": part, "seed": TUNING_SEED, "per_class": TUNING_PER_CLASS[part], **entries}

    parts = sorted({part_of(c["config"]) for c in candidates}, reverse=True)
    records = [record(part, name="original", scores=score(original, part)) for part in parts]
    for candidate in candidates:
        candidate = dict(candidate)
        name = candidate.pop("config")
        settings = method_settings(name)
        for key in ("init_args", "data"):
            settings[key].update(candidate.pop(key, {}))
        settings.update(candidate)
        model, seconds = unlearn(original, tokenizer, settings, TUNING_SEED, log)
        scores = score(model, part_of(name))
        del model
        log(f"[b9] tune {name} {settings['init_args']} lr={settings['lr']} steps={settings['max_steps']}: {scores}")
        settings.pop("data")
        records.append(record(part_of(name), config=name, settings=settings, scores=scores, seconds=seconds))
    return records


def merge(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One :func:`run` result from several (e.g. one seed per process): each part's rows are concatenated in order,
    the seeds listed once each (a seed in two results is an error: it would count twice). A result saved before its
    run finished (:func:`run` saves after every seed) counts only the seeds it has rows for."""
    if not results:
        raise ValueError("`results` should hold at least one run result, got none.")
    seeds: list[int] = []
    for result in results:
        done = max((len(rows) for part in ("unbench", "safety") for rows in result.get(part, {}).values()), default=0)
        for seed in result.get("seeds", [])[:done]:
            if seed in seeds:
                raise ValueError(f"Seed {seed} is in more than one result; merge results of distinct seeds.")
            seeds.append(seed)
    out: dict[str, Any] = {k: v for k, v in results[0].items() if k not in ("unbench", "safety", "seeds", "command")}
    out["seeds"] = seeds
    for part in ("unbench", "safety"):
        parts = [r[part] for r in results if part in r]
        if parts:
            names = list(dict.fromkeys(name for p in parts for name in p))  # every result's methods, in order
            out[part] = {name: [row for p in parts for row in p.get(name, [])] for name in names}
    return out


def _pm(values) -> str:
    mean, std = benchmarking.mean_std([100 * v for v in values])
    return benchmarking.fmt_pm(mean, std, digits=1)


def tables(result: dict[str, Any]) -> str:
    """Markdown tables of a :func:`run` result (percentages, mean ± std over the ``n`` seeds each row has)."""
    parts = []
    if "unbench" in result:

        def row(label: str, runs) -> list[str]:
            return [f"{label} (n={len(runs)})"] + [_pm([r[k] for r in runs]) for k in ("forget_macro", "forget_micro", "retain", "invalid")] + [
                f"{benchmarking.mean_std([r['forget_entropy'] for r in runs])[0]:.2f}"
            ]

        prompting = result["unbench"]["prompting"]
        rows = [row(f"prompt: {condition}", [r[condition] for r in prompting]) for condition in prompting[0]]
        for name in ("oracle", *UNBENCH_METHODS):
            runs = result["unbench"].get(name) or []
            if runs:
                rows.append(row("oracle: retrained without " + " & ".join(map(str, FORGET_CLASSES)) if name == "oracle" else f"unlearn: {name}", runs))
        header = ["model / condition", "forget macro %", "forget micro %", "retain %", "invalid %", "forget entropy (bits)"]
        parts.append(benchmarking.markdown_table(header, rows))
    if "safety" in result:
        rows = []
        for name, runs in result["safety"].items():
            rows.append([f"{name} (n={len(runs)})"] + [_pm([r[k] for r in runs]) for k in SAFETY_KEYS])
        header = ["model", "ASR %", "ASR after 3-shot attack %", "unsafe refused %", "RR (benign refused) %", "RR on benign 'How' %", "VQA 4-choice %"]
        parts.append(benchmarking.markdown_table(header, rows))
    return "\n\n".join(parts)
