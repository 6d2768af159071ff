"""The index on disk: rebuilt when a corpus file or an analysis setting changes, loaded in a blink otherwise.

A cache entry is a folder of plain ``.npy`` arrays (loaded memory-mapped, never unpickled, so a cache file
cannot run code) and a ``meta.json``. Its name is a hash of the analysis settings and of every corpus file's
name, size and modification time, so a stale entry is simply never asked for. An entry is written under a
temporary name, flushed to disk and renamed into place in one step: a crash mid-write leaves only a
temporary folder, which is never loaded and is cleaned up later.

An entry that cannot be used (a file missing, cut short or altered, a ``meta.json`` that is not what this
code writes) is reported in one warning line and rebuilt, and the rebuilt entry replaces it: the damaged
folder is moved aside first; only a valid entry written meanwhile by another process is kept instead.

Checksums: ``meta.json`` records the size and CRC-32 of every ``.npy`` file and ends with a CRC-32 of its own
text. Every load checks ``meta.json``, every file's size and, in full, every file up to ``VERIFY_BYTES``
(the vocabulary, the postings offsets and the per-sentence arrays); the large files (postings, term
frequencies, weights, the text blob: most of an entry) are checked by size only unless
``open_index(..., verify=True)``, which also pulls them into the page cache (the README's benchmarks give
the costs). CRC-32 rather than a cryptographic hash: the checksum sits beside the data, so it can only
catch accidents (torn writes, flipped bits, a file cut short), never tampering, and for that a 32-bit CRC
suffices and is several times faster.
Weights computed later (other ranking settings) keep their size and CRC-32 in a ``weights-*.json`` beside
them; weights that fail their check are computed again rather than rebuilding the entry.

One cache folder holds several entries (one per corpus folder and settings): after a build, those beyond
``CACHE_MAX_ENTRIES`` or ``CACHE_MAX_BYTES`` are evicted, least recently used first (a load touches an
entry's folder), and so is at once an entry of the same corpus folder and settings whose files have changed
since. The sentence embeddings of an index (``vectors-<index fingerprint>-<model>/``) belong to the entries
of that fingerprint: they count in their size and are evicted with them, never while one is kept; those of
no entry are dropped once untouched for an hour. Only what this code made is ever deleted: entries whose
``meta.json`` is a corpus-bot index's, embedding folders as ``retrieval.semantic`` writes them, and
temporary folders untouched for an hour; a folder that vanishes meanwhile (another process) is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.build import Progress, text_hash
from retrieval.corpus import CorpusError, Problem, list_corpus_files, load_corpus, require_folder
from retrieval.index import BM25Params, InvertedIndex, bm25_weights
from retrieval.search import STORE_FORMAT, IndexSettings, SearchIndex
from retrieval.semantic import Encoder, VectorBuild
from retrieval.store import DocumentInfo, SentenceStore, TextBlob

log = logging.getLogger(__name__)

CACHE_MAX_ENTRIES = 4  # index entries kept in one cache folder, the one in use included
CACHE_MAX_BYTES = 4 * 2**30  # and their total size with their embeddings (1M sentences: ~0.2 + 0.77 GB)
VERIFY_BYTES = 16 * 2**20  # files up to this size are checksummed in full at every load
ENCODER_FOLDER = "encoder"  # where load_encoder keeps the model's serialized graph (prune leaves it alone)
TEMPORARY_MAX_AGE = 3600.0  # seconds: an older temporary folder (or orphan embeddings) is abandoned
_INDEX_FORMAT_PREFIX = "corpus-bot-index-"  # meta.json "format" of every version of this cache
_VECTORS_FORMAT_PREFIX = "corpus-bot-vectors-"


class CacheEntryError(ValueError):
    """A cache entry that cannot be used as it is: damaged, or written by another version or settings."""

_ARRAYS = (
    "indptr", "sentence_ids", "tf", "lengths", "vocabulary",
    "blob", "offsets", "sentence_doc", "sentence_paragraph", "duplicate_group", "duplicate_count",
)  # fmt: skip
# Written since segments came, not required of older entries (a composed index computes them then).
_OPTIONAL_ARRAYS = ("text_hash",)


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
    verify: bool = False,
    max_entries: int = CACHE_MAX_ENTRIES,
    max_bytes: int = CACHE_MAX_BYTES,
) -> OpenedIndex:
    """Load the cached index for ``corpus_path`` or build (and cache) it. Raises CorpusError when the folder
    is missing or holds no usable document. ``rebuild`` builds anew and replaces the entry; ``verify``
    checksums every file of the entry, not only the small ones (see the module's docstring for the cost);
    ``max_entries`` and ``max_bytes`` bound what the cache folder keeps after a build."""
    started = time.perf_counter()
    settings = settings or IndexSettings()
    root = Path(corpus_path)
    require_folder(root)
    key, _ = cache_key(root, settings)
    entry = Path(cache_dir) / f"index-{key}" if cache_dir else None
    if entry is not None and not rebuild and (entry.exists() or entry.is_symlink()):
        try:
            index, meta = read_entry(entry, settings, verify=verify)
        except CacheEntryError as error:
            log.warning("index cache %s is unreadable (%s); rebuilding", entry, _one_line(error))
        else:
            _touch(entry)
            return OpenedIndex(
                index,
                tuple(Problem(**p) for p in meta["problems"]),
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
            write_entry(
                entry, index, corpus.problems, len(corpus.documents), corpus.skipped,
                corpus=root, replace=rebuild,
            )
        except OSError as error:
            log.warning("could not write the index cache %s: %s", entry, _one_line(error))
        else:
            prune(entry.parent, keep=entry, max_entries=max_entries, max_bytes=max_bytes)
    return OpenedIndex(
        index,
        corpus.problems,
        len(corpus.documents),
        corpus.skipped,
        False,
        time.perf_counter() - started,
        entry,
    )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def write_entry(
    entry: Path,
    index: SearchIndex,
    problems: tuple[Problem, ...],
    n_documents: int,
    skipped: int,
    *,
    corpus: Path | None = None,
    replace: bool = False,
) -> None:
    """Write ``index`` as the entry ``entry``, in one rename. An entry already there is replaced when it is
    not valid (or when ``replace``); a valid one, written meanwhile by another process, is kept."""
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
        "text_hash": _text_hashes(store),
        _weights_name(index.settings.ranking): inverted.weights,
    }
    entry.parent.mkdir(parents=True, exist_ok=True)
    temporary = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{time.monotonic_ns()}"
    temporary.mkdir()
    try:
        files = {name: _save_array(temporary / f"{name}.npy", array) for name, array in arrays.items()}
        meta = {
            "format": STORE_FORMAT,
            "fingerprint": index.settings.fingerprint,
            "index_fingerprint": index.fingerprint,
            "corpus": str(corpus.resolve()) if corpus is not None else None,
            "n_terms": len(inverted.vocabulary),
            "n_documents": n_documents,
            "skipped": skipped,
            "shapes": {name: list(a.shape) for name, a in arrays.items()},
            "files": files,
            "documents": [d.to_json() for d in store.documents],
            "problems": [{"file": p.file, "message": p.message, "skipped": p.skipped} for p in problems],
        }
        with open(temporary / "meta.json", "wb") as f:
            f.write(_with_checksum(json.dumps(meta, ensure_ascii=False).encode("utf-8")))
            f.flush()
            os.fsync(f.fileno())
        _install(temporary, entry, (index.settings.fingerprint, index.fingerprint), replace=replace)
        _fsync_dir(entry.parent)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def _text_hashes(store: SentenceStore) -> np.ndarray:
    if store.text_hash is not None:
        return store.text_hash
    return np.fromiter((text_hash(store.text(i)) for i in range(len(store))), np.uint64, count=len(store))


def _install(temporary: Path, entry: Path, fingerprints: tuple[str, str], *, replace: bool) -> None:
    """Rename ``temporary`` to ``entry``. Whatever is at ``entry`` is moved aside first, unless it is a valid
    entry of the same index (another process won the race with an identical entry: theirs is kept)."""
    for attempt in range(3):
        try:
            os.rename(temporary, entry)
            return
        except OSError:
            if not (entry.exists() or entry.is_symlink()):
                raise  # not a name clash: the cache folder is read-only, full, ...
        if not (replace and attempt == 0) and _valid_entry(entry, fingerprints):
            return
        aside = entry.parent / f".tmp-{entry.name}-old-{os.getpid()}-{time.monotonic_ns()}"
        try:
            os.rename(entry, aside)
        except FileNotFoundError:
            continue  # someone else moved it meanwhile: try again
        log.info("replacing the index cache entry %s", entry)
        _remove(aside)
    raise OSError(f"could not put the index cache entry in place at {entry}")


def _valid_entry(entry: Path, fingerprints: tuple[str, str]) -> bool:
    """Whether ``entry`` passes the checks of a load and holds the index of these (settings, index)
    fingerprints."""
    try:
        meta = _check_entry(entry)
    except CacheEntryError:
        return False
    return (meta["fingerprint"], meta["index_fingerprint"]) == fingerprints


def _save_array(path: Path, array: np.ndarray) -> dict[str, int]:
    """Write ``array`` as ``.npy``, flushed to disk; its size and CRC-32, computed on the way."""
    with open(path, "wb") as f:
        out = _Checksummed(f)
        np.save(out, np.ascontiguousarray(array), allow_pickle=False)  # type: ignore[arg-type]
        f.flush()
        os.fsync(f.fileno())
    return {"bytes": out.bytes, "crc32": out.crc}


class _Checksummed:
    """A write-only file that keeps the CRC-32 and length of what goes through it."""

    def __init__(self, f):  # type: ignore[no-untyped-def]
        self._f = f
        self.crc = 0
        self.bytes = 0

    def write(self, data) -> int:  # type: ignore[no-untyped-def]
        view = memoryview(data)
        self.crc = zlib.crc32(view, self.crc)
        self.bytes += view.nbytes
        return self._f.write(view)


def _file_crc(path: Path) -> int:
    crc = 0
    buffer = bytearray(4 * 2**20)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            crc = zlib.crc32(view[:n], crc)
    return crc


_CHECKSUM_KEY = b', "checksum": '


def _with_checksum(body: bytes) -> bytes:
    """A JSON object's text with the CRC-32 of that text added as its last member, ``"checksum"``."""
    return body[:-1] + _CHECKSUM_KEY + str(zlib.crc32(body)).encode() + b"}"


def _checksum_fits(text: bytes, meta: dict) -> bool:
    """Whether ``text`` (``meta``'s JSON) carries the CRC-32 of the text it had before its checksum: the raw
    bytes are checked, not a re-serialization (~20 ms for 1M sentences' meta.json)."""
    at = text.rfind(_CHECKSUM_KEY)
    return at > 0 and _is_int(meta.get("checksum")) and meta["checksum"] == zlib.crc32(text[:at] + b"}")


def _read_meta(entry: Path) -> dict:
    """``meta.json`` of an entry, checked (its checksum, and the type of every field used): else
    CacheEntryError."""
    try:
        text = (entry / "meta.json").read_bytes()
        meta = json.loads(text.decode("utf-8"))
    except FileNotFoundError:
        raise CacheEntryError("meta.json is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CacheEntryError(f"meta.json cannot be read: {error}") from error
    except RecursionError:
        raise CacheEntryError("meta.json is nested too deeply") from None
    if not isinstance(meta, dict):
        raise CacheEntryError(f"meta.json holds a {type(meta).__name__}, not an object")
    if meta.get("format") != STORE_FORMAT:
        raise CacheEntryError(f"written by another version (format {meta.get('format')!r})")
    if "checksum" not in meta:
        raise CacheEntryError("written by an older version, without checksums")
    if not _checksum_fits(text, meta):
        raise CacheEntryError("meta.json fails its checksum")
    _expect(meta, "fingerprint", str)
    _expect(meta, "index_fingerprint", str)
    for name in ("n_terms", "n_documents", "skipped"):
        if not _is_int(meta.get(name)) or meta[name] < 0:
            raise CacheEntryError(f"meta.json: {name!r} is not a count")
    shapes, files = _expect(meta, "shapes", dict), _expect(meta, "files", dict)
    for name in _ARRAYS:
        shape = shapes.get(name)
        if not isinstance(shape, list) or not all(_is_int(n) and n >= 0 for n in shape):
            raise CacheEntryError(f"meta.json: no valid shape for {name}")
        if name not in files:
            raise CacheEntryError(f"meta.json: no checksum for {name}")
    for name, info in files.items():
        if not (isinstance(info, dict) and _is_int(info.get("bytes")) and _is_int(info.get("crc32"))):
            raise CacheEntryError(f"meta.json: no valid checksum for {name}")
    documents, problems = _expect(meta, "documents", list), _expect(meta, "problems", list)
    if not all(isinstance(d, dict) for d in documents):
        raise CacheEntryError("meta.json: a document is not an object")
    for p in problems:
        if not (
            isinstance(p, dict) and set(p) == {"file", "message", "skipped"}
            and isinstance(p["file"], str) and isinstance(p["message"], str)
            and isinstance(p["skipped"], bool)
        ):
            raise CacheEntryError("meta.json: a problem is not a {file, message, skipped} object")
    return meta


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _expect(meta: dict, name: str, kind: type) -> Any:
    value = meta.get(name)
    if not isinstance(value, kind):
        raise CacheEntryError(f"meta.json: {name!r} is not a {kind.__name__}")
    return value


def _check_file(path: Path, info: dict[str, int], *, full: bool) -> None:
    """Raise CacheEntryError unless ``path`` has the recorded size (and, if small or ``full``, CRC-32)."""
    try:
        size = path.stat().st_size
        if size != info["bytes"]:
            raise CacheEntryError(f"{path.name} holds {size:,} bytes, not {info['bytes']:,}")
        if (full or size <= VERIFY_BYTES) and _file_crc(path) != info["crc32"]:
            raise CacheEntryError(f"{path.name} fails its checksum")
    except FileNotFoundError:
        raise CacheEntryError(f"{path.name} is missing") from None
    except OSError as error:
        raise CacheEntryError(f"{path.name} cannot be read: {error}") from error


def _check_entry(entry: Path, *, full: bool = False) -> dict:
    """The checked ``meta.json`` of ``entry`` once every array file (the weights aside: they can be made
    again) has its recorded size, and its recorded CRC-32 if small or ``full``; else CacheEntryError."""
    meta = _read_meta(entry)
    for name, info in meta["files"].items():
        if not name.startswith("weights-"):
            _check_file(entry / f"{name}.npy", info, full=full)
    return meta


def read_entry(entry: Path, settings: IndexSettings, *, verify: bool = False) -> tuple[SearchIndex, dict]:
    """The index kept in ``entry`` and its checked ``meta.json``; CacheEntryError, whatever is wrong with the
    entry, when it cannot be used."""
    meta = _check_entry(entry, full=verify)
    if meta["fingerprint"] != settings.fingerprint:
        raise CacheEntryError("written with other settings")
    try:
        return _load(entry, settings, meta, verify=verify), meta
    except CacheEntryError:
        raise
    except Exception as error:  # whatever a damaged file makes numpy or the index raise: one line, no trace
        raise CacheEntryError(f"{type(error).__name__}: {_one_line(error)}") from error


def _load(entry: Path, settings: IndexSettings, meta: dict, *, verify: bool) -> SearchIndex:
    arrays = {}
    for name in (*_ARRAYS, *(n for n in _OPTIONAL_ARRAYS if n in meta["shapes"])):
        if name == "blob":
            continue  # read on demand, see TextBlob
        array = np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        if list(array.shape) != meta["shapes"][name]:
            raise CacheEntryError(f"{name}.npy has shape {array.shape}, expected {meta['shapes'][name]}")
        arrays[name] = array
    blob = TextBlob.from_npy(entry / "blob.npy")
    if [blob.size] != meta["shapes"]["blob"]:
        raise CacheEntryError("blob.npy does not match its recorded size")
    vocabulary_text = np.asarray(arrays["vocabulary"]).tobytes().decode("utf-8")
    vocabulary = vocabulary_text.split("\n") if meta["n_terms"] else []
    if len(vocabulary) != meta["n_terms"]:
        raise CacheEntryError("vocabulary does not match its recorded size")
    weights = _load_or_write_weights(entry, arrays, settings, meta["files"], verify=verify)
    inverted = InvertedIndex(
        vocabulary,
        arrays["indptr"],
        np.asarray(arrays["sentence_ids"]),
        arrays["tf"],
        np.asarray(arrays["lengths"]),
        settings.ranking,
        weights,
    )
    offsets = arrays["offsets"]
    blob_ids = range(offsets.shape[0] - 1)  # the sentences
    store = SentenceStore(
        [DocumentInfo.from_json(d) for d in meta["documents"]],
        blob,
        offsets,
        np.asarray(arrays["sentence_doc"]),
        np.asarray(arrays["sentence_paragraph"]),
        np.asarray(arrays["duplicate_group"]),
        np.asarray(arrays["duplicate_count"]),
        np.asarray(arrays["text_hash"]) if "text_hash" in arrays else _kept_text_hash(entry, len(blob_ids)),
    )
    if store.text_hash is None:  # an entry from before segments: computed on first need, then kept here
        store.keep_text_hash = lambda hashes: _keep_text_hash(entry, hashes)
    index = SearchIndex(inverted, store, settings, fingerprint=meta["index_fingerprint"])
    index.forwards = _read_forwards(entry)
    return index


_TEXT_HASH = "text_hash"
_FORWARD = "forward-"


def write_forwards(entry: Path, forwards: dict[str, np.ndarray]) -> None:
    """Keep, beside a merged segment, where the sentences of the segments it was merged from went (see
    ``SearchIndex.forwards``). Checksummed; one that fails its check is ignored (its old buttons then
    say the corpus has changed)."""
    for fingerprint, moved in forwards.items():
        path = entry / f"{_FORWARD}{fingerprint}.npy"
        temporary = path.with_name(f".tmp-{path.name}-{os.getpid()}")
        try:
            info = _save_array(temporary, np.asarray(moved, dtype=np.int32))
            os.replace(temporary, path)
            path.with_suffix(".json").write_text(json.dumps(info), encoding="utf-8")
        except OSError as error:
            log.info("could not keep the addresses of %s in %s: %s", fingerprint, entry, error)
            temporary.unlink(missing_ok=True)


def _read_forwards(entry: Path) -> dict[str, np.ndarray]:
    forwards: dict[str, np.ndarray] = {}
    for path in entry.glob(f"{_FORWARD}*.npy"):
        try:
            _check_file(path, json.loads(path.with_suffix(".json").read_text(encoding="utf-8")), full=False)
            moved = np.load(path, mmap_mode="r", allow_pickle=False)
        except (CacheEntryError, OSError, ValueError, TypeError, KeyError):
            continue
        if moved.ndim == 1 and moved.dtype == np.int32:
            forwards[path.stem[len(_FORWARD) :]] = moved
    return forwards


def _kept_text_hash(entry: Path, n_sentences: int) -> np.ndarray | None:
    """The text hashes kept beside an older entry (see ``_keep_text_hash``), if they are whole."""
    path, record = entry / f"{_TEXT_HASH}.npy", entry / f"{_TEXT_HASH}.json"
    if not (path.exists() and record.exists()):
        return None
    try:
        _check_file(path, json.loads(record.read_text(encoding="utf-8")), full=False)
        hashes = np.load(path, mmap_mode="r", allow_pickle=False)
    except (CacheEntryError, OSError, ValueError, TypeError, KeyError) as error:
        log.info("the text hashes kept in %s are unusable (%s); computed again", entry, _one_line(error))
        return None
    return np.asarray(hashes) if hashes.shape == (n_sentences,) and hashes.dtype == np.uint64 else None


def _keep_text_hash(entry: Path, hashes: np.ndarray) -> None:
    """Keep computed text hashes beside an entry written without them (a read-only cache just forgets)."""
    path, record = entry / f"{_TEXT_HASH}.npy", entry / f"{_TEXT_HASH}.json"
    temporary = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        info = _save_array(temporary, hashes)
        os.replace(temporary, path)
        sidecar = record.with_name(f".tmp-{record.name}-{os.getpid()}")
        sidecar.write_text(json.dumps(info), encoding="utf-8")
        os.replace(sidecar, record)
    except OSError as error:
        log.info("could not keep the text hashes in %s: %s", entry, error)
        temporary.unlink(missing_ok=True)


def _weights_name(params: BM25Params) -> str:
    key = json.dumps([params.algorithm, params.k1, params.b, params.epsilon, params.resolved_delta])
    return "weights-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _load_or_write_weights(
    entry: Path,
    arrays: dict[str, np.ndarray],
    settings: IndexSettings,
    files: dict[str, dict[str, int]],
    *,
    verify: bool = False,
) -> np.ndarray:
    """The BM25 weights for these ranking settings: kept beside the index, computed once per setting. Those
    of the build's settings are checked against ``meta.json``, the others against their own
    ``weights-*.json``; weights that fail are computed again."""
    name = _weights_name(settings.ranking)
    path = entry / f"{name}.npy"
    sidecar = entry / f"{name}.json"
    if path.exists():
        try:
            info = files.get(name) or json.loads(sidecar.read_text(encoding="utf-8"))
            if not (isinstance(info, dict) and _is_int(info.get("bytes")) and _is_int(info.get("crc32"))):
                raise CacheEntryError(f"{sidecar.name} is not a checksum record")
            _check_file(path, info, full=verify)
            weights = np.load(path, mmap_mode="r", allow_pickle=False)
            if weights.shape == arrays["sentence_ids"].shape and weights.dtype == np.float32:
                return np.asarray(weights)
            raise CacheEntryError("wrong shape or type")
        except (CacheEntryError, OSError, ValueError, EOFError) as error:
            log.warning("%s does not fit the index (%s); computing the weights again", path, _one_line(error))
    weights = bm25_weights(arrays["tf"], arrays["sentence_ids"], arrays["lengths"], settings.ranking)
    temporary = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        info = _save_array(temporary, weights)
        if name not in files:
            record = sidecar.with_name(f".tmp-{sidecar.name}-{os.getpid()}")
            record.write_text(json.dumps(info), encoding="utf-8")
            os.replace(record, sidecar)
        os.replace(temporary, path)
    except OSError as error:  # a read-only cache still works, it just computes the weights each time
        log.info("could not keep the ranking weights in %s: %s", entry, error)
        temporary.unlink(missing_ok=True)
    return weights


# -- keeping the cache folder in bounds ---------------------------------------------------------------------


@dataclass(slots=True)
class _Unit:
    """An index entry and the embedding folders of its index: kept or evicted together."""

    entry: Path | None  # None: embeddings whose entry is gone (orphans)
    fingerprint: str | None
    vectors: list[Path]
    size: int
    used: float


def prune(
    cache_dir: str | Path,
    *,
    keep: Path | None = None,
    keep_fingerprint: str | None = None,
    keep_entries: set[str] | frozenset[str] = frozenset(),
    max_entries: int = CACHE_MAX_ENTRIES,
    max_bytes: int = CACHE_MAX_BYTES,
) -> None:
    """Keep ``cache_dir`` in bounds; never fails the caller. The segments of a live index (named in
    ``keep_entries``, or by any ``live-*.json`` manifest in the folder) are kept, with their embeddings,
    whatever their number and size. Evicts, least recently used first, the entries
    (with their embeddings) beyond ``max_entries`` or ``max_bytes``, and entries superseded by ``keep`` (the
    same corpus folder and settings, older files); keeps ``keep``, and the entries and embeddings of
    ``keep_fingerprint``, whatever their size. Also drops temporary folders and orphan embeddings (of no
    entry) untouched for ``TEMPORARY_MAX_AGE``. Deletes nothing this code did not make."""
    try:
        _prune(Path(cache_dir), keep, keep_fingerprint, set(keep_entries), max_entries, max_bytes)
    except Exception as error:  # housekeeping: a failure must not stop the bot
        log.warning("could not clean the index cache %s up: %s", cache_dir, _one_line(error))


def _prune(
    folder: Path,
    keep: Path | None,
    keep_fingerprint: str | None,
    keep_entries: set[str],
    max_entries: int,
    max_bytes: int,
) -> None:
    keep_entries = keep_entries | _live_segments(folder)
    entries: dict[Path, dict] = {}
    vectors: list[Path] = []
    for other in _list(folder):
        name = other.name
        if name.startswith(".tmp-index-") or name.startswith(".tmp-vectors-"):
            if _age(other) > TEMPORARY_MAX_AGE:
                _remove(other)
        elif name.startswith("index-") and other.is_dir():
            meta = _own_meta(other)
            if meta is not None:
                entries[other] = meta
        elif name.startswith("vectors-") and other.is_dir() and _own_vectors(other):
            vectors.append(other)
    keep_meta = entries.get(keep) if keep is not None else None

    units: list[_Unit] = []
    claimed: set[Path] = set()
    for path, meta in entries.items():
        fingerprint = meta.get("index_fingerprint")
        fingerprint = fingerprint if isinstance(fingerprint, str) and fingerprint else None
        own = [v for v in vectors if fingerprint and v.name.startswith(f"vectors-{fingerprint}-")]
        claimed.update(own)
        used = max([_mtime(path), *map(_used, own)])
        units.append(_Unit(path, fingerprint, own, _tree_bytes(path) + sum(map(_tree_bytes, own)), used))
    for orphan in vectors:
        if orphan not in claimed:
            units.append(_Unit(None, None, [orphan], _tree_bytes(orphan), _used(orphan)))

    live_fingerprints = {
        u.fingerprint for u in units if u.entry is not None and u.entry.name in keep_entries and u.fingerprint
    }

    def protected(unit: _Unit) -> bool:
        if unit.entry is not None and (unit.entry == keep or unit.entry.name in keep_entries):
            return True
        if unit.fingerprint is not None and unit.fingerprint in live_fingerprints:
            return True
        if keep_fingerprint is not None and (
            unit.fingerprint == keep_fingerprint
            or any(v.name.startswith(f"vectors-{keep_fingerprint}-") for v in unit.vectors)
        ):
            return True
        return unit.entry is None and time.time() - unit.used <= TEMPORARY_MAX_AGE  # maybe still in use

    def superseded(unit: _Unit) -> bool:
        if keep_meta is None or unit.entry is None or unit.entry == keep:
            return False
        meta = entries[unit.entry]
        return (
            keep_meta.get("corpus") is not None and meta.get("corpus") == keep_meta.get("corpus")
            and meta.get("fingerprint") == keep_meta.get("fingerprint")
        )

    units.sort(key=lambda u: (not protected(u), -u.used))  # what must stay, then the most recent first
    kept: list[_Unit] = []
    evicted: list[_Unit] = []
    count = total = 0
    full = False  # once an entry is over the bounds, every less recently used one is too
    for unit in units:
        if protected(unit):
            stays = True
        elif unit.entry is None or superseded(unit):
            stays = False  # orphan embeddings, abandoned; or an entry of files changed since
        else:
            stays = not full and count < max_entries and total + unit.size <= max_bytes
            full = not stays
        (kept if stays else evicted).append(unit)
        if stays:
            count += unit.entry is not None
            total += unit.size
    kept_fingerprints = {u.fingerprint for u in kept if u.fingerprint} | {keep_fingerprint}
    kept_fingerprints |= live_fingerprints
    for unit in evicted:
        if unit.entry is not None:
            log.info("evicting the index cache entry %s", unit.entry)
            _remove(unit.entry)
        for v in unit.vectors:
            if not any(fp and v.name.startswith(f"vectors-{fp}-") for fp in kept_fingerprints):
                _remove(v)


def _live_segments(folder: Path) -> set[str]:
    """The entries named as segments by the live-index manifests in ``folder`` (see ``retrieval.live``)."""
    names: set[str] = set()
    for manifest in folder.glob("live-*.json"):
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            names.update(str(s["entry"]) for s in data["segments"] if s.get("entry"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            continue  # an unreadable manifest protects nothing; its index compares the folder afresh
    return names


def _own_meta(entry: Path) -> dict | None:
    """The ``meta.json`` of ``entry`` if it is one this code wrote (of any version), else None."""
    try:
        meta = json.loads((entry / "meta.json").read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    own = isinstance(meta, dict) and str(meta.get("format", "")).startswith(_INDEX_FORMAT_PREFIX)
    return meta if own else None


def _own_vectors(folder: Path) -> bool:
    """Whether ``folder`` holds embeddings as ``retrieval.semantic`` writes them, and nothing else."""
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return False
    if not names or not names <= {
        "meta.json", "meta.json.tmp", "vectors.f16", "vectors.partial", "titles.f16", "titles.f16.tmp"
    }:
        return False
    if "meta.json" not in names:
        return "vectors.partial" in names
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(meta, dict) and str(meta.get("format", "")).startswith(_VECTORS_FORMAT_PREFIX)


def _list(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _used(vectors: Path) -> float:
    """When embeddings were last written (a build appends to a file inside) or loaded."""
    return max([_mtime(vectors), *(_mtime(p) for p in _list(vectors))])


def _age(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except OSError:
        return 0.0  # vanished meanwhile: nothing to do


def _tree_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):  # removed meanwhile
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _touch(path: Path) -> None:
    """Mark ``path`` used now (the eviction order); a read-only cache just forgets the use."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _remove(path: Path) -> None:
    """Delete a folder (or a file) that may vanish meanwhile."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_encoder(
    settings: IndexSettings, *, threads: int = 1, cache_dir: str | Path | None = None
) -> Encoder | None:
    """The sentence encoder for indexes of these settings; ``None``, with the reason logged, when meaning
    is turned off, the corpus is not English or the model is not installed (BM25 alone then). With
    ``cache_dir``, the model's serialized graph is kept in its ``encoder`` folder for the next load."""
    if not settings.semantic.enabled:
        return None
    if settings.language not in ("english", "porter"):
        # The model was trained on English only: elsewhere its neighbours are noise, words rank alone.
        log.info("ranking by meaning is off for %s (the model is English only)", settings.language)
        return None
    from retrieval.encoder import EncoderUnavailable, SentenceEncoder

    try:
        graph_cache = Path(cache_dir) / ENCODER_FOLDER if cache_dir is not None else None
        return SentenceEncoder.load(threads=threads, graph_cache=graph_cache)
    except EncoderUnavailable as error:
        log.warning("ranking by meaning is off: %s", error)
        return None


class EncoderLoad:
    """:func:`load_encoder` in a thread of its own, started at once: the model takes about a second to
    load, which a caller can spend opening the index meanwhile. :meth:`result` waits for it."""

    def __init__(
        self, settings: IndexSettings, *, threads: int = 1, cache_dir: str | Path | None = None
    ) -> None:
        self.threads = threads
        self.cache_dir = cache_dir
        self._encoder: Encoder | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, args=(settings,), name="load-encoder", daemon=True)
        self._thread.start()

    def _load(self, settings: IndexSettings) -> None:
        try:
            self._encoder = load_encoder(settings, threads=self.threads, cache_dir=self.cache_dir)
        except BaseException as error:  # raised again by result(), in the caller's thread
            self._error = error

    def result(self) -> Encoder | None:
        """What :func:`load_encoder` returns (or raises)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._encoder


def open_vectors(
    index: SearchIndex,
    cache_dir: str | Path | None,
    *,
    threads: int = 1,
    max_entries: int = CACHE_MAX_ENTRIES,
    max_bytes: int = CACHE_MAX_BYTES,
) -> VectorBuild | None:
    """The sentence embeddings of ``index`` (loaded from ``cache_dir`` if made before), attached to it so
    searches rank by meaning once they are complete; ``None``, with the reason logged, when meaning is
    turned off or the model is not installed (BM25 alone then). A build that is not complete must still
    be run: ``build.run()``, which takes minutes per 10k sentences, off the event loop."""
    encoder = load_encoder(index.settings, threads=threads, cache_dir=cache_dir)
    if encoder is None:
        return None
    build = index.vector_build(encoder, cache_dir)
    index.attach_vectors(build)
    if cache_dir is not None and Path(cache_dir).is_dir():
        # Other indexes' embeddings stay as long as their entries do (evicted with them, see ``prune``).
        prune(cache_dir, keep_fingerprint=index.fingerprint, max_entries=max_entries, max_bytes=max_bytes)
    return build
