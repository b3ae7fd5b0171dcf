"""A full disk, said in one line: which file, how much space is left there, and what to do.

Every writer (DuckDB, PostgreSQL, Dagster's SQLite, the facet journal, the spool) reports a full disk
its own way, often wrapped in another error or only as text in a failed run's message; this finds it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil

_TEXT = re.compile(r"no space left on device|database or disk is full|disk quota exceeded|could not extend file",
                   re.IGNORECASE)
# Where the message names the file: DuckDB (`Could not write file "..."`), PostgreSQL (`could not
# extend file "..."`), Python (`[Errno 28] No space left on device: '...'`).
_FILE = re.compile(r"""(?:write|extend|open|create)\s+file\s+"([^"]+)"|No space left on device:\s+'([^']+)'""",
                   re.IGNORECASE)


def _chain(exc: BaseException, depth: int = 12):
    while exc is not None and depth > 0:
        yield exc
        exc = exc.__cause__ or exc.__context__
        depth -= 1


def disk_full(error: BaseException | str) -> str | None:
    """One line about the full disk behind `error` (an exception, its causes, or a run's message), or None."""
    texts: list[str] = []
    path = None
    for e in ([] if isinstance(error, str) else _chain(error)):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            path = path or e.filename
            texts.append(str(e))
        elif _TEXT.search(str(e)):
            texts.append(str(e))
    if isinstance(error, str) and _TEXT.search(error):
        texts.append(error)
    if not texts:
        return None
    if path is None:
        for text in texts:
            m = _FILE.search(text)
            if m:
                path = m.group(1) or m.group(2)
                break
    where = f"writing {path}" if path else f"({texts[0].splitlines()[0][:200]})"
    return (f"disk full {where}: {_free(path)}; the write that failed was rolled back and the store is as "
            f"it was before it. Free some space (or point TOPICS_HOME / DAGSTER_HOME elsewhere) and run again")


def _free(path: str | None) -> str:
    """`12.0 KiB free on /mnt/data`, for the nearest existing folder of `path`."""
    if not path or "://" in str(path):
        return "free space unknown (not a local file)"
    folder = os.path.dirname(os.path.abspath(path))
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "free space unknown"
    return f"{_size(free)} free there now on {_mount(folder)}"


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _mount(folder: str) -> str:
    path = os.path.abspath(folder)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path
