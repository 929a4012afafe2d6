"""The corpus directory: one seed-format file per article, ``NNN_<article id>.txt``.

Numbers come from one Redis counter, given once per article id (a Lua script), so every
worker on every machine agrees and a retried job rewrites the same file. Files are written
to a temporary name and renamed, so a reader never sees half a document. Metadata for
replay and retagging sits beside them in ``.meta/<article id>.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import redis

from service import keys
from service.errors import ConfigError

_NUMBER = """
local n = redis.call('GET', KEYS[2])
if n then return tonumber(n) end
n = redis.call('INCR', KEYS[1]) - 1
redis.call('SET', KEYS[2], n)
return n
"""


def check_corpus_dir(directory: Path) -> None:
    """Create the directory if needed; raise ConfigError if it cannot be written."""
    try:
        (directory / ".meta").mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-", delete=True)  # noqa: SIM115
        probe.close()
    except OSError as exc:
        raise ConfigError(
            f"corpus directory {directory} is not writable: {exc.strerror or exc}"
        ) from exc


def file_name(number: int, article_id: str) -> str:
    return f"{number:03d}_{article_id}.txt"


def write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Corpus:
    def __init__(self, directory: Path, client: redis.Redis) -> None:
        self.directory = directory
        self.redis = client
        self._number = client.register_script(_NUMBER)

    def number_for(self, article_id: str) -> int:
        return int(self._number(keys=[keys.CORPUS_SEQ, keys.corpus_number(article_id)]))

    def write(self, article_id: str, text: str, meta: dict[str, Any]) -> Path:
        """Write the document and its metadata; returns the document's path."""
        path = self.directory / file_name(self.number_for(article_id), article_id)
        (self.directory / ".meta").mkdir(parents=True, exist_ok=True)
        write_atomically(
            self.directory / ".meta" / f"{article_id}.json",
            json.dumps({**meta, "corpus_file": path.name}, ensure_ascii=False).encode("utf-8"),
        )
        write_atomically(path, text.encode("utf-8"))
        return path

    def stored_articles(self) -> list[dict[str, Any]]:
        """Metadata of every stored article with its text, in corpus order."""
        out: list[dict[str, Any]] = []
        for meta_path in sorted((self.directory / ".meta").glob("*.json")):
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            doc = self.directory / meta["corpus_file"]
            if doc.exists():
                meta["text"] = doc.read_text(encoding="utf-8")
                out.append(meta)
        out.sort(key=lambda m: m["corpus_file"])
        return out
