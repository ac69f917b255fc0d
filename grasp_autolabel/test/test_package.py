"""The package as a user meets it: the CLI, import hygiene, and the ROS package files."""
from pathlib import Path
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

PKG = Path(__file__).resolve().parents[1]
REPO = PKG.parent
MSGS = REPO / 'grasp_autolabel_msgs'


def _run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, **kw)


def test_cli_help_lists_subcommands():
    out = _run(sys.executable, '-m', 'grasp_autolabel.cli', '--help')
    assert out.returncode == 0, out.stderr
    assert 'info' in out.stdout
    assert 'theta is the closing direction' in out.stdout


def test_cli_info_json_reports_ros_and_messages():
    import json

    out = _run(sys.executable, '-m', 'grasp_autolabel.cli', 'info', '--json')
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report['grasp_autolabel']
    # `make test` runs in the built workspace: both import, and the versions are this process's
    assert report['rclpy'] == 'available', report
    assert report['grasp_autolabel_msgs'] == 'available', report
    import numpy
    assert report['numpy'] == numpy.__version__


def test_cli_without_command_prints_help_and_fails():
    out = _run(sys.executable, '-m', 'grasp_autolabel.cli')
    assert out.returncode == 2
    assert 'commands' in out.stdout


_ROS_FREE = 'ros'  # only grasp_autolabel.ros may import rclpy or ROS message packages
_TORCH_USERS = ('detector', 'cli.detector', 'cli.demo', 'ros')  # the detector, what serves it


def _modules() -> list[str]:
    root = PKG / 'grasp_autolabel'
    names = []
    for path in sorted(root.rglob('*.py')):
        parts = path.relative_to(PKG).with_suffix('').parts
        names.append('.'.join(parts[:-1] if parts[-1] == '__init__' else parts))
    return names


@pytest.mark.parametrize('forbidden, allowed_in', [(('rclpy', 'sensor_msgs'), (_ROS_FREE,)),
                                                   (('torch', 'torchvision'), _TORCH_USERS)],
                         ids=['ros', 'torch'])
def test_every_module_outside_its_layer_imports_no_rclpy_nor_torch(forbidden, allowed_in):
    """Each module of the package imported alone, in a fresh interpreter.

    The plain-Python layers load neither ROS nor torch (the CLI stays instant, the core runs
    without ROS).
    """
    def allowed(module):
        rel = module.partition('.')[2]
        return not rel or any(rel == a or rel.startswith(a + '.') for a in allowed_in)

    modules = [m for m in _modules() if not allowed(m) and not m.endswith('.__main__')]
    assert len(modules) > 30, modules
    code = ('import importlib, sys\n'
            f'bad = []\nfor m in {modules!r}:\n'
            '    before = set(sys.modules)\n'
            '    importlib.import_module(m)\n'
            f'    hit = [f for f in {forbidden!r} if f in sys.modules]\n'
            '    if hit: bad.append((m, hit)); break\n'
            'print(bad); sys.exit(1 if bad else 0)')
    out = _run(sys.executable, '-c', code)
    assert out.returncode == 0, f'loaded {forbidden}: {out.stdout.strip()} {out.stderr[-2000:]}'


