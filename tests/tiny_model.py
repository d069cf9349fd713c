"""A tiny random-weight CLIP saved as a normal Hugging Face model folder.

Built at test time (no network) and loaded through the exact production
loader. Its vocabulary is every byte symbol plus the CLIP special tokens,
with ``<|endoftext|>`` given the highest id: transformers pools CLIP text at
``input_ids.argmax(-1)`` for legacy configs, so the end token must be last.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SIZE = 32


def _byte_symbols() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def build_tiny_clip(folder: Path, *, seed: int = 0, image_size: int = IMAGE_SIZE,
                    patch_size: int = 8) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    tokenizer.save_pretrained(folder)

    eos, bos = vocab["<|endoftext|>"], vocab["<|startoftext|>"]
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 64,
                     "eos_token_id": eos, "bos_token_id": bos, "pad_token_id": eos},
        vision_config={"image_size": image_size, "patch_size": patch_size, "hidden_size": 32,
                       "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": image_size},
                       crop_size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder


def tiny_config(folder: Path, model_dir: Path, body: str, name: str = "cfg.yaml") -> Path:
    """Write a config that runs ``model_dir`` on the CPU in fp32 (deterministic
    across machines), followed by the YAML in ``body``."""
    path = folder / name
    path.write_text(f"model: {{id: '{model_dir}', device: cpu, precision: fp32}}\n" + body,
                    encoding="utf-8")
    return path
