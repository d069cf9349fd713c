"""A tiny random-weight SigLIP saved as a normal Hugging Face model folder.

Built at test time (no network), like ``tiny_model.build_tiny_clip``: the
byte-level tokenizer of the tiny CLIP (SigLIP's own is a SentencePiece model,
which needs a trained vocabulary file), a ``SiglipModel`` whose text length
is 64 (what transformers' zero-shot pipeline pads SigLIP text to, as
trained), and a SigLIP image processor (resize straight to a square, no crop).
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SIZE = 32
TEXT_LENGTH = 64  # the zero-shot pipeline pads SigLIP text to max_length=64


def build_tiny_siglip(folder: Path, *, seed: int = 0, image_size: int = IMAGE_SIZE) -> Path:
    import torch
    from tiny_model import _byte_symbols
    from transformers import CLIPTokenizer, SiglipConfig, SiglipImageProcessor, SiglipModel

    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)

    eos = vocab["<|endoftext|>"]
    config = SiglipConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2,
                     "max_position_embeddings": TEXT_LENGTH, "pad_token_id": eos, "eos_token_id": eos,
                     "bos_token_id": vocab["<|startoftext|>"]},
        vision_config={"image_size": image_size, "patch_size": 8, "hidden_size": 32,
                       "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
    )
    torch.manual_seed(seed)
    model = SiglipModel(config)
    with torch.no_grad():  # trained-looking values (random init leaves bias ~N(0,1), scale ~e^N(0,1))
        model.logit_scale.fill_(float(torch.log(torch.tensor(10.0))))
        model.logit_bias.fill_(-2.5)
    model.save_pretrained(folder, safe_serialization=True)
    SiglipImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder
