"""The corpus directory: one seed-format file per article, ``NNN_<article id>.txt``.

Numbers come from one Redis counter, given once per article id (a Lua script), so every
worker on every machine agrees and a retried job rewrites the same file. That script is
all the locking the numbering needs, so workers on several machines share one corpus by
mounting one directory (NFS, EFS, a ReadWriteMany volume) as ``corpus_dir``: file names
carry the article id, so two writers of one name are the same article's retries, and
every write is a rename into place. Each directory has an id (``.corpus-id``) that workers
register in Redis, so replay and retag can tell a corpus split over machines (each worker
writing its own local directory) from the whole one, and refuse to work on a part. Files are written
to a temporary name and renamed, so a reader never sees half a document. Metadata for
replay and retagging sits beside them in ``.meta/<article id>.json``.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import redis

from core import keys
from core.errors import ConfigError

# ``NNN_<article id>.txt``; staged files start with a dot and are not matched.
_TEXT_NAME = re.compile(r"^\d+_[^/]+\.txt$")
# This directory's identity, written once by whichever process needs it first.
ID_FILE = ".corpus-id"
# File names held at once while the corpus is listed in order (about 100 bytes each).
LISTING_WINDOW = 10_000

# An article's number: the one Redis holds, else the one its file on disk has (the key
# expired: the disk is the memory), else the next of the sequence. The key lives
# ``number_ttl_s`` from its last use, so Redis holds numbers only for recent articles.
_NUMBER = """
local n = redis.call('GET', KEYS[2])
if not n then
  if ARGV[2] ~= '' then n = ARGV[2] else n = redis.call('INCR', KEYS[1]) - 1 end
end
redis.call('SET', KEYS[2], n, 'EX', ARGV[1])
return tonumber(n)
"""


def _stage(path: Path, data: bytes, *, fsync: bool = False) -> tuple[Path, Path]:
    """Write ``data`` beside ``path`` under a temporary name; (temporary, final)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp), path


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


def _number(name: str) -> int:
    return int(name.split("_", 1)[0])


def _read(directory: Path, name: str, mode: Literal["r", "rb"]) -> Any:
    """The contents of ``directory/name`` (text in UTF-8, or bytes), opened by a string
    path: pathlib in Python 3.11 interns every name it parses for the life of the process,
    which over a scan of the corpus is a leak of two names per article."""
    path = os.path.join(directory, name)  # noqa: PTH118 - see above
    with open(path, mode, encoding="utf-8" if mode == "r" else None) as handle:  # noqa: PTH123
        return handle.read()


def file_name(number: int, article_id: str) -> str:
    return f"{number:03d}_{article_id}.txt"


def write_atomically(path: Path, data: bytes) -> None:
    """One file, durable before it appears under its name."""
    tmp, _ = _stage(path, data, fsync=True)
    try:
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_libc = ctypes.CDLL(None, use_errno=True)


