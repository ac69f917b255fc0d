"""Offline labelling of a recorded session: autolabel_node alone, on the bag's clock.

    ros2 launch grasp_autolabel replay.launch.py dataset_dir:=dataset
    ros2 bag play SESSION_BAG --clock      # a bag of /capture_node/captured/* topics

The captured topics are reliable and transient-local; play the bag with its recorded QoS (the
default) so the reliable subscriptions receive them.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    autolabel_config = os.path.join(get_package_share_directory("grasp_autolabel"), "config", "autolabel.yaml")
    args = [DeclareLaunchArgument("dataset_dir", default_value="dataset", description="grasp dataset folder")]
    autolabel = Node(
        package="grasp_autolabel", executable="autolabel_node", name="autolabel_node",
        parameters=[autolabel_config, {"dataset_dir": LaunchConfiguration("dataset_dir"), "use_sim_time": True}],
        output="screen",
    )
    return LaunchDescription(args + [autolabel])
