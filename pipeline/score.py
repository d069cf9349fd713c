"""Zero-shot scoring: prompts → label matrix, image embeddings → per-label scores.

Numpy only. Text is embedded once per prompt set through the ``embed_texts``
callable the caller passes in, so this module never touches the model.

Two modes:
  * ``softmax`` — labels are mutually exclusive classes; each frame's scores
    sum to 1 across the tag labels (the classic CLIP classifier).
  * ``binary`` — each label is an independent concept ("a coffee cup
    appears"), scored as a softmax of the label against its own negatives plus
    a shared background set.
NSFW labels are always binary, against the config's ``nsfw.safe`` prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.config import Config, LabelConfig
from pipeline.types import ConfigError

EmbedTexts = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Classifier:
    """Everything needed to score image embeddings, precomputed once.

    Attributes:
        names: label names, tags first then NSFW labels.
        kinds: ``"tag"`` or ``"nsfw"`` per label.
        label_matrix: L x D, one normalised prompt-ensemble vector per label.
        negatives: per label, K x D negatives for binary scoring (empty for
            softmax-mode tags).
        softmax_group: indices of labels scored together by softmax.
        logit_scale: the model's temperature (CLIP: 100).
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    label_matrix: np.ndarray
    negatives: tuple[np.ndarray, ...]
    softmax_group: tuple[int, ...]
    logit_scale: float


def ensemble(embed_texts: EmbedTexts, prompts: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """Mean of the normalised template × prompt embeddings, normalised again
    (open_clip's ``build_zero_shot_classifier``)."""
    texts = [t.format(p) for p in prompts for t in templates]
    vectors = embed_texts(texts)
    return _unit(vectors.mean(axis=0))


def build_classifier(config: Config, embed_texts: EmbedTexts, logit_scale: float) -> Classifier:
    """Embed every prompt of the config once and assemble the classifier."""
    templates = config.scoring.templates
    binary = config.scoring.mode == "binary"
    embed_texts = _embedded_once(embed_texts, prompt_texts(config))
    background, safe = (_embed_plain(embed_texts, s) for s in _plain_sentences(config))

    rows, negatives, kinds, names = [], [], [], []
    for label in config.labels:
        rows.append(ensemble(embed_texts, label.prompt_list, templates))
        negatives.append(_negatives(embed_texts, label, templates, background) if binary
                         else np.zeros((0, rows[-1].shape[0]), np.float32))
        kinds.append("tag")
        names.append(label.name)
    for label in config.nsfw.labels:
        rows.append(ensemble(embed_texts, label.prompt_list, templates))
        negatives.append(_negatives(embed_texts, label, templates, safe))
        kinds.append("nsfw")
        names.append(label.name)

    group = () if binary else tuple(range(len(config.labels)))
    return Classifier(tuple(names), tuple(kinds), np.stack(rows).astype(np.float32),
                      tuple(negatives), group, float(logit_scale))


def prompt_texts(config: Config) -> list[str]:
    """Every text ``build_classifier`` will embed, so one model call (or one
    cache lookup) does them all."""
    templates = config.scoring.templates
    names = [p for lab in config.labels + config.nsfw.labels for p in lab.prompt_list + lab.negatives]
    background, safe = _plain_sentences(config)
    return [t.format(p) for p in names for t in templates] + background + safe


def _plain_sentences(config: Config) -> tuple[list[str], list[str]]:
    """The untemplated sentences a config scores with: the background (binary
    mode only: softmax-mode tags compare with each other) and the NSFW safe
    prompts (only when there are NSFW labels)."""
    background = list(config.scoring.background) if config.scoring.mode == "binary" else []
    return background, list(config.nsfw.safe) if config.nsfw.labels else []


def _embedded_once(embed_texts: EmbedTexts, texts: list[str]) -> EmbedTexts:
    """Embed ``texts`` in one call; the returned callable looks them up.

    One call instead of one per label: the text tower's per-call overhead
    dominated re-scoring from the store. The embedder splits the call into
    bounded batches (``embed.TEXT_BATCH``) and the config caps how many texts
    there are (``config.MAX_SENTENCES``), so memory stays bounded."""
    unique = list(dict.fromkeys(texts))
    table = dict(zip(unique, embed_texts(unique))) if unique else {}

    def lookup(batch: list[str]) -> np.ndarray:
        missing = [t for t in batch if t not in table]
        if missing:  # not expected; stay correct anyway
            table.update(zip(missing, embed_texts(missing)))
        return np.stack([table[t] for t in batch])

    return lookup


def score(classifier: Classifier, image_embeddings: np.ndarray) -> np.ndarray:
    """Score N normalised image embeddings → N x L array of probabilities."""
    emb = np.asarray(image_embeddings, dtype=np.float32)
    logits = classifier.logit_scale * emb @ classifier.label_matrix.T
    out = np.empty_like(logits)
    group = list(classifier.softmax_group)
    if group:
        out[:, group] = softmax(logits[:, group], axis=1)
    for idx in range(len(classifier.names)):
        if idx in classifier.softmax_group:
            continue
        neg_logits = classifier.logit_scale * emb @ classifier.negatives[idx].T
        both = np.concatenate([logits[:, idx:idx + 1], neg_logits], axis=1)
        out[:, idx] = softmax(both, axis=1)[:, 0]
    return out


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def _negatives(embed_texts: EmbedTexts, label: LabelConfig, templates: Sequence[str],
               shared: np.ndarray) -> np.ndarray:
    own = [ensemble(embed_texts, [neg], templates) for neg in label.negatives]
    parts = ([np.stack(own)] if own else []) + ([shared] if len(shared) else [])
    if not parts:
        raise ConfigError(f"labels: {label.name!r} has no negatives and scoring.background is empty")
    return np.concatenate(parts).astype(np.float32)


def _embed_plain(embed_texts: EmbedTexts, sentences: Sequence[str]) -> np.ndarray:
    """Whole sentences (background / safe prompts) are embedded without templates."""
    if not sentences:
        return np.zeros((0, 0), np.float32)
    return embed_texts(list(sentences)).astype(np.float32)


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)
