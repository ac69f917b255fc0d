"""Input streams that cannot stop unnoticed.

A node's camera streams can stop for reasons it cannot see from its callbacks: the camera
died, a cable, or DDS itself (a subscription matched to its publisher that receives nothing).
:class:`StreamWatch` wraps the node's subscriptions, notes when each last delivered a message,
and on every :meth:`check` (the node's diagnostics timer) names the streams that have been
silent for ``timeout_s`` and subscribes a silent stream afresh (a new DDS reader, discovered and
matched anew), whether or not a publisher is visible: first after ``timeout_s``, then backing
off (doubling, at most ``MAX_BACKOFF_S``). That recovers a subscription DDS left matched but
deaf, and one that never matched a publisher that restarted (the graph may show the publisher
or not: neither is proof that its data will come).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import os
import time

MAX_BACKOFF_S = 30.0  # the longest wait between two fresh subscriptions of a silent stream
REJOIN_ENV = 'GRASP_AUTOLABEL_REJOINS'  # rejoins in a row, carried to the new process image


@dataclass
class _Stream:
    name: str
    args: tuple
    kwargs: dict
    subscription: object = None
    last: float | None = None  # monotonic time of the last message
    since: float = field(default_factory=time.monotonic)  # subscribed (or resubscribed) at
    stalled: bool = False
    resubscribed: int = 0
    backoff: float = 0.0  # wait before the next fresh subscription (0: timeout_s)
    unseen_since: float | None = None  # monotonic time since no publisher has been visible


class StreamWatch:
    """Subscriptions of ``node`` that report (and try to cure) silence.

    Parameters
    ----------
    node : rclpy.node.Node
    timeout_s : float
        A stream silent this long is stalled.
    rejoin_after_s : float
        Every stream silent with no publisher visible this long (0: never): ``on_rejoin()`` is
        called (the node starts again as a fresh DDS participant, ``runner.rejoin``); doubled
        for each rejoin in a row, up to 32x.
    """

    def __init__(self, node, timeout_s: float, *, rejoin_after_s: float = 0.0, on_rejoin=None):
        self.node = node
        self.timeout_s = float(timeout_s)
        self.streams: dict[str, _Stream] = {}
        self.rejoins = int(os.environ.get(REJOIN_ENV, '0') or 0)
        self.rejoin_after_s = float(rejoin_after_s) * 2 ** min(self.rejoins, 5)
        self.on_rejoin = on_rejoin

    def subscribe(self, name: str, msg_type, topic: str, callback, qos, **kwargs):
        """``node.create_subscription`` under the name ``name`` (colour, depth, ...)."""
        stream = _Stream(name, (msg_type, topic, callback, qos), kwargs)
        self.streams[name] = stream
        self._create(stream)
        return stream.subscription

    def _create(self, stream: _Stream) -> None:
        msg_type, topic, callback, qos = stream.args

        def seen(msg, _stream=stream, _callback=callback):
            _stream.last = time.monotonic()
            return _callback(msg)

        stream.subscription = self.node.create_subscription(msg_type, topic, seen, qos,
                                                            **stream.kwargs)
        stream.since = time.monotonic()

    def note(self, name: str) -> None:
        """Note that ``name`` delivered a message now (for messages taken, not called back)."""
        self.streams[name].last = time.monotonic()

    def silent_s(self, name: str, now: float | None = None) -> float:
        """Seconds since ``name`` last delivered a message (or since it was subscribed)."""
        stream = self.streams[name]
        now = time.monotonic() if now is None else now
        return now - (stream.last if stream.last is not None else stream.since)

    def check(self) -> list[str]:
        """One line per stalled stream (empty: all flow); resubscribes where that may help."""
        problems = []
        now = time.monotonic()
        log = self.node.get_logger()
        for stream in self.streams.values():
            topic = stream.args[1]
            silent = self.silent_s(stream.name, now)
            publishers = self.node.count_publishers(topic)
            stream.unseen_since = None if publishers else (stream.unseen_since or now)
            if silent < self.timeout_s:
                stream.backoff = 0.0
                if self.rejoins and stream.last is not None:  # heard: from the shortest wait
                    self.rejoins = 0
                    os.environ[REJOIN_ENV] = '0'
                if stream.stalled:
                    stream.stalled = False
                    log.info(f'{stream.name} frames on {topic} flow again')
                continue
            what = 'no message yet' if stream.last is None else f'no message for {silent:.1f} s'
            where = f'no publisher on {topic}' if publishers == 0 else (
                f'on {topic} although {publishers} publisher(s) match')
            problems.append(f'{stream.name}: {what}, {where} (subscribing afresh)')
            if not stream.stalled:
                stream.stalled = True
                log.warning(problems[-1])
            wait = stream.backoff or self.timeout_s
            if now - stream.since >= wait:
                # a new reader goes through discovery and matching again
                self.node.destroy_subscription(stream.subscription)
                self._create(stream)
                stream.resubscribed += 1
                stream.backoff = min(2.0 * wait, max(MAX_BACKOFF_S, self.timeout_s))
        self._maybe_rejoin(now)
        return problems

    def _maybe_rejoin(self, now: float) -> None:
        """Start afresh when no stream has a publisher in sight for ``rejoin_after_s``.

        A DDS participant can stay unmatched with a publisher for good (measured with Fast DDS
        3.2's LARGE_DATA transports after a peer was SIGKILLed and restarted: its TCP channel
        stuck, no endpoint discovery); a new participant in a new process image is the cure.
        """
        if not (self.rejoin_after_s and self.on_rejoin and self.streams):
            return
        unseen = [now - s.unseen_since for s in self.streams.values()
                  if s.unseen_since is not None and s.stalled]
        if len(unseen) == len(self.streams) and min(unseen) >= self.rejoin_after_s:
            os.environ[REJOIN_ENV] = str(self.rejoins + 1)
            self.on_rejoin(f'no publisher on any input for {min(unseen):.0f} s')

    def values(self) -> dict[str, str]:
        """Diagnostic values: seconds each stream has been silent, resubscriptions."""
        now = time.monotonic()
        out = {
            f'{s.name}_silent_s': f'{self.silent_s(s.name, now):.1f}'
            for s in self.streams.values()
        }
        out['resubscribed'] = str(sum(s.resubscribed for s in self.streams.values()))
        return out
