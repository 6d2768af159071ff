"""The retrieval engine: a corpus of dated documents in, ranked quotes out. Knows nothing of Telegram.

    corpus = load_corpus("corpus/")            # files -> Documents (+ the problems found, by file)
    index = SearchIndex.build(corpus.documents)  # Documents -> sentences -> terms -> BM25 index
    result = index.search('basic research -military after:2023-01-01', k=5)
    for hit in result.hits:
        print(hit.date, hit.title, hit.text)

``open_index`` does the same through the on-disk cache, rebuilding only when the corpus or a setting changed.
``LiveIndex.open(folder, settings, cache_dir)`` keeps following the folder: ``live.refresh()`` (or a
``CorpusWatcher``) puts new, changed and removed files live as new segments, and ``live.index`` is always
the current generation (hold it for the length of one answer).
``open_vectors(index, cache_dir)`` adds ranking by meaning: sentence embeddings, loaded from the cache or
built by ``.run()`` (slow: run it in the background, its thread lowered with
``lower_this_threads_priority()``; BM25 answers meanwhile). A long-running process calls
``map_large_blocks_apart()`` once before loading (freed arrays go back to the system) and
``freeze_loaded_objects()`` once after ``index.warm_up()`` (the collector's pauses stay short).

A search is a pipeline of stages, each in its own module: parse (``query``) -> expand (``expansion``:
spelling variants, word forms, typos, compounds) -> candidates (``index``: BM25; ``semantic``: nearest by
meaning) -> fuse (``fusion``) -> filter and page (``search``) -> hits with highlights (``highlight``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Each public name and the module it lives in: imported on first use (PEP 562), so that a light module of
# the package (``retrieval.limits``, ``retrieval.query``) can be read without loading numpy and the rest.
_EXPORTS = {
    "OpenedIndex": "cache", "open_index": "cache", "open_vectors": "cache",
    "Corpus": "corpus", "CorpusError": "corpus", "Document": "corpus", "Problem": "corpus",
    "load_corpus": "corpus",
    "NO_EXPANSION": "expansion", "ExpansionSettings": "expansion",
    "NO_SEMANTIC": "fusion", "SemanticSettings": "fusion",
    "LiveIndex": "live", "Segment": "live", "Update": "live",
    "BM25Params": "index",
    "ContextSentence": "search", "Hit": "search", "IndexSettings": "search", "IndexStats": "search",
    "SearchIndex": "search", "SearchResult": "search",
    "VectorBuild": "semantic",
    "lower_this_threads_priority": "background",
    "freeze_loaded_objects": "memory", "map_large_blocks_apart": "memory",
}  # fmt: skip

__all__ = [
    "NO_EXPANSION", "NO_SEMANTIC", "BM25Params", "ContextSentence", "Corpus", "CorpusError", "Document",
    "ExpansionSettings", "Hit", "IndexSettings", "IndexStats", "LiveIndex", "OpenedIndex", "Problem",
    "SearchIndex", "SearchResult", "Segment", "SemanticSettings", "Update", "VectorBuild",
    "freeze_loaded_objects", "load_corpus", "lower_this_threads_priority", "map_large_blocks_apart",
    "open_index", "open_vectors",
]  # fmt: skip

if TYPE_CHECKING:
    from retrieval.background import lower_this_threads_priority
    from retrieval.cache import OpenedIndex, open_index, open_vectors
    from retrieval.corpus import Corpus, CorpusError, Document, Problem, load_corpus
    from retrieval.expansion import NO_EXPANSION, ExpansionSettings
    from retrieval.fusion import NO_SEMANTIC, SemanticSettings
    from retrieval.index import BM25Params
    from retrieval.live import LiveIndex, Segment, Update
    from retrieval.memory import freeze_loaded_objects, map_large_blocks_apart
    from retrieval.search import ContextSentence, Hit, IndexSettings, IndexStats, SearchIndex, SearchResult
    from retrieval.semantic import VectorBuild


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"retrieval.{module}"), name)
    globals()[name] = value  # once is enough
    return value
