"""The one way every node of the suite starts and stops."""
from __future__ import annotations

import sys

import rclpy

from grasp_autolabel.ros.params import ParameterError


def run_node(node_class, name: str, args=None, *, multithreaded: bool = False) -> int:
    """Create ``node_class()``, spin it until Ctrl-C or shutdown, and clean up.

    A bad parameter stops the node at start-up with one line naming it (exit code 2), never a
    traceback. ``multithreaded``: spin a MultiThreadedExecutor (for services that wait while
    subscriptions go on).
    """
    rclpy.init(args=args)
    try:
        node = node_class()
    except ParameterError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        rclpy.try_shutdown()  # Ctrl-C while the node was still starting: a clean stop
        return 0
    except Exception:
        if rclpy.ok():
            raise
        return 0  # shut down under the constructor (SIGTERM while loading a model)
    try:
        if multithreaded:
            executor = rclpy.executors.MultiThreadedExecutor(num_threads=4)
            executor.add_node(node)
            executor.spin()
        else:
            rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except Exception:
        # Ctrl-C shuts the context down under a callback that is still publishing (a timer's
        # frame): that is the end of a clean stop, not an error; anything else is
        if rclpy.ok():
            raise
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
