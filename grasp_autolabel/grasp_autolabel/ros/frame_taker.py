"""Camera messages taken when the worker is ready for them, not delivered one callback each.

A 30 Hz camera sends colour, depth and camera_info; a node that processes a few frames a second
and hears every message through rclpy's executor spends most of a core in Python on messages it
then drops (measured with py-spy on inference_node at 30 Hz: the executor's threads busy 65 % of
the time), and on two cores that time is taken from the detector. Here the subscriptions belong
to a helper node that no executor spins: DDS keeps the newest messages in each reader's history
(KEEP_LAST), the worker waits on them with a wait set (as ``rclpy.wait_for_message`` does) and
takes them when it is free, so a dropped frame costs no Python at all. Each message keeps the time
DDS received it, so latency is still measured from the frame's arrival.
"""
from __future__ import annotations

import threading
import time

from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node

__all__ = ['FrameTaker']


def _ignore(_msg) -> None:
    """Do nothing: the helper node is never spun; its messages are taken, not called back."""


class FrameTaker:
    """Subscriptions of a helper node, taken on demand; ``watch`` (a StreamWatch) owns them.

    Parameters
    ----------
    node : rclpy.node.Node
        The node the inputs belong to (its context, namespace and remappings).
    watch_factory : callable
        ``watch_factory(helper_node) -> StreamWatch`` (the silent-input watch over the helper).
    """

    def __init__(self, node: Node, watch_factory):
        self.node = node
        self.helper = Node(f'_{node.get_name()}_inputs', namespace=node.get_namespace(),
                           context=node.context, use_global_arguments=False,
                           start_parameter_services=False, enable_rosout=False)
        self.watch = watch_factory(self.helper)
        # held while a wait set uses the subscriptions, and while the watch re-creates one
        self.lock = threading.Lock()

    def subscribe(self, name: str, msg_type, topic: str, qos) -> None:
        """Subscribe ``name`` to ``topic`` (resolved with the node's remappings)."""
        resolved = self.node.resolve_topic_name(topic)
        self.watch.subscribe(name, msg_type, resolved, _ignore, qos)

    def wait(self, names, timeout_s: float) -> bool:
        """Wait until a message is waiting on one of ``names`` (True) or ``timeout_s`` passed."""
        with self.lock:
            subs = [self.watch.streams[n].subscription for n in names]
            wait_set = _rclpy.WaitSet(len(subs), 0, 0, 0, 0, 0, self.helper.context.handle)
            try:
                wait_set.clear_entities()
                for s in subs:
                    wait_set.add_subscription(s.handle)
                wait_set.wait(int(timeout_s * 1e9))
                return bool(wait_set.get_ready_entities('subscription'))
            finally:
                wait_set.destroy_when_not_in_use()

    def take(self, name: str) -> list[tuple[object, int]]:
        """Return every message waiting on ``name``, oldest first, with its arrival time.

        The arrival time is ``time.monotonic_ns()`` at the moment DDS received it (from the
        message info's system-clock reception time).
        """
        out = []
        with self.lock:
            sub = self.watch.streams[name].subscription
            with sub.handle:
                while True:
                    taken = sub.handle.take_message(sub.msg_type, sub.raw)
                    if taken is None:
                        break
                    out.append(taken)
        if not out:
            return []
        self.watch.note(name)
        offset = time.monotonic_ns() - time.time_ns()  # system clock -> monotonic
        now = time.monotonic_ns()
        return [(msg, min(now, info['received_timestamp'] + offset)
                 if info.get('received_timestamp') else now) for msg, info in out]

    def check(self) -> list[str]:
        """Return the silent streams (the watch may re-create a subscription), under the lock."""
        with self.lock:
            return self.watch.check()

    def destroy(self) -> None:
        with self.lock:
            self.helper.destroy_node()
