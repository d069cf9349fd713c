"""Zero-shot scoring: prompts → label matrix, image embeddings → per-label scores.

Numpy only. Text is embedded once per prompt set through the ``embed_texts``
callable the caller passes in, so this module never touches the model.

Three rules (``scoring.mode``; ``auto`` and ``independent`` resolve to one of
them by the model's native rule, see :func:`resolve_mode`):
  * ``softmax`` — labels are mutually exclusive classes, scored as CLIP was
    trained: a softmax of ``logit_scale·cos`` across the tag labels. With
    ``scoring.background`` the background sentences join the softmax as one
    implicit *none of these* class (never reported), so a frame that shows
    no label scores low for every label.
  * ``binary`` — each label is an independent concept ("a coffee cup
    appears"), scored as a softmax of the label against its own negatives plus
    a shared background set.
  * ``sigmoid`` — each label is an independent probability,
    ``sigmoid(logit_scale·cos + logit_bias)``, as SigLIP was trained (and as
    transformers' zero-shot pipeline scores it). Negatives, background and
    safe prompts are not used.
NSFW labels are binary against the config's ``nsfw.safe`` prompts, except
under ``sigmoid``, where they are sigmoids like the tags.

Labels from example pictures (``labels[].images``): the label's vector is
``normalise((1 - w) * text + w * image_mean)`` (``LabelConfig.image_weight_used``).
A label's ``negative_images`` give one vector, the normalised mean of their
embeddings: under ``binary`` (and for NSFW labels scored binary) it is one more
negative of that label; under ``softmax`` it is one more implicit *none of
these* class, scored with the labels and never reported; under ``sigmoid``
negatives are not used, so it is ignored (with a warning).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.config import Config, LabelConfig
from pipeline.types import ConfigError

log = logging.getLogger(__name__)

EmbedTexts = Callable[[list[str]], np.ndarray]
# example picture paths -> their normalised embeddings (the model, or a cache)
EmbedPictures = Callable[[list[str]], np.ndarray]
RULES = ("softmax", "binary", "sigmoid")


@dataclass(frozen=True)
class Classifier:
    """Everything needed to score image embeddings, precomputed once.

    Attributes:
        names: label names, tags first then NSFW labels.
        kinds: ``"tag"`` or ``"nsfw"`` per label.
        label_matrix: L x D, one normalised prompt-ensemble vector per label.
        negatives: per label, K x D negatives for binary scoring (empty for
            softmax- and sigmoid-scored labels).
        softmax_group: indices of labels scored together by softmax.
        logit_scale: the model's temperature, exponentiated (CLIP: 100).
        mode: the rule the tags are scored by: ``softmax``, ``binary`` or
            ``sigmoid`` (``auto`` already resolved).
        logit_bias: added to every logit under ``sigmoid`` (SigLIP's learnt
            bias; 0.0 for CLIP). A softmax is unchanged by it.
        none_vector: 0..K x D: the *none of these* classes of a softmax (the
            background sentences' mean, then each label's negative pictures'
            mean), scored in the softmax and not reported.
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    label_matrix: np.ndarray
    negatives: tuple[np.ndarray, ...]
    softmax_group: tuple[int, ...]
    logit_scale: float
    mode: str = "softmax"
    logit_bias: float = 0.0
    none_vector: np.ndarray | None = None


def resolve_mode(config: Config, native_rule: str = "softmax") -> str:
    """The rule ``config`` scores by with a model whose native rule is
    ``native_rule`` (``"softmax"`` or ``"sigmoid"``).

    ``auto``: the native rule, except that a softmax-trained model with a
    single label gets ``binary`` (a softmax over one label is always 1.0).
    ``independent``: each label its own yes/no: ``sigmoid`` for
    sigmoid-trained models, ``binary`` otherwise.
    """
    mode = config.scoring.mode
    if mode in RULES:
        if mode == "sigmoid" and native_rule != "sigmoid":
            log.warning("scoring.mode sigmoid on a softmax-trained model: it has no logit bias, so "
                        "every label scores near 1.0; use auto, softmax or binary")
        return mode
    if native_rule == "sigmoid":
        return "sigmoid"
    if mode == "auto" and len(config.labels) > 1:
        return "softmax"
    return "binary"


