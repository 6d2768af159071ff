"""The retrieval engine: a corpus of dated documents in, ranked quotes out. Knows nothing of Telegram.

    corpus = load_corpus("corpus/")            # files -> Documents (+ the problems found, by file)
    index = SearchIndex.build(corpus.documents)  # Documents -> sentences -> terms -> BM25 index
    result = index.search('basic research -military after:2023-01-01', k=5)
    for hit in result.hits:
        print(hit.date, hit.title, hit.text)

``open_index`` does the same through the on-disk cache, rebuilding only when the corpus or a setting changed.
"""

from retrieval.cache import OpenedIndex, open_index
from retrieval.corpus import Corpus, CorpusError, Document, Problem, load_corpus
from retrieval.index import BM25Params
from retrieval.search import ContextSentence, Hit, IndexSettings, IndexStats, SearchIndex, SearchResult

__all__ = [
    "BM25Params",
    "ContextSentence",
    "Corpus",
    "CorpusError",
    "Document",
    "Hit",
    "IndexSettings",
    "IndexStats",
    "OpenedIndex",
    "Problem",
    "SearchIndex",
    "SearchResult",
    "load_corpus",
    "open_index",
]
