"""The corpora of the question set, each built from packages the registries install (see ../FORMAT.md).

Every module ``<name>.py`` in this folder (names starting with ``_`` excepted) is a corpus: its
``prepare(dest: Path) -> Path`` writes a folder of ``.txt`` documents, deterministically, and returns the
folder to index (``dest`` or a folder inside it). ``shipped`` is the repository's own ``corpus/`` folder,
used as it is.

    names = corpus_names()                         # ["shipped", "pydocs", ...]
    folder = prepare_corpus("pydocs", Path("/tmp/quality"))   # /tmp/quality/pydocs, prepared once

A prepared folder is reused while its module's source is unchanged: a stamp file in it (hidden, so the
corpus reader skips it) records the hash of the module's source and the folder ``prepare`` returned. A
changed module, a missing stamp or a missing folder means the folder is emptied and prepared again.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import shutil
from pathlib import Path
from types import ModuleType

SHIPPED = "shipped"
SHIPPED_FOLDER = Path(__file__).resolve().parents[3] / "corpus"
STAMP_NAME = ".prepared.json"
_HERE = Path(__file__).resolve().parent


class UnknownCorpusError(KeyError):
    """No corpus module of that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown corpus"


def corpus_names() -> list[str]:
    """``shipped`` first, then every corpus module of this folder, sorted by name (none is imported)."""
    found = sorted(
        info.name
        for info in pkgutil.iter_modules([str(_HERE)])
        if not info.name.startswith("_") and not info.ispkg
    )
    if SHIPPED in found:
        raise RuntimeError(f"corpora/{SHIPPED}.py clashes with the shipped corpus: rename the module")
    return [SHIPPED, *found]


def corpus_module(name: str) -> ModuleType:
    """The corpus module ``name`` (imported), checked to have ``prepare``."""
    if name == SHIPPED or name not in corpus_names():
        known = ", ".join(n for n in corpus_names() if n != SHIPPED) or "none"
        raise UnknownCorpusError(f"no corpus module {name!r} in {_HERE} (modules: {known})")
    module = importlib.import_module(f"{__name__}.{name}")
    if not callable(getattr(module, "prepare", None)):
        raise TypeError(f"corpus module {module.__file__} has no prepare(dest) function")
    return module


def corpus_description(name: str) -> str:
    """The first line of the corpus module's docstring (for reports)."""
    if name == SHIPPED:
        return "the repository's own corpus/ folder"
    doc = (corpus_module(name).__doc__ or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


def source_hash(module: ModuleType) -> str:
    if module.__file__ is None:
        raise TypeError(f"corpus module {module.__name__} has no source file")
    return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()


def prepare_corpus(name: str, workdir: Path) -> Path:
    """The folder of corpus ``name``, ready to index: prepared into ``workdir/name`` unless it already is."""
    if name == SHIPPED:
        return SHIPPED_FOLDER
    return prepare_module(corpus_module(name), Path(workdir) / name)


def prepare_module(module: ModuleType, dest: Path) -> Path:
    """``module.prepare(dest)``, unless ``dest`` holds a preparation stamped with the module's source hash."""
    digest = source_hash(module)
    dest = Path(dest)
    stamp = dest / STAMP_NAME
    prepared = _stamped_folder(stamp, dest, digest)
    if prepared is not None:
        return prepared
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    folder = Path(module.prepare(dest)).resolve()
    if not folder.is_dir():
        raise RuntimeError(f"{module.__file__}: prepare() returned {folder}, which is not a folder")
    root = dest.resolve()
    where = str(folder.relative_to(root)) if folder.is_relative_to(root) else str(folder)
    temporary = stamp.with_suffix(".tmp")
    record = {"module": module.__name__.rpartition(".")[2], "source_sha256": digest, "folder": where}
    temporary.write_text(json.dumps(record) + "\n")
    temporary.replace(stamp)
    return folder


def _stamped_folder(stamp: Path, dest: Path, digest: str) -> Path | None:
    """The folder an earlier preparation left, if its stamp is for this very source."""
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or recorded.get("source_sha256") != digest:
        return None
    folder = dest / str(recorded.get("folder", "."))
    return folder.resolve() if folder.is_dir() else None
