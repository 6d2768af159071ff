"""What the engine accepts, as plain values: the BM25 variants it implements and the longest question it
reads. Kept free of imports so that a settings reader can check against them without loading the engine."""

ALGORITHMS = ("bm25okapi", "bm25l", "bm25plus")  # rank-bm25's BM25Okapi, BM25L and BM25Plus
MAX_QUESTION_CHARS = 4096  # a longer question is refused, not cut (a cut could drop a trailing -word)
