"""ament_pep257, as ROS 2 Python packages ship it: pydocstyle's pep257 checks.

The categories ament_pep257 ignores by default (D100-D107 missing docstrings, D203, D212,
D404) are ignored here too; every other pep257 check holds for every docstring there is.
"""
from pathlib import Path
import subprocess
import sys

import pytest

PKG = Path(__file__).resolve().parents[1]
IGNORE = 'D100,D101,D102,D103,D104,D105,D106,D107,D203,D212,D404'


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    pytest.importorskip('pydocstyle')
    out = subprocess.run([sys.executable, '-m', 'pydocstyle', '--convention=pep257',
                          f'--add-ignore={IGNORE}', 'grasp_autolabel', 'test', 'launch',
                          'setup.py'], cwd=PKG, capture_output=True, text=True)
    assert out.returncode == 0, f'pydocstyle found docstring errors:\n{out.stdout}{out.stderr}'


def test_pep257_catches_a_bad_docstring(tmp_path):
    pytest.importorskip('pydocstyle')
    bad = tmp_path / 'bad.py'
    bad.write_text('def f():\n    """returns nothing"""\n')
    out = subprocess.run([sys.executable, '-m', 'pydocstyle', '--convention=pep257',
                          f'--add-ignore={IGNORE}', str(bad)], capture_output=True, text=True)
    assert out.returncode == 1 and 'D400' in out.stdout and 'D403' in out.stdout
