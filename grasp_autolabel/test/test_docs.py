"""The documentation builds as rosdoc2 builds a package's: Sphinx, MyST pages, API from docstrings.

Any warning fails the build: a broken cross-reference between pages, a heading or image that is
not there, a docstring autodoc cannot read. (External links are not fetched: CI has no network.)
"""
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

pytest.importorskip('sphinx')
pytest.importorskip('myst_parser')

DOCS = Path(__file__).resolve().parents[2] / 'docs'


def _build(src: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-n', '-q', '-b',
                           'html', str(src), str(out)], capture_output=True, text=True,
                          timeout=300)


def test_the_docs_build_without_a_warning_and_hold_the_api(tmp_path):
    out = _build(DOCS, tmp_path / 'html')
    assert out.returncode == 0, out.stderr[-4000:]
    pages = {p.name for p in (tmp_path / 'html').glob('*.html')}
    assert {'index.html', 'readme.html', 'nodes.html', 'cli.html', 'formats.html',
            'detector.html', 'measured.html', 'api.html'} <= pages
    api = (tmp_path / 'html' / 'api.html').read_text()
    for name in ('LabelRecord', 'annotate_step', 'StampPairer', 'GraspAutolabelError'):
        assert name in api, name
    assert (tmp_path / 'html' / '_images' / 'overview.png').is_file()  # the README's picture


def test_a_broken_link_between_pages_fails_the_build(tmp_path):
    src = tmp_path / 'docs'
    shutil.copytree(DOCS, src, ignore=shutil.ignore_patterns('_build'))
    shutil.copy(DOCS.parent / 'README.md', tmp_path / 'README.md')
    with open(src / 'cli.md', 'a') as f:
        f.write('\nSee [the missing page](no-such-page.md).\n')
    out = _build(src, tmp_path / 'html')
    assert out.returncode != 0
    assert 'no-such-page' in out.stderr
