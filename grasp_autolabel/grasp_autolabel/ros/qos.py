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