def sync_filesystem(directory: Path) -> None:
    """Flush every file written on ``directory``'s filesystem: one journal commit for a
    whole batch of files, where an fsync per file costs one each."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        syncfs = getattr(_libc, "syncfs", None)
        if syncfs is None:
            os.sync()
        elif syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs({directory}): {os.strerror(err)}")
    finally:
        os.close(fd)


def sync_directory(directory: Path) -> None:
    """Make renames in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Corpus:
    def __init__(
        self, directory: Path, client: redis.Redis, number_ttl_s: int = 180 * 24 * 3600
    ) -> None:
        self.directory = directory
        self.meta_directory = directory / ".meta"
        self.redis = client
        self.number_ttl_s = number_ttl_s
        self._number = client.register_script(_NUMBER)

    def identity(self) -> str:
        """This directory's id. Made by a hard link of a staged file, which fails when the
        name exists (atomic on NFS too), so machines sharing the directory get one id."""
        path = self.directory / ID_FILE
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp, _ = _stage(path, uuid.uuid4().hex.encode(), fsync=True)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: theirs is the id
            finally:
                tmp.unlink(missing_ok=True)
        return path.read_text(encoding="utf-8").strip()

    def register(self) -> dict[str, str]:
        """Record this directory as one that workers write to; the others (id: where)."""
        mine = self.identity()
        where = f"{socket.gethostname()}:{self.directory.resolve()}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.CORPUS_DIRS, mine, where)
        pipe.hgetall(keys.CORPUS_DIRS)
        everyone: dict[str, str] = pipe.execute()[1]
        return {k: v for k, v in everyone.items() if k != mine}

    def others(self) -> dict[str, str]:
        """Other corpus directories workers have written to (id: host:path)."""
        mine = self.identity()
        everyone = cast(dict[str, str], self.redis.hgetall(keys.CORPUS_DIRS))
        return {k: v for k, v in everyone.items() if k != mine}

    def require_whole(self, command: str) -> None:
        """Refuse to read this directory as the corpus when workers also write elsewhere."""
        others = self.others()
        if others:
            where = ", ".join(f"{v} (id {k})" for k, v in sorted(others.items()))
            raise ConfigError(
                f"{command}: {self.directory} holds only part of the corpus: workers also "
                f"write to {where}. Mount one shared directory as corpus_dir on every worker "
                f'machine (README "Scaling out"); a directory that is gone for good is '
                f"forgotten with: redis-cli HDEL {keys.CORPUS_DIRS} <id>"
            )

    def numbers_for(self, article_ids: Sequence[str]) -> list[int]:
        """Each article's number (given once per id), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for article_id in article_ids:
            on_disk = self._number_on_disk(article_id)
            self._number(
                keys=[keys.CORPUS_SEQ, keys.corpus_number(article_id)],
                args=[self.number_ttl_s, "" if on_disk is None else on_disk],
                client=pipe,
            )
        return [int(n) for n in pipe.execute()]

    def announced(self, article_id: str) -> dict[str, Any] | None:
        """The tags this article was last announced to consumers with, if it ever was.

        Redis's record that an article was emitted lasts ``emitted_ttl_s``; this one lasts
        as long as the article's file, so an article the corpus holds is never announced
        as ``article.created`` twice, however old it is when it comes round again.
        """
        try:
            tags: dict[str, Any] = json.loads(self._announced_path(article_id).read_bytes())
        except (OSError, ValueError):
            return None
        return tags

    def remember_announced(self, article_id: str, tags: dict[str, Any]) -> None:
        path = self._announced_path(article_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp, final = _stage(path, json.dumps(tags, ensure_ascii=False).encode("utf-8"))
        tmp.replace(final)

    def _announced_path(self, article_id: str) -> Path:
        return self.directory / ".announced" / f"{article_id}.json"

    def _number_on_disk(self, article_id: str) -> int | None:
        """The number of the file already stored for this article, if any."""
        try:
            meta = json.loads((self.meta_directory / f"{article_id}.json").read_bytes())
            return int(str(meta["corpus_file"]).split("_", 1)[0])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write_many(self, documents: Sequence[tuple[str, str, dict[str, Any]]]) -> list[Path]:
        """Write documents (article id, text, metadata) with one flush to disk for all.

        Every file is written under a temporary name, the filesystem is flushed once, the
        files are renamed into place and the directories flushed: neither a reader nor a
        crash ever sees half a file, and a batch costs one journal commit instead of two
        fsyncs per article (pipeline_bench: the fsyncs and the file creations stalled
        behind them were a tenth of an extract worker's time).
        """
        if not documents:
            return []
        self.meta_directory.mkdir(parents=True, exist_ok=True)
        numbers = self.numbers_for([article_id for article_id, _, _ in documents])
        paths: list[Path] = []
        staged: list[tuple[Path, Path]] = []
        try:
            for (article_id, text, meta), number in zip(documents, numbers, strict=True):
                path = self.directory / file_name(number, article_id)
                record = {**meta, "corpus_file": path.name}
                staged.append(
                    _stage(
                        self.meta_directory / f"{article_id}.json",
                        json.dumps(record, ensure_ascii=False).encode("utf-8"),
                    )
                )
                staged.append(_stage(path, text.encode("utf-8")))
                paths.append(path)
            sync_filesystem(self.directory)
            for tmp, final in staged:
                tmp.replace(final)
            staged = []
        finally:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
        sync_directory(self.meta_directory)
        sync_directory(self.directory)
        return paths

    def article_files(self, window: int = LISTING_WINDOW) -> Iterator[str]:
        """Names of the stored texts in corpus order (by number, so 1000 follows 999).

        At most ``window`` names are held at once, so memory stays flat however large the
        corpus: the directory is listed once per window of numbers (a listing of 100,000
        names takes tens of milliseconds; tagging them takes minutes), and each listing
        also finds where the next window starts, so gaps in the numbers cost nothing.
        """
        low: int | None = 0
        while low is not None:
            names: list[str] = []
            high, low = low + window, None
            for name in self._text_names():
                number = _number(name)
                if high - window <= number < high:
                    names.append(name)
                elif number >= high and (low is None or number < low):
                    low = number
            names.sort(key=_number)
            yield from names

    def census(self) -> tuple[int, int]:
        """(how many stored texts, the highest number among them; -1 when none)."""
        count, highest = 0, -1
        for name in self._text_names():
            count += 1
            highest = max(highest, _number(name))
        return count, highest

    def _text_names(self) -> Iterator[str]:
        """Stored text names in directory order; temporary files (a leading dot) are not
        articles yet."""
        try:
            with os.scandir(self.directory) as entries:
                yield from (entry.name for entry in entries if _TEXT_NAME.match(entry.name))
        except FileNotFoundError:
            return

    def metadata(self, name: str) -> dict[str, Any] | None:
        """The metadata of the text file ``name``; None when it has none (yet), or when it
        belongs to another file of that article id."""
        article_id = name.split("_", 1)[1].removesuffix(".txt")
        try:
            raw = _read(self.meta_directory, f"{article_id}.json", "rb")
        except FileNotFoundError:
            return None
        meta: dict[str, Any] = json.loads(raw)
        return meta if meta.get("corpus_file") == name else None

    def stored_articles(
        self, since: str = "", on_scanned: Callable[[int, int], None] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Metadata with text of each stored article fetched at or after ``since`` (RFC 3339),
        in corpus order, one at a time.

        A generator, so memory stays flat however large the corpus: the text of an article
        is read when the caller asks for it, and only if its metadata passes ``since``.
        ``on_scanned(scanned, total)`` follows every file looked at, selected or not.
        """
        total, _ = self.census()
        for scanned, name in enumerate(self.article_files(), start=1):
            article = self._article(name, since)
            if on_scanned is not None:
                on_scanned(scanned, total)
            if article is not None:
                yield article

    def _article(self, name: str, since: str) -> dict[str, Any] | None:
        meta = self.metadata(name)
        # The metadata decides before the text is opened: a replay of last week reads
        # last week's texts, not the whole corpus.
        if meta is None or meta.get("fetched_at", "") < since:
            return None
        try:
            meta["text"] = _read(self.directory, name, "r")
        except FileNotFoundError:
            return None  # removed since the listing
        return meta
