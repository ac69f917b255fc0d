"""Hostile and damaged input through the CLI: one line naming the input, never a traceback.

Mutated PNGs (cut short, bytes flipped, huge declared sizes, other colour types and bit
depths), camera_info YAML, labels files and dataset.json (other types, paths leading out,
sources out of range), bags and checkpoints, each fed to the command that reads it. Every run
must end with exit 0 (a harmless change) or 2 and one line ``grasp-autolabel: error: ...``; an
exception escaping ``cli.main`` fails the test. ``GRASP_AUTOLABEL_FUZZ=N`` multiplies the cases.
"""
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import zlib

from grasp_autolabel.cli import main as cli
from grasp_autolabel.jobs.label import label_sessions
from grasp_autolabel.jobs.simulate import simulate
from grasp_autolabel.sim import CellConfig
import numpy as np
import pytest

SCALE = max(1, int(os.environ.get('GRASP_AUTOLABEL_FUZZ', '1') or 1))


def _one_line_or_ok(capsys, rc: int, what: str, *, must_fail: bool = False) -> None:
    err = capsys.readouterr().err.strip()
    assert rc in ((2,) if must_fail else (0, 2)), f'{what}: exit {rc}: {err}'
    if rc == 2:
        assert err.startswith('grasp-autolabel') and '\n' not in err, f'{what}: {err}'
        assert 'Traceback' not in err


def _mutations(data: bytes, rng, n: int):
    """Cut short, flipped bytes, zeroed runs, duplicated runs: ``n`` variants of ``data``."""
    for k in range(n):
        kind = k % 4
        if kind == 0:
            yield 'cut', data[:int(rng.integers(0, len(data)))]
        elif kind == 1:
            b = bytearray(data)
            for i in rng.integers(0, len(b), size=int(rng.integers(1, 8))):
                b[i] ^= 1 << int(rng.integers(0, 8))
            yield 'flip', bytes(b)
        elif kind == 2:
            b = bytearray(data)
            i = int(rng.integers(0, len(b)))
            b[i:i + int(rng.integers(1, 64))] = b'\0' * len(b[i:i + 64])
            yield 'zero', bytes(b[:len(data)])
        else:
            i = int(rng.integers(0, len(data)))
            yield 'dup', data[:i] + data[i:i + 200] + data[i:]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (len(body).to_bytes(4, 'big') + kind + body
            + zlib.crc32(kind + body).to_bytes(4, 'big'))


