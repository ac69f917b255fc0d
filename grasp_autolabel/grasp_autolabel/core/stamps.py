"""Stamps: the one frame matcher of the package (:class:`StampPairer`) and stamp conversions.

Pure Python: a ROS ``builtin_interfaces/Time`` is read through its ``sec`` and ``nanosec`` fields.
"""
from __future__ import annotations

from collections import deque

__all__ = ['StampPairer', 'stamp_ns', 'stamp_s']


def stamp_ns(stamp) -> int:
    """Return a builtin_interfaces/Time as integer nanoseconds.

    Exact, so it serves as a key for matching frames.
    """
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def stamp_s(header) -> float:
    """Return a header's stamp in seconds."""
    return stamp_ns(header.stamp) * 1e-9


class StampPairer:
    """Match the frames of several streams by stamp: the one pairer of the package.

    Colour and depth (capture node, bag export), the three parts of a captured frame (autolabel
    node, ``max_dt=0``), or a depth frame for a colour frame (inference node, :meth:`take`).
    Keeps the last ``keep`` unmatched items ``(stamp, payload)`` of each stream; :meth:`add`
    returns ``{stream: (stamp, payload)}`` as soon as every other stream holds an item within
    ``max_dt`` of the new one (the nearest is taken), else None. ``dropped`` counts items that
    left unmatched (a lost or late message).
    """

    def __init__(self, streams=('colour', 'depth'), max_dt: float = 0.02, keep: int = 5):
        self.max_dt = max_dt
        self.queues = {name: deque(maxlen=keep) for name in streams}
        self.dropped = 0

    def _nearest(self, stream: str, stamp):
        best = min(self.queues[stream], key=lambda it: abs(it[0] - stamp), default=None)
        return best if best is not None and abs(best[0] - stamp) <= self.max_dt else None

    def _remove(self, stream: str, item) -> None:
        queue = self.queues[stream]
        del queue[next(i for i, it in enumerate(queue) if it is item)]

    def take(self, stream: str, stamp):
        """Remove and return ``stream``'s item nearest ``stamp`` (within ``max_dt``), or None."""
        best = self._nearest(stream, stamp)
        if best is not None:
            self._remove(stream, best)
        return best

    def add(self, stream: str, stamp, payload):
        """Add an item; return the matched set of every stream, or None (the item is kept)."""
        found = {}
        for other in self.queues:
            if other != stream:
                found[other] = self._nearest(other, stamp)
                if found[other] is None:
                    queue = self.queues[stream]
                    self.dropped += len(queue) == queue.maxlen
                    queue.append((stamp, payload))
                    return None
        for other, item in found.items():
            self._remove(other, item)
        found[stream] = (stamp, payload)
        return found
