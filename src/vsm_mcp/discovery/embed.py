"""Dense text embeddings from a small static model shipped inside a PyPI package (WordLlama).

WordLlama's 256-dimensional model (token embeddings pooled and projected,
trained on general sentence pairs) lets "will it rain tomorrow" land near
"weather forecast" though the two share no word. Its weights and tokenizer
ship in the wheel; they are loaded from the package's own folder with
downloads disabled, so nothing is fetched at run time.

Invariants:
- optional: when the package is absent or its files cannot be read,
  `load_embedder` returns None and the matcher ranks on its lexical signals;
- loaded once per process, lazily (the first catalog that asks), and an
  embedding is a pure function of the text (L2-normalised, float32 -> float64);
- never touches the network: the wheel's files or nothing.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from vsm_mcp.discovery.bm25 import FloatArray, IntArray

SEMANTIC_DIMS = 128  # leading components kept (of 256)
EMBED_CHUNK = 128  # texts tokenized together (bounds the model's native buffers)
#: tools embedded at most: a few seconds when the index is built; a larger catalog's tools are
#: ranked by their words alone (embedding 75,000 tools takes about half a minute)
MAX_EMBEDDED_TOOLS = 20_000
_MATRIX_CACHE = 4  # catalogs whose vectors stay in memory (the shipped one, a bench's, a discovery's)
_log = logging.getLogger(__name__)
_lock = threading.Lock()
_loaded: list[Embedder | None] = []
_matrices: dict[tuple[int, int, str], npt.NDArray[np.float32]] = {}


class Embedder(Protocol):
    """Texts to L2-normalised vectors, one row per text."""

    def embed(self, texts: Sequence[str]) -> FloatArray: ...


class WordLlamaEmbedder:
    """The WordLlama model of the installed package, read from its own files."""

    __slots__ = ("_model",)

    def __init__(self, model: Any) -> None:
        self._model = model

    def embed(self, texts: Sequence[str]) -> FloatArray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float64)
        # In chunks: the model tokenizes all it is given at once, padded to the longest text, so
        # a whole catalog in one call costs tens of MiB of native memory that is kept afterwards.
        vectors = np.concatenate(
            [
                np.asarray(self._model.embed(list(texts[i : i + EMBED_CHUNK]), norm=True), dtype=np.float64)
                for i in range(0, len(texts), EMBED_CHUNK)
            ]
        )
        vectors[~np.isfinite(vectors)] = 0.0
        return vectors


def _load_wordllama() -> Embedder | None:
    # The tokenizer's thread pool keeps a memory arena per thread after a catalog is embedded
    # (about 30 MiB here) for no gain at these sizes; a process that set it otherwise keeps its say.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:  # imported only when a catalog is first indexed: it is optional
        wordllama: Any = importlib.import_module("wordllama")
    except ImportError:
        return None
    package = Path(wordllama.__file__).parent
    try:
        # The wheel keeps its tokenizer under tokenizers/ and its weights under weights/; naming the
        # package folder as the cache makes the loader find both there instead of downloading.
        # Only the leading SEMANTIC_DIMS components are used: the loader keeps just those of its
        # token table (half the memory; the same vectors as a cut of the full ones, renormalised).
        model = wordllama.WordLlama.load(cache_dir=package, disable_download=True, trunc_dim=SEMANTIC_DIMS)
    except (OSError, ValueError, RuntimeError) as exc:
        _log.warning("wordllama installed but its model could not be read: %s", exc)
        return None
    return WordLlamaEmbedder(model)


def load_embedder() -> Embedder | None:
    """The process-wide embedder, or None when no model is installed."""
    with _lock:
        if not _loaded:
            _loaded.append(_load_wordllama())
        return _loaded[0]


class SemanticIndex:
    """Embeddings of a catalog's servers, for cosine similarity with query texts.

    Vectors keep their first ``dims`` components, renormalised: WordLlama is trained
    Matryoshka-style, so a prefix is a coarser embedding of the same text, and a shorter
    vector keeps a query at 10,000 servers within the time budget without BLAS threads.
    """

    __slots__ = ("_dims", "_embedder", "_servers")

    def __init__(self, embedder: Embedder, server_texts: Sequence[str], dims: int = SEMANTIC_DIMS) -> None:
        self._embedder = embedder
        self._dims = dims
        self._servers = _cached_matrix(embedder, tuple(server_texts), dims) if server_texts else None

    def queries(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The texts' vectors (the prefix kept, renormalised)."""
        return _prefix(self._embedder.embed(texts), self._dims)

    def similarity(self, queries: npt.NDArray[np.float32]) -> FloatArray:
        """Cosines ``[len(queries), servers]`` of query vectors, negatives clipped to 0."""
        if self._servers is None:
            return np.zeros((len(queries), 0), dtype=np.float64)
        # einsum's own loop, not BLAS: BLAS threads waking for a small product cost more than it
        return _clipped(np.einsum("ij,kj->ik", queries, self._servers))


class TextVectors:
    """Vectors of many texts (a catalog's tools), embedded once per catalog, compared by id."""

    __slots__ = ("_vectors",)

    def __init__(self, embedder: Embedder, texts: Sequence[str], dims: int = SEMANTIC_DIMS) -> None:
        self._vectors = (
            _cached_matrix(embedder, tuple(texts), dims) if texts else np.zeros((0, dims), np.float32)
        )

    def similarity(self, queries: npt.NDArray[np.float32], ids: IntArray) -> FloatArray:
        """Cosines ``[len(queries), len(ids)]`` of query vectors with the texts ``ids``."""
        return _clipped(np.einsum("ij,kj->ik", queries, self._vectors[ids]))


def _clipped(cosines: npt.NDArray[np.float32]) -> FloatArray:
    out: FloatArray = np.clip(cosines.astype(np.float64), 0.0, None)
    return out


def _cached_matrix(embedder: Embedder, texts: tuple[str, ...], dims: int) -> npt.NDArray[np.float32]:
    """The texts' vectors, computed once per process for a given embedder and catalog text."""
    digest = hashlib.sha256("\x1f".join(texts).encode()).hexdigest()
    key = (id(embedder), dims, digest)
    with _lock:
        found = _matrices.get(key)
    if found is None:
        found = _prefix(embedder.embed(texts), dims)
        with _lock:
            if len(_matrices) >= _MATRIX_CACHE:
                _matrices.pop(next(iter(_matrices)))
            _matrices[key] = found
    return found


def _prefix(vectors: FloatArray, dims: int) -> npt.NDArray[np.float32]:
    cut = np.ascontiguousarray(vectors[:, :dims], dtype=np.float32)
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    out: npt.NDArray[np.float32] = np.divide(cut, norms, out=np.zeros_like(cut), where=norms > 0.0)
    return out
