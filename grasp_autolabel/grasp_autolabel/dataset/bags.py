"""Reading rosbag2 recordings with ``rosbags`` (no ROS install needed), including damaged ones.

A bag is a rosbag2 folder (``metadata.yaml`` + storage files), a storage file on its own
(``.mcap`` or ``.db3``), or a folder of storage files whose ``metadata.yaml`` was never written
(the recorder was killed). Bags cut short or damaged are read up to the fault:

* MCAP without its summary and footer (the file ends mid-record): the complete records before
  the cut are scanned (an incomplete chunk at the end is lost);
* SQLite3 whose file was cut: a copy trimmed to whole pages is read row by row until the first
  missing page.

:class:`BagSource` then yields ``(topic, timestamp_ns, raw CDR)`` in recording order and records
why and where reading stopped early in :attr:`BagSource.cut`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
import re
import shutil
import sqlite3
import struct
import tempfile
from typing import Iterator

from grasp_autolabel.core.errors import BagError

__all__ = ['BagError', 'BagSource', 'Topic', 'expand_bags', 'cdr_stamp_ns', 'typestore']

_STORAGE_EXT = ('.mcap', '.db3')
_MCAP_MAGIC = b'\x89MCAP0\r\n'


@dataclass(frozen=True)
class Topic:
    """One topic of a bag: its name, message type and how many messages it holds."""

    name: str
    msgtype: str
    count: int  # messages recorded (-1: unknown, e.g. a damaged bag)


_TYPESTORE = None


def typestore():
    """Return the ROS 2 message types ``rosbags`` knows (sensor_msgs, std_msgs, ...), once."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import get_typestore, Stores

        _TYPESTORE = get_typestore(Stores.ROS2_KILTED)
    return _TYPESTORE


def cdr_stamp_ns(raw: bytes) -> int | None:
    """Read ``header.stamp`` of a serialized message whose first field is a ``std_msgs/Header``.

    Read from the CDR bytes without decoding the rest (an image's pixels are not copied).
    """
    if len(raw) < 12 or raw[0] != 0 or raw[1] not in (0, 1):
        return None
    sec, nsec = struct.unpack_from('<iI' if raw[1] == 1 else '>iI', raw, 4)
    return sec * 1_000_000_000 + nsec


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', path.name)]


def _storage_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix in _STORAGE_EXT and p.is_file()),
                  key=_natural_key)


def _is_bag(path: Path) -> bool:
    if path.is_file():
        return path.suffix in _STORAGE_EXT
    return path.is_dir() and ((path / 'metadata.yaml').is_file() or bool(_storage_files(path)))


def expand_bags(paths) -> list[Path]:
    """Return the bags named by ``paths``.

    Bags themselves, or folders holding bags (one level down).

    Raises
    ------
    BagError
        A path does not exist or holds no bag.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise BagError(f'{p}: no such file or folder')
        if _is_bag(p):
            out.append(p)
            continue
        inner = sorted((q for q in p.iterdir() if _is_bag(q)),
                       key=_natural_key) if p.is_dir() else []
        if not inner:
            raise BagError(
                f'{p}: not a rosbag2 bag (no metadata.yaml, .mcap or .db3) and holds none')
        out.extend(inner)
    return out


# ------------------------------------------------------------------------------------- MCAP
def _salvage_mcap_reader(path: Path):
    """Return a ``rosbags`` MCAP reader over the complete records of a file cut short."""
    from rosbags.rosbag2.storage_mcap import McapReader

    class SalvageMcapReader(McapReader):
        """An MCAP reader for a file whose footer and summary are gone (a cut recording)."""

        def _open(self) -> None:
            # the footer and summary are gone: scan the records that are whole
            bio = self.bio
            if bio.read(8) != _MCAP_MAGIC:
                raise BagError(f'{path}: not an MCAP file (bad magic)')
            size = os.fstat(bio.fileno()).st_size
            pos = 8
            end = pos
            while pos + 9 <= size:
                bio.seek(pos)
                op, length = struct.unpack('<BQ', bio.read(9))
                # data end, footer, or the cut
                if op == 0x0F or op == 0x02 or pos + 9 + length > size:
                    break
                pos += 9 + length
                end = pos
            bio.seek(8)
            bio.read(1)
            bio.read(struct.unpack('<Q', bio.read(8))[0])  # the header record
            self.data_start = bio.tell()
            self.data_end = end
            self.meta_scan()
            counts = self.statistics.channel_message_counts
            self.connections = [c._replace(msgcount=counts.get(c.id, 0)) for c in self.connections]

        def messages(self, connections, start=None, stop=None):
            return self.messages_scan(connections, start, stop)

    return SalvageMcapReader(path)


# ------------------------------------------------------------------------------------ SQLite
def _salvage_sqlite(path: Path, tmpdir: Path) -> Path:
    """Copy a cut SQLite file, trimmed to whole pages, its header's page count fixed."""
    data = path.read_bytes()
    if len(data) < 100 or not data.startswith(b'SQLite format 3\x00'):
        raise BagError(f'{path}: not an SQLite database')
    page = struct.unpack('>H', data[16:18])[0]
    page = 65536 if page == 1 else page
    pages = len(data) // page
    fixed = bytearray(data[:pages * page])
    fixed[28:32] = struct.pack('>I', pages)
    out = tmpdir / path.name
    out.write_bytes(bytes(fixed))
    return out


