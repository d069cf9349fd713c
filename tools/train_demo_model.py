"""Train the tiny offline demo CLIP (``models/scenetag-demo-clip``).

No real CLIP weights can be downloaded on the build machines, so the demo and
the end-to-end tests use a very small ``transformers.CLIPModel`` trained here,
from scratch, on cartoons drawn by ``tools/render_scenes.py``. It knows six
objects (coffee cup, ball, tree, car, house, skull) and four empty
backgrounds; it is useless on real footage.

The tokenizer is a real CLIP byte-level BPE (``vocab.json`` + ``merges.txt``)
whose merges are learned from a small fixed word list, so every caption word
is one token and ``<|endoftext|>`` has the highest id (the CLIP text tower
pools at ``argmax(input_ids)`` under a legacy rule — see DESIGN.md).

Usage:
    python tools/train_demo_model.py --out models/scenetag-demo-clip --steps 1500
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render_scenes as R  # noqa: E402

log = logging.getLogger("train_demo_model")

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LEN = 32
IMAGE_SIZE = 64

# Every word a caption or a sensible prompt may use. Words outside this list
# still tokenize (spelled out in byte pieces) but the model never saw them.
SYNONYMS = {"coffee cup": ("coffee cup", "cup", "mug", "coffee mug"), "car": ("car", "vehicle")}
PREFIXES = ("a photo of", "a picture of", "an image of", "a drawing of", "a cartoon of", "a frame of", "")
EXTRA_WORDS = (
    "a an the of in on with and is there this photo picture image drawing cartoon frame video scene "
    "empty nothing no object background small big large indoor outdoor"
)


def vocabulary_words() -> list[str]:
    """The sorted list of whole words the tokenizer keeps as single tokens."""
    words = set(EXTRA_WORDS.split())
    for name in R.CLASSES:
        words.update(name.split())
    for names in SYNONYMS.values():
        for n in names:
            words.update(n.split())
    words.update(R.BACKGROUNDS)
    words.update(R.COLOURS)
    for p in PREFIXES:
        words.update(p.split())
    return sorted(words)


# --------------------------------------------------------------------------- tokenizer


def _bytes_to_unicode() -> dict[int, str]:
    """OpenAI's byte -> printable-unicode table used by byte-level BPE."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """Plain BPE training until every word (plus ``</w>``) is a single symbol."""
    seqs = [tuple(w[:-1]) + (w[-1] + "</w>",) for w in words]
    merges: list[tuple[str, str]] = []
    while any(len(s) > 1 for s in seqs):
        counts: dict[tuple[str, str], int] = {}
        for s in seqs:
            for pair in zip(s, s[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        best = min(counts, key=lambda p: (-counts[p], p))  # ties broken alphabetically: deterministic
        merges.append(best)
        seqs = [_merge(s, best) for s in seqs]
    return merges


def _merge(seq: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and (seq[i], seq[i + 1]) == pair:
            out.append(seq[i] + seq[i + 1])
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return tuple(out)


def reference_bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """OpenAI ``simple_tokenizer.bpe`` (the algorithm of the old slow tokenizer)."""
    seq = tuple(word[:-1]) + (word[-1] + "</w>",)
    while len(seq) > 1:
        pairs = set(zip(seq, seq[1:]))
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks:
            break
        seq = _merge(seq, best)
    return list(seq)


def write_tokenizer_files(out: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Write ``vocab.json`` and ``merges.txt``; return the vocab and merges."""
    base = list(_bytes_to_unicode().values())
    tokens = base + [c + "</w>" for c in base]
    merges = learn_merges(vocabulary_words())
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    tokens += [BOS, EOS]  # EOS last => highest id (see module docstring)
    vocab = {t: i for i, t in enumerate(tokens)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (out / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return vocab, merges


def build_tokenizer(out: Path):
    """Write the BPE files (vocab.json, merges.txt, tokenizer.json, config) and return the tokenizer.

    vocab.json + merges.txt are what transformers 4.x's slow ``CLIPTokenizer``
    reads; tokenizer.json is what the fast/5.x one prefers.
    """
    from transformers import CLIPTokenizer

    vocab, merges = write_tokenizer_files(out)
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_LEN)
    tok.save_pretrained(out)
    return tok


def check_tokenizer(folder: Path, prompts: list[str]) -> None:
    """Fail loudly unless every loader and the reference BPE agree on ``prompts``."""
    import shutil
    import tempfile

    import regex
    from transformers import AutoTokenizer

    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    ranks = {tuple(line.split()): i for i, line in enumerate(lines) if line}
    pat = regex.compile(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
    )
    auto = AutoTokenizer.from_pretrained(folder)
    with tempfile.TemporaryDirectory() as tmp:  # the same folder without tokenizer.json
        for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
            if (folder / name).exists():
                shutil.copy(folder / name, tmp)
        files_only = AutoTokenizer.from_pretrained(tmp)
    known = set(vocabulary_words()) | {".", ","}
    for p in prompts:
        ref = [vocab[BOS]]
        for piece in pat.findall(p.lower()):
            ref += [vocab[t] for t in reference_bpe(piece, ranks)]
        ref.append(vocab[EOS])
        got_auto, got_files = auto(p)["input_ids"], files_only(p)["input_ids"]
        if not (ref == got_auto == got_files):
            raise AssertionError(f"tokenizers disagree on {p!r}: ref={ref} auto={got_auto} files={got_files}")
        unknown = [w for w in pat.findall(p.lower()) if w not in known]
        if unknown:
            raise AssertionError(f"prompt {p!r} uses words outside the vocabulary: {unknown}")
        if len(ref) != len(pat.findall(p.lower())) + 2:
            raise AssertionError(f"prompt {p!r} does not tokenize to one token per word: {ref}")


# --------------------------------------------------------------------------- data


def random_caption(rng: np.random.Generator, obj: str | None, colour: str | None, bg: str) -> str:
    """A varied caption for one rendered scene (the canonical one is in render_scenes)."""
    prefix = str(rng.choice(PREFIXES))
    if obj is None:
        body = str(rng.choice([f"an empty {bg}", "an empty scene", f"an empty {bg} scene", f"an empty {bg}"]))
    else:
        noun = str(rng.choice(SYNONYMS.get(obj, (obj,)))) if rng.random() < 0.4 else obj
        col = f"{colour} " if colour and rng.random() < 0.5 else ""
        where = (
            f" {'on' if bg == 'street' else 'in'} {rng.choice(['a', 'the'])} {bg}"
            if rng.random() < 0.5
            else ""
        )
        body = f"{R._article(col or noun)} {col}{noun}{where}"
    text = f"{prefix} {body}".strip()
    return text + ("." if rng.random() < 0.6 else "")


def make_example(seed: int, index: int) -> tuple[object, str, int]:
    """Render example ``index`` (label id: class index, or len(CLASSES) for empty)."""
    rng = np.random.default_rng([seed, index])
    label = int(rng.integers(0, len(R.CLASSES) + 1)) if rng.random() < 0.85 else len(R.CLASSES)
    obj = R.CLASSES[label] if label < len(R.CLASSES) else None
    bg = str(rng.choice(R.BACKGROUNDS))
    size = [(320, 240), (320, 240), (256, 256), (320, 180)][int(rng.integers(0, 4))]
    colour = R._pick_colour(rng, obj) if obj else None
    img, _ = R.render_scene(rng, size=size, obj=obj, background=bg, colour=colour)
    img = R.degrade(rng, img)
    return img, random_caption(rng, obj, colour, bg), label


def make_dataset(processor, seed: int, n: int):
    """Pixel tensor (n,3,64,64), captions and labels for ``n`` examples."""
    import torch

    pixels, captions, labels = [], [], []
    for start in range(0, n, 256):
        batch = [make_example(seed, i) for i in range(start, min(n, start + 256))]
        pixels.append(processor(images=[b[0] for b in batch], return_tensors="pt")["pixel_values"])
        captions += [b[1] for b in batch]
        labels += [b[2] for b in batch]
    return torch.cat(pixels), captions, torch.tensor(labels)


# --------------------------------------------------------------------------- model


def build_model(vocab: dict[str, int], seed: int):
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    text = dict(
        vocab_size=len(vocab),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=MAX_LEN,
        bos_token_id=vocab[BOS],
        eos_token_id=vocab[EOS],
        pad_token_id=vocab[EOS],
    )
    vision = dict(
        image_size=IMAGE_SIZE,
        patch_size=8,
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
    )
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=96)
    return CLIPModel(config)


def zero_shot_prompts() -> list[str]:
    return [f"a photo of a {c}." for c in R.CLASSES] + ["a photo of an empty scene."]


def evaluate(model, tokenizer, pixels, labels) -> float:
    """Top-1 zero-shot accuracy over the classes + "empty"."""
    import torch

    model.eval()
    with torch.no_grad():
        t = tokenizer(zero_shot_prompts(), padding=True, return_tensors="pt")
        txt = _features(model.get_text_features(**t))
        img = torch.cat(
            [
                _features(model.get_image_features(pixel_values=pixels[i : i + 256]))
                for i in range(0, len(pixels), 256)
            ]
        )
        pred = (img @ txt.T).argmax(-1)
    model.train()
    return float((pred == labels).float().mean())


def _features(out):
    """Normalised embedding from either transformers 4.x (tensor) or 5.x (output object)."""
    x = out if hasattr(out, "norm") else out.pooler_output
    return x / x.norm(dim=-1, keepdim=True)


def train(model, tokenizer, pixels, captions, args) -> None:
    import torch

    gen = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.98))
    warm = max(1, min(100, args.steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / warm
            if s < warm
            else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, args.steps - warm)))
        ),
    )
    tok = tokenizer(captions, padding="max_length", max_length=MAX_LEN, truncation=True, return_tensors="pt")
    model.train()
    t0 = time.time()
    for step in range(args.steps):
        idx = torch.randint(0, len(pixels), (min(args.batch_size, len(pixels)),), generator=gen)
        px = pixels[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5  # mirror images: cheap, label-preserving
        px = torch.where(flip[:, None, None, None], px.flip(-1), px)
        mask = tok["attention_mask"][idx]
        width = int(mask.sum(1).max())  # trim padding: text cost scales with length
        out = model(
            input_ids=tok["input_ids"][idx, :width],
            attention_mask=mask[:, :width],
            pixel_values=px,
            return_loss=True,
        )
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 100 == 0 or step == args.steps - 1:
            log.info("step %d/%d loss %.3f (%.0fs)", step, args.steps, out.loss.item(), time.time() - t0)


MODEL_CARD = """---
license: mit
library_name: transformers
tags: [clip, zero-shot-image-classification, toy, offline-demo]
---

# scenetag-demo-clip

A **tiny CLIP** (`transformers.CLIPModel`, {params:,} parameters, 64x64 images,
patch 8, 4+4 layers of width 128, projection {proj}) trained from scratch by
`tools/train_demo_model.py` on procedurally rendered cartoons drawn by
`tools/render_scenes.py`.

It exists only so scenetag's demo (`make demo`) and end-to-end tests can run
offline with known truth. It knows six objects — **coffee cup, ball, tree,
car, house, skull** (the skull is a clearly labelled stand-in for unsafe
content) — and four empty backgrounds (kitchen, room, street, park).
**It is not a real CLIP and is useless on real footage.**

## Training

```
{command}
```

seed {seed}, {steps} steps, batch {batch}, {train_size} training images,
AdamW + cosine schedule, standard CLIP contrastive loss, CPU, {minutes:.1f} min.

## Results

Zero-shot top-1 on {eval_size} held-out rendered scenes, prompts
`"a photo of a {{class}}."` for the six classes plus `"a photo of an empty scene."`:
**{accuracy:.1%}**.

## Vocabulary

The tokenizer is a CLIP byte-level BPE whose merges were learned from this
word list only; each of these words is a single token, and any other word
is spelled out in byte pieces the model has never seen:

{words}

Punctuation `.` and `,` are single tokens. `<|endoftext|>` has the highest id
(`{eos}`); `text_config.eos_token_id`/`pad_token_id` point at it.

Prompts that work: `a photo of a {{}}.`, `a picture of a {{}}.`; labels
`coffee cup`/`cup`/`mug`, `ball`, `tree`, `car`, `house`, `skull`;
backgrounds `a photo of an empty kitchen.` (also `room`, `street`, `park`,
`scene`).

## License

MIT, the same as the scenetag project. The training images are generated by
code in this repository.
"""


def save(model, tokenizer, processor, out: Path, meta: dict) -> None:
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    processor.save_pretrained(out)
    words = ", ".join(f"`{w}`" for w in vocabulary_words())
    (out / "README.md").write_text(MODEL_CARD.format(words=words, **meta), encoding="utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("models/scenetag-demo-clip"))
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--train-size", type=int, default=8000)
    p.add_argument("--eval-size", type=int, default=700)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Train, evaluate and save; returns {"accuracy", "seconds", "out"}."""
    args = parse_args(argv)  # first: --help must not wait for torch to import
    import torch
    from transformers import CLIPImageProcessor

    torch.set_num_threads(2)
    t0 = time.time()
    tokenizer = build_tokenizer(args.out)
    check_tokenizer(
        args.out, [t.format(c) for t in ("a photo of a {}.", "a picture of a {}.") for c in R.CLASSES]
    )
    processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    pixels, captions, _ = make_dataset(processor, args.seed, args.train_size)
    eval_px, _, eval_labels = make_dataset(processor, args.seed + 10_000, args.eval_size)
    log.info("rendered %d+%d images in %.0fs", len(pixels), len(eval_px), time.time() - t0)
    vocab = tokenizer.get_vocab()
    model = build_model(vocab, args.seed)
    train(model, tokenizer, pixels, captions, args)
    acc = evaluate(model, tokenizer, eval_px, eval_labels)
    seconds = time.time() - t0
    print(f"zero-shot top-1 accuracy: {acc:.3f} on {len(eval_px)} held-out images ({seconds:.0f}s)")
    command = "python tools/train_demo_model.py " + " ".join(
        [
            f"--out {args.out}",
            f"--steps {args.steps}",
            f"--batch-size {args.batch_size}",
            f"--train-size {args.train_size}",
            f"--eval-size {args.eval_size}",
            f"--lr {args.lr}",
            f"--seed {args.seed}",
        ]
    )
    meta = dict(
        params=sum(p.numel() for p in model.parameters()),
        proj=model.config.projection_dim,
        command=command,
        seed=args.seed,
        steps=args.steps,
        batch=args.batch_size,
        train_size=args.train_size,
        minutes=seconds / 60,
        eval_size=len(eval_px),
        accuracy=acc,
        eos=vocab[EOS],
    )
    save(model, tokenizer, processor, args.out, meta)
    return {"accuracy": acc, "seconds": seconds, "out": args.out}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main()
