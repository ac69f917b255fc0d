"""grasp_autolabel: an ament_python package that is also a plain pip-installable library.

`pip install ./grasp_autolabel` gives the core library and the `grasp-autolabel` CLI on a
machine without ROS; `colcon build` installs it as a ROS 2 package with one executable per
node in lib/grasp_autolabel (so `ros2 run grasp_autolabel <node>` finds them).
"""
from glob import glob

from setuptools import find_packages, setup

package_name = 'grasp_autolabel'

extras = {
    # reading and writing rosbag2 files without a ROS install
    'bags': ['rosbags>=0.10'],
    # the detector: install the torch/torchvision pair that matches your machine first
    # (requirements/torch.txt pins the pair that works on CPU)
    'detector': ['torch>=2.4', 'torchvision>=0.19', 'onnx>=1.16', 'onnxruntime>=1.18',
                 'matplotlib>=3.8', 'tensorboard>=2.16'],
    # with the linters ament_flake8 / ament_pep257 run (test_flake8.py, test_pep257.py)
    'test': ['pytest>=8', 'pytest-timeout>=2.3', 'hypothesis>=6.100', 'shapely>=2.0',
             'import-linter>=2.1', 'flake8>=7', 'flake8-blind-except', 'flake8-builtins',
             'flake8-comprehensions', 'flake8-import-order', 'flake8-quotes', 'pydocstyle>=6'],
}
# the documentation (docs/), built by test_docs.py as rosdoc2 builds a package's
extras['docs'] = ['sphinx>=8', 'myst-parser>=4']
# `grasp-autolabel review`, the web page to review labels; its browser tests drive Chromium
extras['review'] = ['flask>=3']
extras['test'] += ['playwright>=1.40']
extras['all'] = sorted({req for reqs in extras.values() for req in reqs})

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['cli/review_static/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
        ('share/' + package_name + '/models',
         glob('models/*.onnx') + glob('models/*.pt') + glob('models/*.json')),
    ],
    python_requires='>=3.10',
    install_requires=[
        'setuptools',
        'numpy>=1.26',
        'opencv-python-headless>=4.8',
        'scikit-image>=0.22',
        'pyyaml>=6',
        'tqdm>=4.66',
    ],
    extras_require=extras,
    zip_safe=True,
    maintainer='grasp_autolabel developers',
    maintainer_email='grasp-autolabel@example.com',
    description='Automatic oriented-grasp labels from sequential RGB-D frames, a grasp detector, '
                'and ROS 2 nodes.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'grasp-autolabel = grasp_autolabel.cli:main',
            'sim_camera_node = grasp_autolabel.ros.entry:sim_camera_node',
            'capture_node = grasp_autolabel.ros.entry:capture_node',
            'autolabel_node = grasp_autolabel.ros.entry:autolabel_node',
            'inference_node = grasp_autolabel.ros.entry:inference_node',
        ],
    },
)
