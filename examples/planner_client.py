#!/usr/bin/env python3
"""How a motion planner consumes grasp_autolabel's grasps: the best reachable grasp pose.

Two ways to get the detector's grasps from inference_node:

* ``--mode subscribe`` (default): listen to ``/inference_node/grasps`` (GraspRectArray, reliable,
  one message per processed camera frame, best grasp first) and plan on the newest message;
* ``--mode service``: call ``/inference_node/get_grasps`` when the arm is ready for the next
  pick, asking for a frame newer than the last one used (no stale grasps after a pick).

Each grasp carries its pose in the camera optical frame (header.frame_id): position on the log's
surface, z along the optical axis (the approach), x along the closing direction; ``opening_m``
is the jaw opening it needs. "Reachable" here is a box in that frame plus the gripper's stroke;
a real planner transforms the pose into its base frame (tf2) and asks its IK instead.

    python examples/planner_client.py [--mode service] [--picks 3] [--max-opening-m 0.25]
        [--min-z 0.3 --max-z 3.0] [--max-xy 1.5] [--timeout 10]

Prints one line per pick: ``pick K: grasp (x, y, z) m, closing angle A deg, opening O m,
score S, frame STAMP``; exits 1 when no reachable grasp came within --timeout.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import rclpy
from builtin_interfaces.msg import Time
from grasp_autolabel_msgs.msg import GraspRectArray
from grasp_autolabel_msgs.srv import GetGrasps
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy


def reachable(g, args) -> bool:
    """A grasp the arm can take: valid 3-D pose, inside the workspace, within the stroke."""
    p = g.pose.position
    return (g.pose_valid and args.min_z <= p.z <= args.max_z and math.hypot(p.x, p.y) <= args.max_xy
            and 0.0 < g.opening_m <= args.max_opening_m)


def best(msg: GraspRectArray, args):
    """The first reachable grasp: the message is sorted best first."""
    return next((g for g in msg.grasps if reachable(g, args)), None)


def describe(k: int, g, header) -> str:
    p, q = g.pose.position, g.pose.orientation
    closing = math.degrees(2.0 * math.atan2(q.z, q.w))  # rotation about the optical axis
    return (f"pick {k}: grasp ({p.x:.3f}, {p.y:.3f}, {p.z:.3f}) m in {header.frame_id}, closing angle "
            f"{closing:.0f} deg, opening {g.opening_m:.3f} m, score {g.score:.2f}, "
            f"frame {header.stamp.sec}.{header.stamp.nanosec:09d}")


class Planner(Node):
    def __init__(self, args):
        super().__init__("planner_client")
        self.args = args
        self.newest: GraspRectArray | None = None
        if args.mode == "subscribe":
            qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            self.create_subscription(GraspRectArray, args.grasps_topic, self.on_grasps, qos)
        else:
            self.client = self.create_client(GetGrasps, args.service)

    def on_grasps(self, msg: GraspRectArray) -> None:
        self.newest = msg

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def next_grasps(self, after: Time, deadline: float) -> GraspRectArray | None:
        """Grasps of a frame stamped after ``after`` (the frame the last pick used)."""
        def newer(msg):
            return (msg.header.stamp.sec, msg.header.stamp.nanosec) > (after.sec, after.nanosec)

        if self.args.mode == "subscribe":
            while time.monotonic() < deadline:
                if self.newest is not None and newer(self.newest):
                    return self.newest
                self.spin_for(0.05)
            return None
        while not self.client.wait_for_service(timeout_sec=0.2):
            if time.monotonic() > deadline:
                return None
        left = max(0.1, deadline - time.monotonic())
        future = self.client.call_async(GetGrasps.Request(newer_than=after, timeout_s=min(left, 2.0)))
        rclpy.spin_until_future_complete(self, future, timeout_sec=left + 1.0)
        reply = future.result()
        if reply is None or not reply.success:
            if reply is not None:
                self.get_logger().info(f"no grasps yet: {reply.message}")
            return None
        return reply.grasps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("subscribe", "service"), default="subscribe")
    ap.add_argument("--grasps-topic", default="/inference_node/grasps")
    ap.add_argument("--service", default="/inference_node/get_grasps")
    ap.add_argument("--picks", type=int, default=3, help="plan this many picks, each on a newer frame")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reachable grasp per pick")
    ap.add_argument("--min-z", type=float, default=0.3, help="workspace: nearest depth, m")
    ap.add_argument("--max-z", type=float, default=3.0, help="workspace: farthest depth, m")
    ap.add_argument("--max-xy", type=float, default=1.5, help="workspace: largest distance off the optical axis, m")
    ap.add_argument("--max-opening-m", type=float, default=0.3, help="the gripper's stroke, m")
    args = ap.parse_args(argv)
    rclpy.init()
    node = Planner(args)
    last = Time()
    try:
        for k in range(1, args.picks + 1):
            deadline = time.monotonic() + args.timeout
            chosen = None
            while chosen is None and time.monotonic() < deadline:
                msg = node.next_grasps(last, deadline)
                if msg is None:
                    break
                last = msg.header.stamp  # never plan twice on one frame
                chosen = best(msg, args)
            if chosen is None:
                print(f"pick {k}: no reachable grasp within {args.timeout:g} s", file=sys.stderr)
                return 1
            print(describe(k, chosen, msg.header), flush=True)
            # here a planner would move the arm; the next pick needs a frame taken after it
    except KeyboardInterrupt:
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
