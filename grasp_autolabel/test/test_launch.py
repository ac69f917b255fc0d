"""Launch files, checked statically (also where the launch libraries are absent.

Test_launch_run and test_launch_cell run them): every executable they start is a console script of
the package, every config file they load exists, and every parameter they set is one the node
declares.
"""
import ast
import importlib
from pathlib import Path
import re

import pytest

PKG = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((PKG / 'launch').glob('*.launch.py'))
# executable -> the module that declares its parameters
NODE_MODULES = {'sim_camera_node': 'grasp_autolabel.ros.sim_camera_node',
                'capture_node': 'grasp_autolabel.ros.capture_node',
                'autolabel_node': 'grasp_autolabel.ros.autolabel_node',
                'inference_node': 'grasp_autolabel.ros.inference_node'}
# parameters every ROS 2 node has
BUILTIN = {'use_sim_time'}


def _console_scripts() -> set[str]:
    text = (PKG / 'setup.py').read_text()
    return set(re.findall(r'["\']([\w-]+) = grasp_autolabel[\w.]*:[\w]+["\']', text))


def _nodes(tree: ast.AST):
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, 'id', None) == 'Node':
            yield {kw.arg: kw.value for kw in call.keywords}


def test_there_are_launch_files():
    assert LAUNCH_FILES, 'no launch files'


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_consistent(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    assert any(isinstance(
        n, ast.FunctionDef) and n.name == 'generate_launch_description' for n in tree.body)
    scripts = _console_scripts()
    for config in re.findall(r'config\(["\']([\w.]+)["\']\)', path.read_text()):
        assert (PKG / 'config' / config).is_file(), (
            f'{path.name} loads config/{config}, which does not exist')
    nodes = list(_nodes(tree))
    for node in nodes:
        pkg = ast.literal_eval(node['package'])
        if pkg != 'grasp_autolabel':
            continue
        exe = ast.literal_eval(node['executable'])
        assert exe in scripts, f'{path.name}: executable {exe} is not a console script in setup.py'
        declared = {p.name for p in importlib.import_module(NODE_MODULES[exe]).PARAMS}
        for item in getattr(node.get('parameters'), 'elts', []):
            if isinstance(item, ast.Dict):
                for key in item.keys:
                    name = ast.literal_eval(key)
                    assert name in declared | BUILTIN, (
                        f'{path.name}: {exe} has no parameter {name!r}')


def test_the_three_launch_files_of_the_cell_exist():
    assert {p.name for p in LAUNCH_FILES} >= {'cell.launch.py', 'replay.launch.py',
                                              'sim.launch.py'}
    cell = (PKG / 'launch' / 'cell.launch.py').read_text().replace('"', "'")
    assert "'realsense2_camera'" in cell and 'rs_launch.py' in cell
    assert "'align_depth.enable': 'true'" in cell
    replay = (PKG / 'launch' / 'replay.launch.py').read_text().replace('"', "'")
    assert "'use_sim_time': param('use_sim_time', bool)" in replay


@pytest.mark.parametrize('path', sorted((PKG / 'config').glob('*.yaml')), ids=lambda p: p.name)
def test_parameter_files_apply_in_any_namespace(path):
    """`/**/node:` (or `/**:`), never `/node:`, which silently stops applying in a namespace."""
    import yaml

    keys = list(yaml.safe_load(path.read_text()))
    assert keys and all(k.startswith('/**') for k in keys), f'{path.name}: keys {keys}'