class _SqliteRows:
    """Rows of a rosbag2 SQLite file in insertion order, until the first unreadable page."""

    def __init__(self, path: Path):
        self.path = path
        self.con = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
        try:
            rows = self.con.execute('SELECT id, name, type FROM topics').fetchall()
        except sqlite3.DatabaseError as exc:
            raise BagError(f'{path}: cannot read the topics table ({exc})') from None
        self.topics = {i: (name, t) for i, name, t in rows}
        try:
            counts = dict(self.con.execute(
                'SELECT topic_id, COUNT(*) FROM messages GROUP BY topic_id').fetchall())
        except sqlite3.DatabaseError:
            counts = {}
        self.counts = {self.topics[i][0]: counts.get(i, -1) for i in self.topics}

    def rows(self, names: set[str]):
        ids = [i for i, (n, _) in self.topics.items() if n in names]
        marks = ','.join('?' * len(ids))
        q = ('SELECT topic_id, timestamp, data FROM messages '
             f'WHERE topic_id IN ({marks}) ORDER BY id')
        for tid, ts, data in self.con.execute(q, ids):
            yield self.topics[tid][0], int(ts), bytes(data)

    def close(self):
        self.con.close()


# ------------------------------------------------------------------------------------ reader
def _check_storage_paths(folder: Path) -> None:
    """Refuse a metadata.yaml naming storage files outside the bag's folder (BagError)."""
    import yaml

    try:
        info = yaml.safe_load((folder / 'metadata.yaml').read_text())
        names = info['rosbag2_bagfile_information']['relative_file_paths']
    except Exception:  # noqa: B902 (an unreadable metadata.yaml is rosbags' to report)
        return
    root = folder.resolve()
    for name in names if isinstance(names, list) else []:
        if not isinstance(name, str) or root not in (root / name).resolve().parents:
            raise BagError(f'{folder}/metadata.yaml: relative_file_paths: {name!r} lies outside '
                           'the bag')


