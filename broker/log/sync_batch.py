"""SyncBatch: many small durable writes made durable together.

Creating or promoting a thousand replicas writes a few small files per partition (the
leader-epoch checkpoint, the topic id) and creates directories. One at a time, each costs a
file fsync, a rename and a directory fsync on the event loop; on one disk that is seconds.
A batch stages the work instead and ``commit()`` does all of it at once, off the loop: the
fsyncs run together in worker threads, where the filesystem folds them into a few journal
commits.

Invariant: after ``commit()`` returns, every staged file holds its new content and every
registered directory entry is durable; each ``then`` callback has run. Before that, a crash
leaves a staged file's old content (or none) plus a ``.tmp`` file that log loading removes.
Callers must not act on staged state (lead a partition, answer the controller) before the
commit returns. Owned by the event loop; only the fsyncs run in threads.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from .files import TMP_SUFFIX, fsync_dir, fsync_path, write_synced

# Threads that fsync at once: enough for the journal to batch them, few enough to stay cheap.
WORKERS = 8


def _fsync_all(paths: list[str], fsync: Callable[[str], None]) -> None:
    for path in paths:
        fsync(path)


class SyncBatch:
    def __init__(self) -> None:
        self._files: dict[str, list[Callable[[], None]]] = {}  # target path -> callbacks
        self._dirs: set[str] = set()

    def __len__(self) -> int:
        return len(self._files) + len(self._dirs)

    def replace(self, path: str, data: bytes, then: Callable[[], None] | None = None) -> None:
        """Stage ``path``'s new content (written now to ``path.tmp``, not yet synced);
        ``then`` runs once it is durable."""
        write_synced(path + TMP_SUFFIX, (data,), sync=False)
        callbacks = self._files.setdefault(path, [])
        if then is not None:
            callbacks.append(then)

    def sync_dir(self, path: str) -> None:
        """Make entries created in directory ``path`` durable at commit."""
        self._dirs.add(path)

    async def commit(self) -> None:
        """Fsync the staged files, rename them into place, fsync their directories; raises
        OSError when the disk refuses (then nothing staged may be relied on)."""
        files, dirs = self._files, self._dirs
        self._files, self._dirs = {}, set()
        if not files and not dirs:
            return
        await _in_threads([p + TMP_SUFFIX for p in files], fsync_path)
        for path in files:
            os.replace(path + TMP_SUFFIX, path)
            dirs.add(os.path.dirname(path) or ".")
        await _in_threads(sorted(dirs), fsync_dir)
        for callbacks in files.values():
            for callback in callbacks:
                callback()


async def _in_threads(paths: list[str], fsync: Callable[[str], None]) -> None:
    if not paths:
        return
    loop = asyncio.get_running_loop()
    width = min(WORKERS, len(paths))
    chunks = [paths[i::width] for i in range(width)]
    await asyncio.gather(*(loop.run_in_executor(None, _fsync_all, chunk, fsync)
                           for chunk in chunks))

