"""The simulated cell seen from outside.

An rclpy node in a context of its own that calls the cell's services and listens to its labels and
diagnostics, watching the node processes while it waits (``run-sim``, the demo).
"""
from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray
from grasp_autolabel.ros.qos import RELIABLE
from grasp_autolabel_msgs.msg import GraspRectArray
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_srvs.srv import Trigger

__all__ = ['CellClient']

MATCH_SETTLE_S = 0.5  # after a service first looks ready: time for its side to match ours
RESEND_S = 3.0  # an idempotent request without an answer is sent again this often


class CellClient:
    """A client of the cell: its services, labels, diagnostics and any topic it listens to.

    ``procs``: the node processes (objects with ``name``, ``alive()``, ``proc`` and ``tail()``)
    whose death ends any wait with an error; ``timeout_s`` for services; ``context``: an
    initialised rclpy context to use (a test's), else one of its own, shut down by
    :meth:`close`.
    """

    def __init__(self, procs=(), timeout_s: float = 30.0, name: str = 'cell_client',
                 context=None):
        self.procs, self.timeout_s = list(procs), timeout_s
        self._own_context = context is None
        if context is None:
            context = rclpy.Context()
            rclpy.init(context=context)
        self.context = context
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.labels: list = []  # GraspRectArray from /autolabel_node/grasps
        self.status: dict = {}  # node name -> {key: value} of its latest /diagnostics status
        self.diagnostics: list = []  # every DiagnosticArray received
        self.node.create_subscription(GraspRectArray, '/autolabel_node/grasps', self.labels.append,
                                      RELIABLE)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                      RELIABLE)
        self._clients: dict = {}

    def _on_diagnostics(self, msg) -> None:
        self.diagnostics.append(msg)
        for status in msg.status:
            self.status[status.name.split(': ')[-1]] = {kv.key: kv.value for kv in status.values}

    def autolabel_frames(self) -> int:
        """Return how many captured frames the autolabel node has received."""
        return int(self.status.get('autolabel_node', {}).get('frames', 0))

    def listen(self, msg_type, topic: str, qos=RELIABLE, *, raw: bool = False,
               callback=None) -> list:
        """Subscribe to ``topic``; return the list its messages are appended to."""
        received: list = []
        self.node.create_subscription(msg_type, topic, callback or received.append, qos, raw=raw)
        return received

    def spin_for(self, seconds: float) -> None:
        """Spin for ``seconds`` (still ending with an error if a node process dies)."""
        self.spin_until(lambda: False, seconds)

    def spin_until(self, predicate, seconds: float) -> bool:
        """Spin until ``predicate()``; RuntimeError naming a node process that died meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if predicate():
                return True
            for p in self.procs:
                if not p.alive():
                    raise RuntimeError(f'{p.name} exited with {p.proc.returncode}:\n{p.tail()}')
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def call(self, name: str, srv_type=Trigger, request=None, *, idempotent: bool = False):
        """Call the service ``name`` (std_srvs/Trigger unless ``srv_type``) with ``request``.

        RuntimeError when it does not come up or answer within ``timeout_s``. One client per
        service for the whole run: a client made per call can be handed the late answer to an
        earlier client's request.

        The first call of a client waits ``MATCH_SETTLE_S`` after the service looks ready:
        ready means *our* readers and writers matched the server's, not that the server's
        response writer has matched our reader yet, and Fast DDS drops a response to a reader
        it has not matched after 100 ms (rmw_fastrtps's ``__rmw_send_response``). An
        ``idempotent`` request (a query) is also sent again every ``RESEND_S`` until an answer
        comes (the first answer wins).
        """
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self.node.create_client(srv_type, name)
            if not self.spin_until(client.service_is_ready, self.timeout_s):
                raise RuntimeError(f'service {name} did not come up within {self.timeout_s:.0f} s')
            self.spin_for(MATCH_SETTLE_S)
        elif not self.spin_until(client.service_is_ready, self.timeout_s):
            raise RuntimeError(f'service {name} did not come up within {self.timeout_s:.0f} s')
        request = request if request is not None else srv_type.Request()
        futures = [client.call_async(request)]
        end = time.monotonic() + self.timeout_s
        while not any(f.done() for f in futures):
            left = end - time.monotonic()
            if left <= 0:
                raise RuntimeError(f'service {name} did not answer within {self.timeout_s:.0f} s')
            if self.spin_until(lambda: any(f.done() for f in futures),
                               min(left, RESEND_S if idempotent else left)):
                break
            if idempotent and time.monotonic() < end:
                futures.append(client.call_async(request))
        return next(f for f in futures if f.done()).result()

    def __enter__(self) -> 'CellClient':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        if self._own_context:
            rclpy.shutdown(context=self.context)
