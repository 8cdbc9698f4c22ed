"""B9's protocol functions (lightning_unlearn.benchmarking.b9) on the tiny VLM: settings from the configs, unlearning,
safety fine-tuning, both harnesses' scores, the tables — and that a finished fit frees its optimizer state."""

from __future__ import annotations

import copy
import gc

import pytest
import torch
from vlm_toys import tiny_vlm, vlm_tokenizer

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import b9

TINY_DATA = {"per_class": 2, "test_per_class": 1, "batch_size": 4, "retain_batch_size": 4}


@pytest.fixture(scope="module")
def original():
    benchmarking.quiet_lightning()
    return tiny_vlm().eval()


def tiny_settings(name: str, **init_args) -> dict:
    settings = b9.method_settings(name)
    settings["init_args"].update(init_args)
    return {**settings, "lr": 1e-3, "max_steps": 2, "data": {**settings["data"], **TINY_DATA}}


@pytest.mark.parametrize("name", [*b9.UNBENCH_METHODS, *b9.SAFETY_METHODS])
def test_method_settings_come_from_the_configs(name):
    settings = b9.method_settings(name)
    assert settings["class_path"].startswith("lightning_unlearn.methods.")
    assert settings["lr"] > 0 and settings["max_steps"] > 0
    forget = settings["data"]["forget"]
    assert forget == ("unsafe" if name.endswith("+safety") else "classes")
    assert not {"tokenizer", "collate_fn", "image_token_id"} & set(settings["data"])


def optimizers_holding(model: torch.nn.Module) -> int:
    """How many live optimizers (found through the garbage collector) hold a parameter of ``model``."""
    ids = {id(p) for p in model.parameters()}
    live = [o for o in gc.get_objects() if isinstance(o, torch.optim.Optimizer)]
    return sum(any(id(p) in ids for group in o.param_groups for p in group["params"]) for o in live)


def test_unlearn_changes_a_copy_and_frees_the_optimizer(original):
    """Regression: each finished fit kept its trainer, module and AdamW state alive in reference cycles until the
    next cyclic collection, so a 3-seed run grew by ~2 GB per unlearned copy and was OOM-killed."""
    kept = {k: v.clone() for k, v in original.state_dict().items()}
    for seed in (0, 1):
        model, seconds = b9.unlearn(original, vlm_tokenizer(), tiny_settings("graddiff"), seed, log=lambda *a: None)
        assert seconds > 0 and not model.training
        assert optimizers_holding(model) == 0  # no gc.collect() here: the fit's AdamW must already be gone
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, kept[k])]
        assert changed and all(not k.startswith("vision") for k in changed)  # the tower stays frozen
        del model
    assert all(torch.equal(v, kept[k]) for k, v in original.state_dict().items())  # the original is untouched


@pytest.mark.parametrize("name", ["simnpo", "idk_dpo", "asu"])
def test_unlearn_runs_the_added_part_one_configs(original, name):
    """IdK-DPO needs the IdK refusals as its preferred answers: its config's collator alternatives reach b9.unlearn."""
    settings = tiny_settings(name)
    assert ("idk" in settings["alternatives"]) == (name == "idk_dpo")
    model, _ = b9.unlearn(original, vlm_tokenizer(), settings, 0, log=lambda *a: None)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, original.state_dict()[k])]
    assert changed and all(not k.startswith("vision") for k in changed)


def test_run_refuses_an_unknown_or_repeated_method():
    with pytest.raises(ValueError, match="methods.*graddiff.*'bogus'"):
        b9.run(seeds=(0,), quick=True, parts=("unbench",), methods=("npo", "bogus"))
    for methods in (("npo", "npo"), "npo"):  # a repeat would train twice and count its rows twice; a bare string
        with pytest.raises(ValueError, match="distinct names"):
            b9.run(seeds=(0,), quick=True, parts=("unbench",), methods=methods)


