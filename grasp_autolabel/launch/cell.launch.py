"""The node suite at a real cell.

Realsense2_camera (aligned depth), capture, autolabel and inference.

    ros2 launch grasp_autolabel cell.launch.py [camera:=true] [auto_capture:=false]
        [session_dir:=...] [dataset_dir:=...] [model_path:=model.onnx] [inference:=true]
        [mounting_file:=my_mounting.yaml]

With ``camera:=true`` (default) realsense2_camera's ``rs_launch.py`` is included with
``align_depth.enable:=true`` and colour + depth enabled; with ``camera:=false`` start the camera
yourself, on this machine or another (its default topics are the capture node's defaults);
realsense2_camera need not be installed then. Press the button that calls
``/capture_node/capture`` after each pick, or set ``auto_capture:=true``. The inference node
serves grasps from ``model_path`` (an ONNX model from ``grasp-autolabel export-onnx``); started
without one it serves the shipped simulator-trained model (``none``: it waits for
``/inference_node/load_model``). ``mounting_file`` is the camera's
mounting from a hand-eye calibration (``config/mounting.yaml`` is the template): with it the
inference node gives every grasp in the robot's ``base_frame`` (``~/grasp_poses``, the
``~/sample_grasp_poses`` action for MoveIt Task Constructor) and publishes the mounting on
``/tf_static``; realsense2_camera's own TF is then off (``realsense_tf:=false``), since one frame
cannot have two parents.
"""
from grasp_autolabel.ros.launch_args import (argument, config, DEFAULT_DATASET_DIR,
                                             DEFAULT_SESSION_DIR, param, UserPath)
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    args = [
        argument('camera', True, "include realsense2_camera's rs_launch.py with aligned depth"),
        argument('auto_capture', False,
                 'capture when the scene changed and then stayed still (no button)'),
        argument('session_dir', DEFAULT_SESSION_DIR,
                 'capture session folder (created; continued if it holds frames)'),
        argument('dataset_dir', DEFAULT_DATASET_DIR,
                 'grasp dataset folder every labelled step is appended to'),
        argument('inference', True, 'start the inference node'),
        argument(
            'model_path',
            '',
            'detector for the inference node (.onnx, .pt or run folder); empty: the shipped '
            'simulator-trained model; none: wait for /inference_node/load_model',
        ),
        argument('mounting_file', config('mounting.yaml'),
                 "the camera's mounting (hand-eye calibration: base_frame, mounting_translation, "
                 'mounting_rotation) for the inference node; the default template has none'),
        argument('realsense_tf', False,
                 "let realsense2_camera publish its own TF; off: the mounting gives the camera's "
                 'optical frame its parent'),
    ]
    # FindPackageShare is looked up when the include runs, i.e. only with camera:=true
    realsense = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([
            FindPackageShare('realsense2_camera'), 'launch', 'rs_launch.py'])),
        launch_arguments={'align_depth.enable': 'true', 'enable_color': 'true',
                          'enable_depth': 'true', 'pointcloud.enable': 'false',
                          'publish_tf': LaunchConfiguration('realsense_tf')}.items(),
        condition=IfCondition(LaunchConfiguration('camera')))
    capture = Node(package='grasp_autolabel', executable='capture_node', name='capture_node',
                   parameters=[config('capture.yaml'),
                               {'auto_capture': param('auto_capture', bool),
                                'session_dir': LaunchConfiguration('session_dir')}],
                   output='screen')
    autolabel = Node(package='grasp_autolabel', executable='autolabel_node', name='autolabel_node',
                     parameters=[config('autolabel.yaml'),
                                 {'dataset_dir': LaunchConfiguration('dataset_dir'),
                                  'session_dir': LaunchConfiguration('session_dir')}],
                     output='screen')
    inference = Node(package='grasp_autolabel', executable='inference_node', name='inference_node',
                     parameters=[config('inference.yaml'), UserPath('mounting_file'),
                                 {'model_path': LaunchConfiguration('model_path')}],
                     condition=IfCondition(LaunchConfiguration('inference')), output='screen')
    return LaunchDescription(args + [realsense, capture, autolabel, inference])