def _png_header_variants(w: int, h: int):
    """Well-formed PNG headers that declare something else: huge, grey, 16-bit colour, empty."""
    sig = b'\x89PNG\r\n\x1a\n'
    for width, height, depth, colour, what in ((16000, 16000, 8, 2, 'huge'),
                                               (w, h, 8, 0, 'grey'), (w, h, 16, 2, '16-bit'),
                                               (0, h, 8, 2, 'empty'), (w, h, 8, 3, 'palette'),
                                               (2**31 - 1, 1, 8, 2, 'wide')):
        ihdr = (width.to_bytes(4, 'big') + height.to_bytes(4, 'big')
                + bytes([depth, colour, 0, 0, 0]))
        row = bytes(1 + max(1, width) * (3 if colour == 2 else 1) * depth // 8) \
            if width * height < 10**6 else b'\0'
        body = zlib.compress(row * min(height, 4096)) if width * height < 10**6 else b''
        yield what, sig + _png_chunk(b'IHDR', ihdr) + _png_chunk(b'IDAT', body) + \
            _png_chunk(b'IEND', b'')


@pytest.fixture(scope='module')
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp('fuzz')
    config = CellConfig(width=96, height=72, n_logs=(3, 3))
    sessions = simulate(root / 'sim', sequences=1, seed=4, config=config, progress=False)
    label_sessions(sessions, root / 'ds', progress=False)
    return root, sessions[0]


def _session_copy(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns('gt'))
    return dst


def test_mutated_session_pngs_and_yaml(base, tmp_path, capsys):
    root, session = base
    rng = np.random.default_rng(1)
    cases = 0
    rgb = (session / 'rgb' / '000000.png').read_bytes()
    depth = (session / 'depth' / '000001.png').read_bytes()
    yaml_text = (session / 'camera_info.yaml').read_bytes()
    variants = [('rgb/000000.png', what, data) for what, data in _mutations(rgb, rng, 60 * SCALE)]
    variants += [('depth/000001.png', what, data)
                 for what, data in _mutations(depth, rng, 60 * SCALE)]
    variants += [(f, what, data) for f in ('rgb/000000.png', 'depth/000001.png')
                 for what, data in _png_header_variants(96, 72)]
    variants += [('camera_info.yaml', what, data)
                 for what, data in _mutations(yaml_text, rng, 40 * SCALE)]
    variants += [('camera_info.yaml', 'text', t.encode()) for t in (
        '', '[]', 'image_width: -5\n', 'image_width: 1e400\n', '{a: [1, 2\n', '- 1\n- 2\n',
        yaml_text.decode().replace('depth_scale', 'depth_scale: .nan #'))]
    for rel, what, data in variants:
        s = _session_copy(session, tmp_path / 's')
        (s / rel).write_bytes(data)
        out = tmp_path / 'out'
        shutil.rmtree(out, ignore_errors=True)
        refused = (what in ('huge', 'grey', '16-bit', 'empty', 'wide')
                   or (what == 'cut' and rel.endswith('.png'))
                   or (what == 'text' and rel.endswith('.yaml')))
        _one_line_or_ok(capsys, cli(['label', str(s), '--out', str(out)]), f'{rel} {what}',
                        must_fail=refused)
        cases += 1
    assert cases >= 170


def test_mutated_labels_and_dataset_json(base, tmp_path, capsys):
    root, _ = base
    rng = np.random.default_rng(2)
    label = (root / 'ds' / 'labels' / '000000.json').read_bytes()
    meta = (root / 'ds' / 'dataset.json').read_bytes()
    variants = [('labels/000000.json', w, d) for w, d in _mutations(label, rng, 30 * SCALE)]
    variants += [('dataset.json', w, d) for w, d in _mutations(meta, rng, 20 * SCALE)]
    parsed = json.loads(label)
    for key, value in (('image', '../../../../etc/passwd'), ('depth', '/etc/hostname'),
                       ('mask', '../sim'), ('source', 99), ('source', 'x'), ('grasps', 'x'),
                       ('grasps', [[1, 2]]), ('grasps', [[1, 2, 3, 4, float('nan')]]),
                       ('image', 7), ('accepted', 'yes')):
        variants.append(('labels/000000.json', f'{key}={value!r}',
                         json.dumps({**parsed, key: value}).encode()))
    variants += [(name, 'not an object', b'[1, 2, 3]') for name in
                 ('labels/000000.json', 'dataset.json')]
    commands = (['convert', '{ds}', '--to', 'jacquard', '--out', '{out}'],
                ['augment', '{ds}', '--out', '{out}', '--factor', '2'],
                ['split', '{ds}'])
    cases = 0
    for k, (rel, what, data) in enumerate(variants):
        ds = tmp_path / 'ds'
        shutil.rmtree(ds, ignore_errors=True)
        shutil.copytree(root / 'ds', ds)
        (ds / rel).write_bytes(data)
        out = tmp_path / 'out'
        shutil.rmtree(out, ignore_errors=True)
        args = [a.format(ds=ds, out=out) for a in commands[k % len(commands)]]
        _one_line_or_ok(capsys, cli(args), f'{rel} {what} ({args[0]})')
        assert not (out / 'passwd').exists()
        cases += 1
    assert cases >= 60


def test_mutated_bags(base, tmp_path, capsys):
    pytest.importorskip('rosbags')
    from grasp_autolabel.dataset.bagwrite import write_session_bag

    root, session = base
    write_session_bag(session, tmp_path / 'bag', storage='mcap')
    storage = next((tmp_path / 'bag').glob('*.mcap'))
    data = storage.read_bytes()
    rng = np.random.default_rng(3)
    cases = 0
    for what, mutated in _mutations(data, rng, 40 * SCALE):
        bag = tmp_path / 'm'
        shutil.rmtree(bag, ignore_errors=True)
        shutil.copytree(tmp_path / 'bag', bag)
        (bag / storage.name).write_bytes(mutated)
        out = tmp_path / 'out'
        shutil.rmtree(out, ignore_errors=True)
        _one_line_or_ok(capsys, cli(['export', str(bag), '--out', str(out)]), f'bag {what}')
        cases += 1
    assert cases >= 40


def test_mutated_checkpoints(base, tmp_path, capsys):
    torch = pytest.importorskip('torch')
    from grasp_autolabel.detector.config import TrainSettings
    from grasp_autolabel.detector.models import GraspMapNetwork
    from grasp_autolabel.detector.train import train

    root, _ = base
    train(root / 'ds', tmp_path / 'run', GraspMapNetwork(input_size=64, width=4),
          TrainSettings(batch_size=2, max_steps=1, split='none', augment=False),
          progress=False, log=lambda *a, **k: None)
    ckpt = (tmp_path / 'run' / 'checkpoints' / 'last.pt').read_bytes()
    rng = np.random.default_rng(4)
    cases = 0
    variants = list(_mutations(ckpt, rng, 20 * SCALE))
    good = torch.load(tmp_path / 'run' / 'checkpoints' / 'last.pt', weights_only=False)
    for key in ('network', 'state_dict', 'step', 'decode'):
        broken = dict(good)
        broken[key] = 'x'
        path = tmp_path / 'b.pt'
        torch.save(broken, path)
        variants.append((f'{key}=x', path.read_bytes()))
    for what, data in variants:
        path = tmp_path / 'm.pt'
        path.write_bytes(data)
        out = tmp_path / 'm.onnx'
        out.unlink(missing_ok=True)
        _one_line_or_ok(capsys, cli(['export-onnx', str(path), '--out', str(out)]),
                        f'checkpoint {what}')
        cases += 1
    assert cases >= 24


def test_a_hostile_png_is_refused_within_300_mb(tmp_path):
    """A small file declaring 16000x16000 pixels is measured, never decoded."""
    what, data = next(_png_header_variants(96, 72))
    assert what == 'huge' and len(data) < 1000
    path = tmp_path / 'huge.png'
    path.write_bytes(data)
    code = ('import resource, sys\n'
            'from grasp_autolabel.core.session import read_png, SessionError\n'
            'before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n'
            'try:\n    read_png(sys.argv[1], kind="rgb")\nexcept SessionError as e:\n'
            '    print(e)\n'
            'print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n')
    out = subprocess.run([sys.executable, '-c', code, str(path)], capture_output=True,
                         text=True, timeout=60)
    message, grown_mb = out.stdout.strip().splitlines()
    assert '16000x16000' in message and int(grown_mb) < 300