def test_unbench_and_safety_scores_and_tables(original):
    tok = vlm_tokenizer()
    rmu, _ = b9.unlearn(original, tok, tiny_settings("rmu", layer=1), 0, log=lambda *a: None)
    sft, _ = b9.safety_sft(original, tok, 0, recipe={"per_class": 2, "steps": 2, "batch_size": 4}, log=lambda *a: None)
    unbench = {"prompting": [b9.unbench_scores(original, tok, 0, 1)], "rmu": [b9.unbench_scores(rmu, tok, 0, 1, conditions=("baseline",))["baseline"]]}
    assert set(unbench["prompting"][0]) == {"baseline", "soft", "medium", "oracle_hard", "oracle_reverse"}
    for scores in [*unbench["prompting"][0].values(), unbench["rmu"][0]]:
        assert all(0.0 <= scores[k] <= 1.0 for k in ("forget_macro", "forget_micro", "retain", "invalid"))
    safety = {name: [b9.safety_eval(model, tok, 0, 1)] for name, model in (("original", original), ("safety_sft", sft))}
    for scores in (s[0] for s in safety.values()):
        assert all(0.0 <= scores[k] <= 1.0 for k in ("asr", "asr_attack", "refusal", "rr", "rr_how", "vqa"))
    text = b9.tables({"unbench": unbench, "safety": safety})
    assert "| prompt: oracle_reverse (n=1) |" in text and "| unlearn: rmu (n=1) |" in text
    assert "| safety_sft (n=1) |" in text and "RR on benign 'How' %" in text


def test_tune_scores_candidates_on_the_tuning_seed(original):
    candidates = [
        {"config": "graddiff", "init_args": {"retain_weight": 5.0}, "data": TINY_DATA, "lr": 1e-3, "max_steps": 1},
        {"config": "npo+safety", "data": TINY_DATA, "lr": 1e-3, "max_steps": 1},
    ]
    records = b9.tune(candidates, log=lambda *a: None, original=original, tokenizer=vlm_tokenizer())
    assert [(r["part"], r.get("name", r.get("config"))) for r in records] == [
        ("unbench", "original"), ("safety", "original"), ("unbench", "graddiff"), ("safety", "npo+safety")
    ]
    assert all(r["seed"] == b9.TUNING_SEED == 99 for r in records)
    graddiff = records[2]
    assert graddiff["settings"]["init_args"] == {"retain_weight": 5.0} and graddiff["settings"]["lr"] == 1e-3
    assert set(graddiff["scores"]) == {"forget_macro", "forget_micro", "retain", "invalid", "forget_entropy"}
    assert set(records[3]["scores"]) == {"asr", "asr_attack", "refusal", "rr", "rr_how", "vqa"}
    assert candidates[0]["config"] == "graddiff"  # the caller's candidates are not consumed


def test_the_oracle_is_the_originals_recipe_without_the_forget_classes(monkeypatch, tmp_path):
    """Both stages of the oracle train on every class but 7 and 8, the original's on all ten; the two are cached apart
    and the original's cache key is the one it had before the oracle existed (no ``without_classes`` in it)."""
    import json

    monkeypatch.setenv("LIGHTNING_UNLEARN_CACHE", str(tmp_path))
    monkeypatch.setattr(b9, "build_vlm", lambda image_size: (tiny_vlm(), vlm_tokenizer()))
    monkeypatch.setattr(b9, "STAGE2_RECIPE", {**b9.STAGE2_RECIPE, "per_class": 2, "steps": 1})
    seen, fine_tune = [], b9.fine_tune

    def spy(model, tokenizer, data, recipe, seed, callbacks=()):
        seen.append({int(e["label"]) for e in data.examples})
        fine_tune(model, tokenizer, data, recipe, seed, callbacks)

    monkeypatch.setattr(b9, "fine_tune", spy)
    tiny = {"per_class": 2, "steps": 1, "batch_size": 4}
    quiet = lambda *a: None  # noqa: E731
    b9.original_vlm(recipe=tiny, log=quiet)
    oracle, _, info = b9.oracle_vlm(recipe=tiny, log=quiet)
    assert seen == [set(range(10))] * 2 + [set(range(10)) - {7, 8}] * 2
    assert not info["cached"] and info["config"]["without_classes"] == [7, 8]
    metas = {f.name.split("-")[0]: json.loads(f.read_text()) for f in (tmp_path / "b9").glob("*.json")}
    assert set(metas) == {"original", "original2", "oracle", "oracle2"}
    assert set(metas["original2"]["config"]) == {"version", "recipe", "stage2", "seed"}
    again, _, info = b9.oracle_vlm(recipe=tiny, log=quiet)
    assert info["cached"] and len(seen) == 4
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in oracle.state_dict().items())
    for bad in ((10,), tuple(range(10))):
        with pytest.raises(ValueError, match="without_classes"):
            b9.original_vlm(recipe=tiny, log=quiet, without_classes=bad)


