"""scenetag: tag scenes in video with CLIP-style models.

The handful of entry points a Python user calls (the CLI is built on them)::

    from pipeline import load_config, run_job

    config = load_config("configs/coffee.yaml")
    report = run_job(["holiday.mp4"], config, Path("reports"))
    for result in report.results:
        print(result.name, [(s.label, s.start_s, s.end_s) for s in result.segments])

- :func:`load_config`: a YAML config (plus overrides) → a validated :class:`Config`.
- :func:`run_job`: decode, embed, score, refine and report every input
  (:class:`RunOptions`: engine, store, resume); returns a :class:`RunReport`.
- :func:`rescore_job`: score a store's embeddings with another config, no decoding.
- :func:`load_embedder`: a model (Hub id or folder) on the fastest runtime here;
  ``embed_texts`` / ``embed_images`` give L2-normalised vectors.
- :class:`EmbeddingStore`, :func:`search`, :func:`find_moments`: a store's
  nearest frames to a query vector, and the moments they lie in.

Names load on first use, so ``import pipeline`` stays instant (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module it lives in
_PUBLIC = {
    "Config": "pipeline.config",
    "load_config": "pipeline.config",
    "run_job": "pipeline.run.job",
    "RunOptions": "pipeline.run.job",
    "RunReport": "pipeline.run.job",
    "rescore_job": "pipeline.run.rescore",
    "load_embedder": "pipeline.embed.load",
    "EmbeddingStore": "pipeline.store.db",
    "search": "pipeline.explore.search",
    "find_moments": "pipeline.explore.search",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
