"""Safe file I/O: durable atomic writes, output folders the tool owns, one writer at a time.

Every file the package writes goes through :func:`write_atomic`: a temporary file created
exclusively (``mkstemp``: a fresh random name, ``O_EXCL``, so a planted symlink is never
followed) in the target's folder, written, fsync'd, renamed over the target, and the folder
fsync'd, so after a crash the target is either the old file or the whole new one.

An output folder is *claimed* (:func:`claim_output`) before anything is written to it: it must
not be, hold or lie inside one of the command's inputs, and it is new, empty, or marked by an
earlier run of the same kind (``.grasp-autolabel.json``). ``--overwrite`` removes only the
entries that kind of output writes, never the folder or anything else in it.

:class:`FolderLock` is an advisory lock (``flock``) on ``FOLDER/.grasp-autolabel.lock``: a
second writer gets one line naming the process that holds it.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path
import re
import sys
import tempfile
import time

from grasp_autolabel.core.errors import OutputError

__all__ = ['OutputError', 'write_atomic', 'write_text_atomic', 'copy_atomic', 'fsync_dir',
           'check_not_input', 'claim_output', 'read_marker', 'remove_owned', 'FolderLock',
           'MARKER', 'LOCK_NAME']

MARKER = '.grasp-autolabel.json'
LOCK_NAME = '.grasp-autolabel.lock'
# Test hook: SIGKILL this process just before its N-th durable write (fault-injection tests).
_FAULT_AT = int(os.environ.get('GRASP_AUTOLABEL_KILL_AT_WRITE', '0') or 0)
_writes = 0


def fsync_dir(path) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fault_point() -> None:
    global _writes
    _writes += 1
    if _FAULT_AT and _writes >= _FAULT_AT:
        os.kill(os.getpid(), 9)


def write_atomic(path, write) -> None:
    """Write ``path`` atomically and durably; ``write(f)`` fills a binary file object."""
    path = Path(path)
    _fault_point()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:  # noqa: B902 (cleaned up, then re-raised)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def write_text_atomic(path, text: str) -> None:
    """Write a text file atomically and durably."""
    write_atomic(path, lambda f: f.write(text.encode('utf-8')))


def copy_atomic(src, dst) -> None:
    """Copy ``src``'s bytes to ``dst`` atomically and durably (``src`` read once, whole)."""
    with open(src, 'rb') as f:
        data = f.read()
    write_atomic(dst, lambda f: f.write(data))


# --------------------------------------------------------------------------------------------
# Output folders
# --------------------------------------------------------------------------------------------
def _resolved(path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(path)))).resolve()


def check_not_input(out, inputs, *, option: str = '--out') -> None:
    """Refuse an output that is, holds or lies inside one of ``inputs`` (OutputError)."""
    o = _resolved(out)
    for given in inputs:
        i = _resolved(given)
        if o == i:
            raise OutputError(f'{option} {out}: is the input {given}; choose another {option}')
        if i in o.parents:
            raise OutputError(f'{option} {out}: lies inside the input {given}; choose another '
                              f'{option}')
        if o in i.parents:
            raise OutputError(f'{option} {out}: holds the input {given}; choose another '
                              f'{option}')


def read_marker(folder) -> dict | None:
    """Return the marker an earlier run left in ``folder`` (None: none, or not ours)."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get('tool') == 'grasp-autolabel' else None


def remove_owned(folder: Path, owned) -> None:
    """Remove what matches the regexes ``owned`` (paths relative to ``folder``), files first."""
    patterns = [re.compile(p) for p in owned]
    dirs = []
    for root, subdirs, files in os.walk(folder, topdown=True, followlinks=False):
        rel_root = Path(root).relative_to(folder)
        for name in files:
            rel = (rel_root / name).as_posix()
            if any(p.fullmatch(rel) for p in patterns):
                os.unlink(Path(root) / name)
        dirs += [Path(root) / d for d in subdirs]
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()  # only folders left empty
        except OSError:
            pass


def claim_output(out, *, kind: str, inputs=(), overwrite: bool = False, owned=(),
                 option: str = '--out') -> tuple[Path, bool]:
    """Prepare ``out`` for an output of ``kind``; return ``(out, resumed)``.

    ``resumed`` is True when ``out`` holds an earlier output of the same kind that is kept
    (``overwrite`` False): the caller continues it or refuses. With ``overwrite`` only the files
    matching ``owned`` (regexes of paths relative to ``out``) are removed. A folder that holds
    files and no marker of ``kind`` is refused whatever the options.
    """
    out = Path(out)
    check_not_input(out, inputs, option=option)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputError(f'{option} {out}: is not a folder; choose another {option}')
    entries = [e for e in out.iterdir() if e.name not in (MARKER, LOCK_NAME)] \
        if out.is_dir() else []
    marker = read_marker(out) if out.is_dir() else None
    if entries and (marker is None or marker.get('kind') != kind):
        made = f"a {marker['kind']} output" if marker else 'files grasp-autolabel did not make'
        raise OutputError(f'{option} {out}: holds {made}; choose another {option} (nothing '
                          'there is removed, not even with --overwrite)')
    if entries and overwrite:
        remove_owned(out, owned)
    out.mkdir(parents=True, exist_ok=True)
    if marker is None or marker.get('kind') != kind:
        marker = {'tool': 'grasp-autolabel', 'kind': kind, 'created': time.strftime('%FT%T%z')}
        write_text_atomic(out / MARKER, json.dumps(marker) + '\n')
    return out, bool(entries) and not overwrite


class FolderLock:
    """Hold ``FOLDER/.grasp-autolabel.lock`` exclusively while a command writes ``FOLDER``."""

    def __init__(self, folder, what: str = 'writing'):
        self.folder, self.what, self.fd = Path(folder), what, None

    def __enter__(self) -> 'FolderLock':
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_NAME
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise OutputError(f'{path}: cannot be opened as a lock ({exc.strerror})') from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(self.fd, 400, 0).decode('utf-8', 'replace').strip() or 'another'
            os.close(self.fd)
            self.fd = None
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise OutputError(f'{self.folder}: in use by {holder}; wait for it to end (one '
                                  'writer at a time)') from None
            raise
        command = ' '.join([Path(sys.argv[0]).name] + sys.argv[1:3])
        info = f"process {os.getpid()} ({command}{' ...' if len(sys.argv) > 3 else ''}, " \
            f"since {time.strftime('%T')})"
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, info.encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