def test_run_scores_the_oracle_beside_the_prompts(original, monkeypatch):
    tok = vlm_tokenizer()
    monkeypatch.setattr(b9, "original_vlm", lambda log=print: (original, tok, {"seconds": 1.0}))
    monkeypatch.setattr(b9, "oracle_vlm", lambda log=print: (tiny_vlm(seed=1).eval(), tok, {"seconds": 2.0}))
    saved = []
    result = b9.run(seeds=(0, 1), quick=True, parts=("unbench",), methods=(), oracle=True, log=lambda *a: None, save=lambda r: saved.append(copy.deepcopy(r)))
    assert result["oracle"] == {"seconds": 2.0} and list(result["unbench"]) == ["prompting", "oracle"]
    assert [len(s["unbench"]["oracle"]) for s in saved] == [1, 2]  # saved as each seed's rows come in
    assert len(result["unbench"]["oracle"]) == 2 and result["unbench"]["oracle"][0] != result["unbench"]["prompting"][0]["baseline"]
    assert "| oracle: retrained without 7 & 8 (n=2) |" in b9.tables(result)


def test_merge_concatenates_distinct_seeds():
    row = {"forget_macro": 0.5, "forget_micro": 0.5, "retain": 0.6, "invalid": 0.0, "forget_entropy": 0.3}
    a = {"seeds": [0, 1], "quick": True, "command": "a", "unbench": {"prompting": [{"baseline": row}] * 2, "npo": [row, row]}}
    b = {"seeds": [2], "quick": True, "command": "b", "unbench": {"prompting": [{"baseline": row}], "npo": [{**row, "retain": 0.9}]},
         "safety": {"original": [{"asr": 1.0}]}}  # fmt: skip
    merged = b9.merge([a, b])
    assert merged["seeds"] == [0, 1, 2] and merged["quick"] is True and "command" not in merged
    assert [r["retain"] for r in merged["unbench"]["npo"]] == [0.6, 0.6, 0.9] and len(merged["unbench"]["prompting"]) == 3
    assert merged["safety"] == {"original": [{"asr": 1.0}]}
    assert "| unlearn: npo (n=3) |" in b9.tables({"unbench": merged["unbench"]})
    unfinished = {**a, "seeds": [0, 1, 2]}  # saved after its second seed, then stopped
    assert b9.merge([unfinished, b])["seeds"] == [0, 1, 2]
    with pytest.raises(ValueError, match="Seed 1 is in more than one result"):
        b9.merge([a, {**b, "seeds": [1]}])
    with pytest.raises(ValueError, match="at least one"):
        b9.merge([])
    more = {"seeds": [3], "unbench": {"prompting": [{"baseline": row}], "simnpo": [row]}}  # run with other --methods
    assert list(b9.merge([a, more])["unbench"]) == ["prompting", "npo", "simnpo"]


def test_the_runs_seed_replaces_the_configs_for_methods_and_seeded_alternatives():
    from lightning_unlearn.methods import IdkAnswers

    method = b9._instance({"class_path": "lightning_unlearn.methods.NPO", "init_args": {"beta": 0.2}}, 7, seeded=True)
    assert method.seed == 7 and method.beta == 0.2
    refusals = b9._instance({"class_path": "lightning_unlearn.methods.IdkAnswers", "init_args": {"seed": 0}}, 3)
    assert isinstance(refusals, IdkAnswers) and refusals.seed == 3
    # an alternative whose spec sets no seed is built as written (its default), not probed for one
    assert b9._instance({"class_path": "lightning_unlearn.methods.IdkAnswers"}, 3).seed == 0
