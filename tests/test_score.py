"""Scoring: prompt ensembles, softmax and binary modes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from pipeline.analysis.score import build_classifier, ensemble, score
from pipeline.config import parse_config
from pipeline.types import ConfigError


def fake_embed_texts(texts):
    """Deterministic text 'model': a fixed unit vector per distinct text."""
    out = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
        rng = np.random.default_rng(seed)
        v = rng.normal(size=32)
        out.append(v / np.linalg.norm(v))
    return np.array(out, np.float32)


def config(mode="softmax", **extra):
    data = {"labels": [{"name": "cat"}, {"name": "dog"}, {"name": "car"}],
            "scoring": {"mode": mode, "templates": ["a photo of {}."]}}
    data.update(extra)
    return parse_config(data)


def test_ensemble_is_normalised_mean_of_templates():
    vec = ensemble(fake_embed_texts, ["cat"], ["a photo of {}.", "a {}"])
    expected = fake_embed_texts(["a photo of cat.", "a cat"]).mean(0)
    np.testing.assert_allclose(vec, expected / np.linalg.norm(expected), atol=1e-6)


def test_softmax_mode_rows_sum_to_one_and_pick_the_matching_label():
    clf = build_classifier(config(), fake_embed_texts, logit_scale=100.0)
    probs = score(clf, clf.label_matrix)  # each label's own vector as the "image"
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert list(probs.argmax(1)) == [0, 1, 2]


def test_binary_mode_scores_labels_independently():
    clf = build_classifier(config("binary"), fake_embed_texts, logit_scale=100.0)
    both = clf.label_matrix[0] + clf.label_matrix[1]
    probs = score(clf, (both / np.linalg.norm(both))[None])
    assert probs[0, 0] > 0.5 and probs[0, 1] > 0.5 and probs[0, 2] < 0.5


def test_nsfw_labels_are_binary_against_safe_prompts():
    cfg = config(nsfw={"labels": [{"name": "gore"}], "safe": ["a nice photo."]})
    clf = build_classifier(cfg, fake_embed_texts, logit_scale=100.0)
    assert clf.kinds == ("tag", "tag", "tag", "nsfw")
    probs = score(clf, clf.label_matrix[3:4])
    assert probs[0, 3] > 0.99
    np.testing.assert_allclose(probs[0, :3].sum(), 1.0, atol=1e-5)  # tags stay a softmax group


def test_binary_without_any_negative_is_a_config_error():
    with pytest.raises(ConfigError, match="scoring.background"):
        build_classifier(config("binary", scoring={"mode": "binary", "background": []}),
                         fake_embed_texts, 100.0)


def test_all_prompts_are_embedded_in_one_model_call():
    calls = []

    def counting(texts):
        calls.append(list(texts))
        return fake_embed_texts(texts)

    cfg = config("binary", nsfw={"labels": [{"name": "gore", "negatives": ["paint"]}]})
    batched = build_classifier(cfg, counting, logit_scale=100.0)
    assert len(calls) == 1 and len(calls[0]) == len(set(calls[0]))
    one_by_one = build_classifier(cfg, fake_embed_texts, logit_scale=100.0)
    np.testing.assert_allclose(batched.label_matrix, one_by_one.label_matrix, atol=1e-6)


def test_softmax_mode_embeds_only_what_it_scores_with():
    """Exclusive labels compare with each other: the binary-mode background
    sentences would be text-tower work for nothing."""
    calls = []

    def counting(texts):
        calls.extend(texts)
        return fake_embed_texts(texts)

    build_classifier(config("softmax"), counting, logit_scale=100.0)
    assert sorted(calls) == ["a photo of car.", "a photo of cat.", "a photo of dog."]
    calls.clear()
    build_classifier(config("binary"), counting, logit_scale=100.0)
    assert set(config("binary").scoring.background) <= set(calls)