def ensemble(embed_texts: EmbedTexts, prompts: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """Mean of the normalised template × prompt embeddings, normalised again
    (open_clip's ``build_zero_shot_classifier``)."""
    texts = [t.format(p) for p in prompts for t in templates]
    vectors = embed_texts(texts)
    return _unit(vectors.mean(axis=0))


def build_classifier(config: Config, embed_texts: EmbedTexts, logit_scale: float, *,
                     logit_bias: float = 0.0, native_rule: str = "softmax",
                     embed_pictures: EmbedPictures | None = None) -> Classifier:
    """Embed every prompt (and example picture) of the config once and
    assemble the classifier.

    Args:
        config: labels, templates and ``scoring.mode``.
        embed_texts: texts → normalised vectors (the model, or a cache).
        logit_scale: the model's exponentiated logit scale.
        logit_bias: the model's logit bias (SigLIP; 0.0 for CLIP).
        native_rule: the model's own rule, ``"softmax"`` or ``"sigmoid"``
            (``Embedder.scoring_rule``); resolves ``auto``.
        embed_pictures: picture paths → normalised vectors; needed when a
            label has ``images`` or ``negative_images``.

    Raises:
        ConfigError: a binary label with no negative to compare with.
    """
    mode = resolve_mode(config, native_rule)
    templates = config.scoring.templates
    embed_texts = _embedded_once(embed_texts, prompt_texts(config))
    pictures = _pictures_once(embed_pictures, config)
    background, safe = (_embed_plain(embed_texts, s) for s in _plain_sentences(config, mode))

    rows, negatives, kinds, names, nones = [], [], [], [], []
    for kind, labels, shared in (("tag", config.labels, background), ("nsfw", config.nsfw.labels, safe)):
        binary = mode == "binary" if kind == "tag" else mode != "sigmoid"
        for label in labels:
            rows.append(label_vector(embed_texts, pictures, label, templates))
            negative_picture = _picture_mean(pictures, label.negative_images)
            negatives.append(_negatives(embed_texts, label, templates, shared, negative_picture) if binary
                             else np.zeros((0, rows[-1].shape[0]), np.float32))
            if kind == "tag" and mode == "softmax" and negative_picture is not None:
                nones.append(negative_picture)
            kinds.append(kind)
            names.append(label.name)
    _warn_unused_pictures(config, mode)
    group = tuple(range(len(config.labels))) if mode == "softmax" else ()
    if mode == "softmax" and len(background):
        nones.insert(0, _unit(background.mean(axis=0)))
    none = np.stack(nones).astype(np.float32) if nones else None
    return Classifier(tuple(names), tuple(kinds), np.stack(rows).astype(np.float32),
                      tuple(negatives), group, float(logit_scale), mode=mode,
                      logit_bias=float(logit_bias), none_vector=none)


def label_vector(embed_texts: EmbedTexts, pictures: EmbedPictures, label: LabelConfig,
                 templates: Sequence[str]) -> np.ndarray:
    """``normalise((1 - w) * text + w * image_mean)``, ``w`` =
    ``label.image_weight_used`` (text alone without images, pictures alone
    without prompts)."""
    weight = label.image_weight_used
    image = _picture_mean(pictures, label.images)
    if image is None or weight == 0.0:
        return ensemble(embed_texts, label.prompt_list, templates)
    if weight == 1.0:
        return image
    text = ensemble(embed_texts, label.prompt_list, templates)
    return _unit((1.0 - weight) * text + weight * image)


def _picture_mean(pictures: EmbedPictures, paths: Sequence[str]) -> np.ndarray | None:
    """The normalised mean of the pictures' embeddings (None for no pictures)."""
    if not paths:
        return None
    return _unit(np.asarray(pictures(list(paths)), np.float32).mean(axis=0))


def _pictures_once(embed_pictures: EmbedPictures | None, config: Config) -> EmbedPictures:
    """Every picture of the config embedded in one call, then looked up."""
    paths = picture_paths(config)
    if not paths:
        return lambda batch: np.zeros((0, 0), np.float32)
    if embed_pictures is None:
        raise ValueError("the config has example pictures: build_classifier needs embed_pictures")
    table = dict(zip(paths, np.asarray(embed_pictures(paths), np.float32)))
    return lambda batch: np.stack([table[p] for p in batch])


def picture_paths(config: Config) -> list[str]:
    """Every example picture of the config (``images`` and ``negative_images``), once each."""
    return list(dict.fromkeys(p for lab in config.labels + config.nsfw.labels
                              for p in lab.images + lab.negative_images))


def _warn_unused_pictures(config: Config, mode: str) -> None:
    unused = [lab.name for lab in config.labels + config.nsfw.labels if lab.negative_images]
    if mode == "sigmoid" and unused:
        log.warning("scoring by sigmoid uses no negatives: negative_images of %s are ignored",
                    ", ".join(repr(n) for n in unused))


def prompt_texts(config: Config) -> list[str]:
    """Every text ``build_classifier`` may embed (whatever the mode resolves
    to), so one model call (or one cache lookup) does them all."""
    templates = config.scoring.templates
    names = [p for lab in config.labels + config.nsfw.labels for p in lab.prompt_list + lab.negatives]
    background = list(config.scoring.background)
    safe = list(config.nsfw.safe) if config.nsfw.labels else []
    return [t.format(p) for p in names for t in templates] + background + safe


def _plain_sentences(config: Config, mode: str) -> tuple[list[str], list[str]]:
    """The untemplated sentences ``mode`` scores with: the background (binary
    negatives, or a softmax's none class) and the NSFW safe prompts (only
    when there are NSFW labels). A sigmoid needs neither."""
    if mode == "sigmoid":
        return [], []
    return list(config.scoring.background), list(config.nsfw.safe) if config.nsfw.labels else []


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
    if classifier.mode == "sigmoid":
        return sigmoid(logits + classifier.logit_bias)
    out = np.empty_like(logits)
    group = list(classifier.softmax_group)
    if group:
        out[:, group] = _softmax_with_none(classifier, emb, logits[:, group])
    for idx in range(len(classifier.names)):
        if idx in classifier.softmax_group:
            continue
        neg_logits = classifier.logit_scale * emb @ classifier.negatives[idx].T
        both = np.concatenate([logits[:, idx:idx + 1], neg_logits], axis=1)
        out[:, idx] = softmax(both, axis=1)[:, 0]
    return out


def _softmax_with_none(classifier: Classifier, emb: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """The softmax group's probabilities; the none class, when there is one,
    takes its share and is dropped (so the labels' sum is below 1)."""
    none = classifier.none_vector
    if none is None or not len(none):
        return softmax(logits, axis=1)
    with_none = np.concatenate([logits, classifier.logit_scale * emb @ none.T], axis=1)
    return softmax(with_none, axis=1)[:, :logits.shape[1]]


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow for large negative logits."""
    out = np.empty_like(logits)
    pos = logits >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-logits[pos]))
    exp = np.exp(logits[~pos])
    out[~pos] = exp / (1.0 + exp)
    return out


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def _negatives(embed_texts: EmbedTexts, label: LabelConfig, templates: Sequence[str],
               shared: np.ndarray, picture: np.ndarray | None = None) -> np.ndarray:
    own = [ensemble(embed_texts, [neg], templates) for neg in label.negatives]
    own += [picture] if picture is not None else []
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
