"""What every node reports the same way.

Faults counted by kind and logged once per kind, a `/diagnostics` status, and message stamps as
integers.
"""
from __future__ import annotations

from collections import Counter

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from grasp_autolabel.ros.qos import RELIABLE

__all__ = ['Health', 'OK', 'WARN', 'ERROR']

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


class Health:
    """A node's counts, once-per-kind warnings and `/diagnostics` status.

    ``counts`` is shared with the node; the status is named ``grasp_autolabel: NAME``.

    Parameters
    ----------
    node : rclpy.node.Node
    name : str
    hardware_id : str
        What the status is about (the node's main input topic).
    dropped : bool
        Faults are input messages dropped (counted as ``dropped_KIND``, logged as dropped);
        otherwise they are counted as ``KIND`` (a degraded frame still served).
    """

    def __init__(self, node, name: str, hardware_id: str, *, dropped: bool = True):
        self.node = node
        self.name, self.hardware_id, self.dropped = (f'grasp_autolabel: {name}', hardware_id,
                                                     dropped)
        self.counts: Counter = Counter()
        self.warned: set = set()
        self.pub = node.create_publisher(DiagnosticArray, '/diagnostics', RELIABLE)

    def bad(self, kind: str, message: str) -> None:
        """Count a fault of ``kind``; the first of each kind is logged with ``message``."""
        self.counts[f'dropped_{kind}' if self.dropped else kind] += 1
        if kind not in self.warned:
            self.warned.add(kind)
            what = 'dropped; further' if self.dropped else 'further'
            self.node.get_logger().warning(
                f"{message} ({what} '{kind}' problems are only counted in /diagnostics)")

    def publish(self, level: int, message: str, values: dict) -> None:
        """Publish the status with ``values`` (``key -> value``, values as text)."""
        pairs = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        status = DiagnosticStatus(name=self.name, hardware_id=self.hardware_id, level=level,
                                  message=message, values=pairs)
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.pub.publish(msg)
