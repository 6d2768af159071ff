"""The index on disk: rebuilt when a corpus file or an analysis setting changes, loaded in a blink otherwise.

A cache entry is a folder of plain ``.npy`` arrays (loaded memory-mapped, never unpickled, so a cache file
cannot run code) and a ``meta.json``. Its name is a hash of the analysis settings and of every corpus file's
name, size and modification time, so a stale entry is simply never asked for. An entry is written under a
temporary name, flushed to disk and renamed into place in one step: a crash mid-write leaves only a
temporary folder, which is never loaded and is cleaned up later.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.build import Progress
from retrieval.corpus import CorpusError, Problem, list_corpus_files, load_corpus
from retrieval.index import BM25Params, InvertedIndex, bm25_weights
from retrieval.search import STORE_FORMAT, IndexSettings, SearchIndex
from retrieval.semantic import VectorBuild
from retrieval.store import DocumentInfo, SentenceStore, TextBlob

log = logging.getLogger(__name__)

_ARRAYS = (
    "indptr", "sentence_ids", "tf", "lengths", "vocabulary",
    "blob", "offsets", "sentence_doc", "sentence_paragraph", "duplicate_group", "duplicate_count",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class OpenedIndex:
    """An index ready to search, and the story of how it was obtained (for the load summary)."""

    index: SearchIndex
    problems: tuple[Problem, ...]
    documents: int
    skipped: int
    from_cache: bool
    seconds: float
    cache_path: Path | None

    def summary(self) -> str:
        stats = self.index.stats
        source = "loaded from cache" if self.from_cache else "built"
        warnings = sum(1 for p in self.problems if not p.skipped)
        return (
            f"{_count(stats.documents, 'document')}, {_count(stats.sentences, 'sentence')}, "
            f"{_count(stats.terms, 'term')}; {_count(self.skipped, 'file')} skipped, "
            f"{_count(warnings, 'warning')}; {source} in {self.seconds:.2f} s"
        )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def cache_key(corpus_path: Path, settings: IndexSettings) -> tuple[str, tuple[Problem, ...]]:
    """The key of the cache entry for the corpus as it is now on disk (stat only, nothing read)."""
    files, problems = list_corpus_files(corpus_path)
    manifest = []
    for name, path in files:
        try:
            st = path.stat()
        except OSError:
            manifest.append([name, -1, -1])  # gone or unreadable: loading will say so
            continue
        manifest.append([name, st.st_size, st.st_mtime_ns])
    payload = json.dumps([settings.fingerprint, manifest], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()[:24], tuple(problems)


def open_index(
    corpus_path: str | Path,
    settings: IndexSettings | None = None,
    cache_dir: str | Path | None = None,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    rebuild: bool = False,
) -> OpenedIndex:
    """Load the cached index for ``corpus_path`` or build (and cache) it. Raises CorpusError when the folder
    is missing or holds no usable document."""
    started = time.perf_counter()
    settings = settings or IndexSettings()
    root = Path(corpus_path)
    if not root.is_dir():
        raise CorpusError(
            f"corpus folder {root} does not exist"
            if not root.exists()
            else f"corpus path {root} is not a folder"
        )
    key, _ = cache_key(root, settings)
    entry = Path(cache_dir) / f"index-{key}" if cache_dir else None
    if entry is not None and entry.is_dir() and not rebuild:
        try:
            index, meta = read_entry(entry, settings)
        except (OSError, ValueError, KeyError) as error:
            log.warning("index cache %s is unreadable (%s); rebuilding", entry, error)
        else:
            problems = tuple(Problem(**p) for p in meta["problems"])
            return OpenedIndex(
                index,
                problems,
                meta["n_documents"],
                meta["skipped"],
                True,
                time.perf_counter() - started,
                entry,
            )

    corpus = load_corpus(root)
    if not corpus.documents:
        detail = f" ({corpus.skipped} files skipped)" if corpus.skipped else ""
        raise CorpusError(f"corpus folder {root} holds no usable documents{detail}")
    index = SearchIndex.build(corpus.documents, settings, workers=workers, progress=progress)
    if entry is not None:
        try:
            write_entry(entry, index, corpus.problems, len(corpus.documents), corpus.skipped)
        except OSError as error:
            log.warning("could not write the index cache %s: %s", entry, error)
    return OpenedIndex(
        index,
        corpus.problems,
        len(corpus.documents),
        corpus.skipped,
        False,
        time.perf_counter() - started,
        entry,
    )


def write_entry(
    entry: Path, index: SearchIndex, problems: tuple[Problem, ...], n_documents: int, skipped: int
) -> None:
    inverted, store = index._inverted, index._store  # the cache is the index's own persistence layer
    arrays = {
        "indptr": inverted.indptr,
        "sentence_ids": inverted.sentence_ids,
        "tf": inverted.tf,
        "lengths": inverted.lengths,
        "vocabulary": np.frombuffer("\n".join(inverted.vocabulary).encode("utf-8"), dtype=np.uint8),
        "blob": store.blob.as_array(),
        "offsets": store.offsets,
        "sentence_doc": store.sentence_doc,
        "sentence_paragraph": store.sentence_paragraph,
        "duplicate_group": store.duplicate_group,
        "duplicate_count": store.duplicate_count,
        _weights_name(index.settings.ranking): inverted.weights,
    }
    meta = {
        "format": STORE_FORMAT,
        "fingerprint": index.settings.fingerprint,
        "index_fingerprint": index.fingerprint,
        "n_terms": len(inverted.vocabulary),
        "n_documents": n_documents,
        "skipped": skipped,
        "shapes": {name: list(a.shape) for name, a in arrays.items()},
        "documents": [d.to_json() for d in store.documents],
        "problems": [{"file": p.file, "message": p.message, "skipped": p.skipped} for p in problems],
    }
    entry.parent.mkdir(parents=True, exist_ok=True)
    temporary = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{time.monotonic_ns()}"
    temporary.mkdir()
    try:
        for name, array in arrays.items():
            with open(temporary / f"{name}.npy", "wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
        with open(temporary / "meta.json", "w", encoding="utf-8") as f:
            json.dump(meta, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.rename(temporary, entry)
        except OSError:
            if not entry.is_dir():  # another process won the race with an identical entry: keep theirs
                raise
        _fsync_dir(entry.parent)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    _remove_stale(entry)


def read_entry(entry: Path, settings: IndexSettings) -> tuple[SearchIndex, dict]:
    with open(entry / "meta.json", encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != STORE_FORMAT or meta.get("fingerprint") != settings.fingerprint:
        raise ValueError("cache written by another version or with other settings")
    arrays = {}
    for name in _ARRAYS:
        if name == "blob":
            continue  # read on demand, see TextBlob
        array = np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        if list(array.shape) != meta["shapes"][name]:
            raise ValueError(f"{name}.npy has shape {array.shape}, expected {meta['shapes'][name]}")
        arrays[name] = array
    blob = TextBlob.from_npy(entry / "blob.npy")
    if [blob.size] != meta["shapes"]["blob"]:
        raise ValueError("blob.npy does not match its recorded size")
    vocabulary_text = np.asarray(arrays["vocabulary"]).tobytes().decode("utf-8")
    vocabulary = vocabulary_text.split("\n") if meta["n_terms"] else []
    if len(vocabulary) != meta["n_terms"]:
        raise ValueError("vocabulary does not match its recorded size")
    weights = _load_or_write_weights(entry, arrays, settings)
    inverted = InvertedIndex(
        vocabulary,
        arrays["indptr"],
        np.asarray(arrays["sentence_ids"]),
        arrays["tf"],
        np.asarray(arrays["lengths"]),
        settings.ranking,
        weights,
    )
    store = SentenceStore(
        [DocumentInfo.from_json(d) for d in meta["documents"]],
        blob,
        arrays["offsets"],
        np.asarray(arrays["sentence_doc"]),
        np.asarray(arrays["sentence_paragraph"]),
        np.asarray(arrays["duplicate_group"]),
        np.asarray(arrays["duplicate_count"]),
    )
    return SearchIndex(inverted, store, settings, fingerprint=meta["index_fingerprint"]), meta


def _weights_name(params: BM25Params) -> str:
    key = json.dumps([params.algorithm, params.k1, params.b, params.epsilon, params.resolved_delta])
    return "weights-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _load_or_write_weights(entry: Path, arrays: dict[str, np.ndarray], settings: IndexSettings) -> np.ndarray:
    """The BM25 weights for these ranking settings: kept beside the index, computed once per setting."""
    path = entry / f"{_weights_name(settings.ranking)}.npy"
    if path.exists():
        weights = np.load(path, mmap_mode="r", allow_pickle=False)
        if weights.shape == arrays["sentence_ids"].shape and weights.dtype == np.float32:
            return np.asarray(weights)
        log.warning("%s does not fit the index; computing the weights again", path)
    weights = bm25_weights(arrays["tf"], arrays["sentence_ids"], arrays["lengths"], settings.ranking)
    temporary = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        with open(temporary, "wb") as f:
            np.save(f, weights, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except OSError as error:  # a read-only cache still works, it just computes the weights each time
        log.info("could not keep the ranking weights in %s: %s", entry, error)
        temporary.unlink(missing_ok=True)
    return weights


def _remove_stale(keep: Path) -> None:
    """Drop older entries (and abandoned temporary folders) beside ``keep``; never fails the caller."""
    for other in keep.parent.iterdir():
        stale_entry = other.name.startswith("index-") and other != keep
        abandoned = other.name.startswith(".tmp-index-") and time.time() - other.stat().st_mtime > 3600
        if other.is_dir() and (stale_entry or abandoned):
            shutil.rmtree(other, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_vectors(
    index: SearchIndex, cache_dir: str | Path | None, *, threads: int = 1
) -> VectorBuild | None:
    """The sentence embeddings of ``index`` (loaded from ``cache_dir`` if made before), attached to it so
    searches rank by meaning once they are complete; ``None``, with the reason logged, when meaning is
    turned off or the model is not installed (BM25 alone then). A build that is not complete must still
    be run: ``build.run()``, which takes minutes per 10k sentences, off the event loop."""
    if not index.settings.semantic.enabled:
        return None
    if index.settings.language not in ("english", "porter"):
        # The model was trained on English only: elsewhere its neighbours are noise, words rank alone.
        log.info("ranking by meaning is off for %s (the model is English only)", index.settings.language)
        return None
    from retrieval.encoder import EncoderUnavailable, SentenceEncoder

    try:
        encoder = SentenceEncoder.load(threads=threads)
    except EncoderUnavailable as error:
        log.warning("ranking by meaning is off: %s", error)
        return None
    build = index.vector_build(encoder, cache_dir)
    index.attach_vectors(build)
    if cache_dir is not None and Path(cache_dir).is_dir():
        for other in Path(cache_dir).iterdir():
            own = other.name.startswith(f"vectors-{index.fingerprint}-")
            if other.name.startswith("vectors-") and not own:
                shutil.rmtree(other, ignore_errors=True)
    return build
