"""Offline labelling of a recorded session: autolabel_node alone, on the bag's clock.

    ros2 launch grasp_autolabel replay.launch.py [dataset_dir:=...]
    ros2 bag play SESSION_BAG --clock      # a bag of /capture_node/captured/* topics

The captured topics are reliable and transient-local; play the bag with its recorded QoS (the
default) so the reliable subscriptions receive them.
"""
from grasp_autolabel.ros.launch_args import argument, config, DEFAULT_DATASET_DIR, param
from launch import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    args = [argument('dataset_dir', DEFAULT_DATASET_DIR,
                     'grasp dataset folder every labelled step is appended to'), argument(
                         'use_sim_time', True, "run on the bag's /clock (play it with --clock)")]
    autolabel = Node(package='grasp_autolabel', executable='autolabel_node', name='autolabel_node',
                     parameters=[config('autolabel.yaml'),
                                 {'dataset_dir': LaunchConfiguration('dataset_dir'),
                                  'use_sim_time': param('use_sim_time', bool)}], output='screen')
    return LaunchDescription(args + [autolabel])