def test_the_layers_contract_holds():
    """`lint-imports` with grasp_autolabel/.importlinter.

    core -> algorithms -> dataset -> jobs | detector -> ros -> cli, each importing only from
    below, no cycles; and the layers inside core and inside cli.
    """
    out = subprocess.run(['lint-imports', '--no-cache'], cwd=PKG, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert '3 kept, 0 broken' in out.stdout


def test_ament_python_layout():
    for path in ('package.xml', 'setup.py', 'setup.cfg', 'resource/grasp_autolabel'):
        assert (PKG / path).exists(), path
    cfg = (PKG / 'setup.cfg').read_text()
    assert 'script_dir=$base/lib/grasp_autolabel' in cfg  # ros2 run finds the executables
    assert 'install_scripts=$base/lib/grasp_autolabel' in cfg
    root = ET.parse(PKG / 'package.xml').getroot()
    assert root.find('name').text == 'grasp_autolabel'
    assert root.find('export/build_type').text == 'ament_python'
    deps = {e.text for e in root.findall('exec_depend')}
    assert {'rclpy', 'grasp_autolabel_msgs', 'sensor_msgs', 'std_srvs'} <= deps


def test_msgs_package_and_every_field_commented():
    root = ET.parse(MSGS / 'package.xml').getroot()
    assert root.find('member_of_group').text == 'rosidl_interface_packages'
    assert root.find('export/build_type').text == 'ament_cmake'
    for msg in sorted((MSGS / 'msg').glob('*.msg')):
        lines = msg.read_text().splitlines()
        for line in lines:
            field = line.split('#')[0].strip()
            if not field:
                continue
            assert '#' in line, f"{msg.name}: field '{field}' has no comment"
    rect = (MSGS / 'msg' / 'GraspRect.msg').read_text()
    for field in ('float64 x', 'float64 y', 'float64 theta', 'float64 w', 'float64 h',
                  'float32 score',
                  'geometry_msgs/Pose pose', 'float64 opening_m', 'bool pose_valid'):
        assert re.search(rf'^{re.escape(field)}\b', rect, re.M), field
    assert '[-pi/2, pi/2)' in rect and 'closing direction' in rect


@pytest.mark.parametrize('script', ['scripts/setup.sh', 'scripts/in-env.sh',
                                    'scripts/ros2-launch.sh', '.ci/run'])
def test_scripts_are_valid_bash(script):
    out = _run('bash', '-n', str(REPO / script))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize('config_file, module',
                         [('sim_camera.yaml', 'grasp_autolabel.ros.sim_camera_node'),
                          ('capture.yaml', 'grasp_autolabel.ros.capture_node'),
                          ('autolabel.yaml', 'grasp_autolabel.ros.autolabel_node'),
                          ('inference.yaml', 'grasp_autolabel.ros.inference_node')])
def test_config_files_mirror_the_declared_parameter_defaults(config_file, module):
    import importlib

    import yaml

    pytest.importorskip('rclpy')
    doc = yaml.safe_load((PKG / 'config' / config_file).read_text())
    (section,) = doc.values()
    values = section['ros__parameters']
    params = importlib.import_module(module).PARAMS
    assert set(values) == {p.name for p in params}
    for p in params:
        assert values[p.name] == p.default and type(values[p.name]) is type(p.default), p.name


@pytest.mark.parametrize('config_file', ['mounting.yaml', 'sim_mounting.yaml'])
def test_mounting_files_set_only_parameters_inference_node_declares(config_file):
    import importlib

    import yaml

    pytest.importorskip('rclpy')
    from grasp_autolabel.core.mounting import Mounting

    (section,) = yaml.safe_load((PKG / 'config' / config_file).read_text()).values()
    values = section['ros__parameters']
    declared = {p.name for p in importlib.import_module(
        'grasp_autolabel.ros.inference_node').PARAMS}
    assert set(values) <= declared, set(values) - declared
    if values['base_frame']:  # a mounting the nodes accept
        Mounting.from_values(values['base_frame'], values['camera_frame'],
                             values['mounting_translation'], values['mounting_rotation'])


def test_no_function_over_60_lines_and_no_module_over_400():
    """Short functions and modules (issue 14): a long one is a composition waiting to be named."""
    import ast

    long = []
    for path in sorted((PKG / 'grasp_autolabel').rglob('*.py')):
        src = path.read_text()
        if src.count('\n') > 400:
            long.append(f'{path.relative_to(PKG)}: {src.count(chr(10))} lines')
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef,
                                 ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(
                    f'{path.relative_to(PKG)}:{node.lineno} {node.name}: '
                    f'{node.end_lineno - node.lineno + 1}')
    assert not long, long


def _summary_problem(summary: str) -> str | None:
    """Return what is wrong with a docstring's summary (its first paragraph), or None."""
    if summary.count('``') % 2:
        return 'a ``literal`` left open'
    prose = re.sub(r'``.*?``', '', summary)
    for opening, closing in ('()', '[]', '{}'):
        if prose.count(opening) > prose.count(closing):
            return f'ends inside an open {opening}'
    return None


def test_docstring_summaries_are_whole_and_public_classes_have_one():
    """A summary cut inside a bracket (a wrap gone wrong) is refused, as is a bare public class."""
    import ast

    assert _summary_problem('Return the grasps (the best first.') == 'ends inside an open ('
    assert _summary_problem('Map angles to ``[-pi/2, pi/2)`` (a half turn).') is None
    bad = []
    for path in sorted((PKG / 'grasp_autolabel').rglob('*.py')):
        tree = ast.parse(path.read_text())
        where = path.relative_to(PKG)
        for node in [tree] + [n for n in ast.walk(tree) if isinstance(
                n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]:
            doc = ast.get_docstring(node)
            name = getattr(node, 'name', '(module)')
            if doc is None:
                if isinstance(node, ast.ClassDef) and not name.startswith('_'):
                    bad.append(f'{where}:{node.lineno} class {name}: no docstring')
                continue
            problem = _summary_problem(doc.split('\n\n')[0])
            if problem:
                bad.append(f'{where}:{getattr(node, "lineno", 1)} {name}: summary {problem}')
    assert not bad, '\n'.join(bad)
