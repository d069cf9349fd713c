"""How the embedding store names what it keeps: a file by a fingerprint of its
content, a sampling by one readable string, a stored input by a hash of
(content, model, revision, sampling), a model by its id or local folder.

These are the store's keys: changing any of them makes every stored input a
miss (embedded again), so they change only with the store format.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

from pipeline.types import Sampling

_HASH_BLOCK = 1 << 20
HASH_WORKERS = 8  # parallel file reads when fingerprinting a run's inputs

# Stills have been resized exactly as the model's image processor resizes them
# since this marker: a still stored before it (resized as video frames are)
# is a different input, embedded again rather than reused with old pixels.
STILL_PIXELS = "stills as the processor resizes them"


def content_hash(path: str | os.PathLike) -> str:
    """A fast content fingerprint of a file.

    sha256 over the size, the modification time (ns) and the first and last
    1 MB. Cheap on multi-GB videos; editing or touching the file changes it,
    so a stale cache entry is never reused (a touched file is merely decoded
    again).
    """
    st = os.stat(path)
    digest = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}:".encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(_HASH_BLOCK))
        if st.st_size > _HASH_BLOCK:
            fh.seek(max(_HASH_BLOCK, st.st_size - _HASH_BLOCK))
            digest.update(fh.read(_HASH_BLOCK))
    return digest.hexdigest()[:32]


def content_hashes(paths: Sequence[str], workers: int = HASH_WORKERS) -> dict[str, str]:
    """:func:`content_hash` of every readable path (unreadable ones are left
    out, for the decoder to report). Threads: hashing is file reads, and a run
    over a library on network storage otherwise waits for them one by one
    before its first decode."""
    from concurrent.futures import ThreadPoolExecutor

    def one(path: str) -> str | None:
        try:
            return content_hash(path)
        except (OSError, ValueError):  # ValueError: a NUL byte in the path; no such file can exist
            return None

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(paths)))) as pool:
        digests = list(pool.map(one, paths))
    return {p: d for p, d in zip(paths, digests) if d is not None}


def sampling_key(sampling: Sampling, *, strategy: str = "auto", backend: str = "pyav") -> str:
    """What decides which frames an input yields, as one readable string."""
    cap = f"; max {sampling.max_frames}" if sampling.max_frames else ""
    return f"{sampling.describe()}{cap}; {strategy}; {backend}"


def input_sampling(path: str, sampling_desc: str) -> str:
    """The sampling an input is stored under: a still's also names how its
    pixels were prepared."""
    from pipeline.decode import is_image

    return f"{sampling_desc}; {STILL_PIXELS}" if is_image(path) else sampling_desc


def input_key(chash: str, model_id: str, revision: str | None, sampling: str) -> str:
    """The key of a stored input: the same file content, model and sampling is
    one stored input however often (and under whatever path) it is run."""
    blob = json.dumps([chash, model_id, revision or "", sampling]).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def model_ref(model_id: str | None) -> str | None:
    """A local model folder as an absolute path (so a store opened from any
    working directory finds it); a Hub id as given."""
    if model_id and os.path.isdir(os.path.expanduser(model_id)):
        return os.path.abspath(os.path.expanduser(model_id))
    return model_id
