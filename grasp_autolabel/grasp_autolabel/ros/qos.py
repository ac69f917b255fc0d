"""The QoS profiles of the node suite, chosen on purpose (see README, "QoS")."""
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, qos_profile_sensor_data, QoSProfile,
                       ReliabilityPolicy)

# Camera streams: best effort, shallow queue (what realsense2_camera publishes with).
SENSOR = qos_profile_sensor_data
# Labels and grasps: every message matters.
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST)
# The last captured frame: a late subscriber still gets it.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     history=HistoryPolicy.KEEP_LAST)
# The captured frames: the last CAPTURED_KEEP stay with the capture node, so an autolabel node
# that (re)starts late still labels the picks it missed (a subscriber of depth 1 gets the last).
CAPTURED_KEEP = 10
CAPTURED = QoSProfile(depth=CAPTURED_KEEP, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL,
                      history=HistoryPolicy.KEEP_LAST)