@dataclass
class BagSource:
    """One bag, opened for reading (use as a context manager).

    Attributes
    ----------
    topics : dict[str, Topic]
    damaged : str or None
        Set when the bag could only be opened by salvage (say why, for a warning).
    cut : str or None
        Set when reading stopped early at a fault: what failed and after which timestamp.
    """

    path: Path
    topics: dict = field(default_factory=dict)
    damaged: str | None = None
    cut: str | None = None

    def __post_init__(self):
        self.path = Path(self.path)
        self._readers: list = []  # rosbags readers, in file order
        self._sqlite: list[_SqliteRows] = []
        self._tmp: Path | None = None

    # ------------------------------------------------------------ opening
    def __enter__(self) -> 'BagSource':
        try:
            self._open()
        except BaseException:  # noqa: B902 (cleaned up, then re-raised)
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self) -> None:
        from rosbags.rosbag2 import Reader
        from rosbags.rosbag2.errors import ReaderError

        path = self.path
        if path.is_dir() and not (path / 'metadata.yaml').is_file():
            files = _storage_files(path)
            if not files:
                raise BagError(f'{path}: not a rosbag2 bag (no metadata.yaml, .mcap or .db3)')
            self.damaged = ('no metadata.yaml (the recording was not closed): '
                            'reading its storage files directly')
        else:
            files = [path]
            if path.is_dir():
                _check_storage_paths(path)
        for f in files:
            try:
                reader = Reader(f)
                reader.open()
                self._readers.append(reader)
                continue
            except FileNotFoundError as exc:
                raise BagError(f'{f}: {exc}') from None
            except ReaderError as exc:
                error = str(exc)
            # rosbags raises what its storage library raises
            except Exception as exc:  # noqa: B902
                error = f'{type(exc).__name__}: {exc}'
            for storage in ([f] if f.is_file() else _storage_files(f)):
                self._salvage(storage, error)
        for r in self._readers:
            for c in r.connections:
                old = self.topics.get(c.topic)
                if old is not None and old.msgtype != c.msgtype:
                    raise BagError(
                        f'{path}: topic {c.topic} is recorded with two types, {old.msgtype} and '
                        f'{c.msgtype}')
                n = max(c.msgcount, 0) + (max(old.count, 0) if old else 0)
                self.topics[c.topic] = Topic(c.topic, c.msgtype, n)
        for s in self._sqlite:
            for name, t in s.topics.values():
                self.topics.setdefault(name, Topic(name, t, s.counts.get(name, -1)))

    def _salvage(self, storage: Path, error: str) -> None:
        why = f"{storage.name} is damaged ({error.rstrip('.')})"
        if storage.suffix == '.mcap':
            reader = _salvage_mcap_reader(storage)
            try:
                reader.open()
            except BagError:
                raise
            except Exception as exc:  # noqa: B902
                raise BagError(
                    f'{storage}: cannot be read ({error}; salvage failed: {exc})') from None
            self._readers.append(reader)
        elif storage.suffix == '.db3':
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix='grasp_autolabel_bag_'))
            try:
                self._sqlite.append(_SqliteRows(_salvage_sqlite(storage, self._tmp)))
            except sqlite3.DatabaseError as exc:
                raise BagError(
                    f'{storage}: cannot be read ({error}; salvage failed: {exc})') from None
        else:
            raise BagError(f'{storage}: {error}')
        self.damaged = f'{why}: reading what is before the fault'

    def close(self) -> None:
        for r in self._readers:
            try:
                r.close()
            except Exception:  # noqa: B902
                pass
        for s in self._sqlite:
            s.close()
        self._readers, self._sqlite = [], []
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # ------------------------------------------------------------ reading
    def messages(self, names) -> Iterator[tuple[str, int, bytes]]:
        """``(topic, bag timestamp ns, raw CDR)`` of the named topics, in recording order.

        Stops at the first fault instead of raising; :attr:`cut` then says what and where.
        """
        names = set(names)
        last = None
        self.first_ns = None
        sources = [(r, [c for c in r.connections if c.topic in names]) for r in self._readers]
        try:
            for reader, conns in sources:
                if not conns:
                    continue
                for conn, ts, raw in reader.messages(conns):
                    last = ts
                    if self.first_ns is None:
                        self.first_ns = ts
                    yield conn.topic, ts, raw
            for s in self._sqlite:
                for row in s.rows(names):
                    last = row[1]
                    if self.first_ns is None:
                        self.first_ns = last
                    yield row
                self.cut = self.cut or self._cut_text(last, 'the database ends mid-file')
        except (sqlite3.DatabaseError, EOFError, struct.error) as exc:
            self.cut = self._cut_text(last, str(exc))
        # rosbags' ReaderError, lz4/zstd errors, apsw errors
        except Exception as exc:  # noqa: B902
            self.cut = self._cut_text(last, f'{type(exc).__name__}: {exc}')
        if self.cut is None and self.damaged and self._readers:
            self.cut = self._cut_text(last, 'the file ends mid-record')

    def _cut_text(self, last_ns, why: str) -> str:
        if last_ns is None:
            where = 'before the first message'
        else:
            at_s = (last_ns - (self.first_ns or last_ns)) * 1e-9
            where = f'after the message at {at_s:.2f} s into the recording'
        return f'{self.path}: reading stopped {where}: {why}'

    def deserialize(self, raw: bytes, msgtype: str):
        try:
            return typestore().deserialize_cdr(raw, msgtype)
        except Exception as exc:  # noqa: B902
            raise BagError(
                f'{self.path}: a {msgtype} message cannot be decoded ({type(exc).__name__}: {exc})'
            ) from None
