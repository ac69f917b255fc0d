"""The one way every node of the suite starts and stops."""
from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time

from grasp_autolabel.ros.params import ParameterError
import rclpy

# A stop that has not ended this long after SIGINT / SIGTERM is hung (in a callback that cannot
# return, in DDS discovery, in a C call of the constructor): the stacks of every thread are
# printed and the process exits 3.
STOP_GRACE_S = 1.5


_stop_requests: list[int] = []


def _request_stop(signum, frame) -> None:
    """SIGINT / SIGTERM at the Python level only notes the request.

    Rclpy's own handler (which calls this one after it) shuts the context down and the spin ends; a
    KeyboardInterrupt raised wherever the main thread happens to be (inside rclpy's Task, a thread
    start) would turn a clean stop into a traceback.
    """
    _stop_requests.append(signum)


def _shutting_down(wait_s: float = 1.0) -> bool:
    """Return True when the context is (about to be) shut down.

    Rclpy's signal handler shuts it down from another thread, so an error raised under it may be
    seen a moment before ``ok()`` turns false.
    """
    deadline = time.monotonic() + wait_s
    while rclpy.ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _watch_stop(name: str, fd: int) -> None:
    """Daemon thread: after SIGINT / SIGTERM the process must end within STOP_GRACE_S.

    The signal is seen on ``fd`` (``signal.set_wakeup_fd``): Python's C-level handler writes
    to it the moment the signal arrives, whichever thread takes it and whatever the main
    thread is blocked in, where a Python handler would wait for the main thread to return.
    """
    while True:
        try:
            data = os.read(fd, 64)
        except OSError:
            return  # closed: the process image is being replaced (rejoin)
        if signal.SIGINT in data or signal.SIGTERM in data:
            break
    time.sleep(STOP_GRACE_S)
    print(f'{name}: still running {STOP_GRACE_S:g} s after the stop signal; stacks of every '
          'thread follow, then exit 3', file=sys.stderr, flush=True)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(3)


def rejoin(node, why: str) -> None:
    """Start this node again as a fresh process image (same PID, same arguments).

    A new DDS participant, for a node that DDS left deaf for good (``watch.StreamWatch``). The
    node's state that matters is on disk (the session's numbering, the dataset); file
    descriptors other than stdin/out/err are closed so no socket of the old participant lives
    on.
    """
    node.get_logger().warning(f'{why}: starting again as a fresh DDS participant (rejoin '
                              f"{os.environ.get('GRASP_AUTOLABEL_REJOINS', '1')})")
    sys.stdout.flush()
    sys.stderr.flush()
    for fd in sorted(int(f) for f in os.listdir('/proc/self/fd') if int(f) > 2):
        try:
            os.close(fd)
        except OSError:
            pass
    spec = getattr(sys.modules['__main__'], '__spec__', None)
    head = ['-m', spec.name] if spec is not None else [sys.argv[0]]  # python -m or a script
    os.execv(sys.executable, [sys.executable, *head, *sys.argv[1:]])


def run_node(node_class, name: str, args=None, *, multithreaded: bool = False) -> int:
    """Create ``node_class()``, spin it until Ctrl-C or shutdown, and clean up.

    A bad parameter stops the node at start-up with one line naming it (exit code 2), never a
    traceback. Ctrl-C or SIGTERM, also while the node is starting, is a clean stop (exit 0); a
    stop that has not ended STOP_GRACE_S after the signal prints every thread's stack and
    exits 3 rather than wait for SIGKILL. ``multithreaded``: spin a MultiThreadedExecutor (for
    services that wait while subscriptions go on).
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _request_stop)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=_watch_stop, args=(name, read_fd), name='stop-watch',
                     daemon=True).start()
    rclpy.init(args=args)
    if _stop_requests:  # asked to stop before rclpy was listening
        rclpy.try_shutdown()
        return 0
    try:
        node = node_class()
    except ParameterError as exc:
        print(f'{name}: {exc}', file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        rclpy.try_shutdown()  # Ctrl-C while the node was still starting: a clean stop
        return 0
    except Exception:  # noqa: B902 (re-raised unless shutting down)
        if not _shutting_down():
            raise
        return 0  # shut down under the constructor (SIGTERM while loading a model)
    if _stop_requests and not rclpy.ok():
        node.destroy_node()
        return 0
    try:
        if multithreaded:
            executor = rclpy.executors.MultiThreadedExecutor(num_threads=4)
            executor.add_node(node)
            executor.spin()
        else:
            rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except Exception:  # noqa: B902 (re-raised unless shutting down)
        # Ctrl-C shuts the context down under a callback that is still publishing (a timer's
        # frame) or a message being taken: the end of a clean stop, not an error; anything
        # else is one
        if not _shutting_down():
            raise
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
