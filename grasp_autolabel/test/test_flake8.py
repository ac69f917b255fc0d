"""ament_flake8, as ROS 2 Python packages ship it: ament_lint's flake8 configuration (``.flake8``).

ament_flake8 itself is not on PyPI; this runs the same flake8 with the same plugins and settings
(line length 99, Google import order, single quotes) over the package, its tests and its launch
files.
"""
from pathlib import Path
import subprocess
import sys

import pytest

PKG = Path(__file__).resolve().parents[1]
CHECKED = ['grasp_autolabel', 'test', 'launch', 'setup.py']


@pytest.mark.linter
@pytest.mark.flake8
def test_flake8():
    pytest.importorskip('flake8')
    out = subprocess.run([sys.executable, '-m', 'flake8', '--config', str(PKG / '.flake8'),
                          *CHECKED], cwd=PKG, capture_output=True, text=True)
    assert out.returncode == 0, f'flake8 found code style errors:\n{out.stdout}{out.stderr}'


def test_flake8_uses_the_ament_configuration():
    text = (PKG / '.flake8').read_text()
    for setting in ('max-line-length = 99', 'import-order-style = google',
                    'extend-ignore = C816,D100,D101,D102,D103,D104,D105,D106,D107,D203,D212,D404,'
                    'I202'):
        assert setting in text
