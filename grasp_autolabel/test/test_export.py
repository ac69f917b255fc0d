"""Bag export (issue 6).

Simulated sessions written as bags with rosbags, exported, compared with ``label``; continuous
recordings with the arm in view; damaged bags; bad input; resume.
"""
import json
import shutil

import numpy as np
import pytest

pytest.importorskip('rosbags')

from grasp_autolabel.cli import main as cli  # noqa: E402, I100
from grasp_autolabel.core.session import Session, write_camera_info_yaml  # noqa: E402
from grasp_autolabel.dataset.bags import BagSource, cdr_stamp_ns  # noqa: E402
from grasp_autolabel.dataset.bagwrite import (  # noqa: E402
    BagWriter,
    CAPTURED_TOPICS,
    START_NS,
    write_session_bag,
)
from grasp_autolabel.dataset.store import GraspDataset  # noqa: E402
from grasp_autolabel.jobs.export import average_depth, export_bags, ExportOptions  # noqa: E402
from grasp_autolabel.jobs.label import label_sessions  # noqa: E402
from grasp_autolabel.jobs.simulate import simulate  # noqa: E402
from grasp_autolabel.sim import CellConfig  # noqa: E402

CFG = CellConfig(width=320, height=240, n_logs=(5, 5), tilt_max_deg=0.0)


def quiet(*a, **k):
    pass


@pytest.fixture(scope='module')
def sim_captured(tmp_path_factory):
    root = tmp_path_factory.mktemp('captured')
    simulate(root, sequences=1, seed=11, config=CFG, progress=False, bag='captured')
    return root


@pytest.fixture(scope='module')
def sim_continuous(tmp_path_factory):
    root = tmp_path_factory.mktemp('continuous')
    simulate(root, sequences=1, seed=12, config=CFG, progress=False, bag='continuous', fps=10.0,
             trigger=True)
    return root


def _labels(path):
    ds = GraspDataset.open(path)
    return ds, [ds.read_label(i) for i in ds.item_indices()]


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_captured_bag_exports_the_same_labels_as_label(sim_captured, tmp_path, storage):
    session = sim_captured / 'seq_000'
    bag = write_session_bag(session, tmp_path / f'bag_{storage}', storage=storage)
    s = export_bags([bag], tmp_path / 'ds', progress=False, log=quiet)
    label_sessions([session], tmp_path / 'ref', progress=False)
    ds, got = _labels(tmp_path / 'ds')
    ref_ds, ref = _labels(tmp_path / 'ref')
    assert s.picks_found == len(Session.open(session).frames) - 1 == len(got) == len(ref)
    assert s.accepted == sum(r.accepted for r in ref) > 0
    for i, (a, b) in enumerate(zip(got, ref)):
        assert (a.accepted, a.reason,
                a.pick_index) == (b.accepted, b.reason, b.pick_index)
        assert np.array_equal(a.grasps, b.grasps)
        assert np.array_equal(ds.read_mask(i), ref_ds.read_mask(i))
        assert np.array_equal(ds.read_rgb(i), ref_ds.read_rgb(i))
    assert ds.meta['sources'][0]['complete'] and ds.meta['sources'][0]['mode'] == 'captured'
    assert ds.meta['sources'][0]['camera']['fx'] == pytest.approx(Session.open(
        session).intrinsics.fx)


def test_continuous_recording_finds_every_pick(sim_continuous, tmp_path):
    truth = json.loads((sim_continuous / 'seq_000' / 'gt' / 'sequence.json').read_text())
    picks = [s['stamp_ns'] for s in truth['steps'] if s['removed']]
    for name, opts in (('auto', ExportOptions()),
                       ('trigger', ExportOptions(trigger='/operator/pick_done'))):
        s = export_bags([sim_continuous / 'bags'], tmp_path / name, options=opts, progress=False,
                        log=quiet)
        ds, labels = _labels(tmp_path / name)
        assert s.picks_found == len(picks) == len(labels), name
        # each capture lies between two picks: the k-th item spans exactly the k-th pick
        for lab, t in zip(labels, picks):
            assert lab.stamp_before_ns < t < lab.stamp_after_ns, name
            assert max(lab.frames_averaged) == 5
        # labels as good as `label` on the simulator's own session frames
        label_sessions([sim_continuous / 'seq_000'], tmp_path / f'ref_{name}', progress=False)
        ref_ds, ref = _labels(tmp_path / f'ref_{name}')
        assert abs(s.accepted - sum(r.accepted for r in ref)) <= 1
        for i, (a, b) in enumerate(zip(labels, ref)):
            if a.accepted and b.accepted:
                m1, m2 = ds.read_mask(i), ref_ds.read_mask(i)
                assert (m1 & m2).sum() / (m1 | m2).sum() > 0.85


def test_camera_info_recorded_after_the_first_images_exports_every_pick(sim_continuous,
                                                                        tmp_path):
    """A recording that starts between an image and its camera_info (issue 16, item 2)."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores

    src = sim_continuous / 'bags' / 'seq_000'
    late = tmp_path / 'late'
    with Reader(src) as reader:
        first = min(t for c, t, _ in reader.messages() if c.topic.endswith('image_raw'))
        with Writer(late, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
            conns = {c.id: writer.add_connection(c.topic, c.msgtype,
                                                 typestore=get_typestore(Stores.ROS2_KILTED))
                     for c in reader.connections}
            dropped = 0
            for c, t, raw in reader.messages():
                if c.topic.endswith('camera_info') and t < first + 2 * 10**9:
                    dropped += 1  # the first two seconds of images come without camera_info
                    continue
                writer.write(conns[c.id], t, raw)
    assert dropped >= 10
    whole = export_bags([src], tmp_path / 'whole', progress=False, log=quiet)
    cut = export_bags([late], tmp_path / 'cut', progress=False, log=quiet)
    assert cut.picks_found == whole.picks_found > 0
    (_, a), (_, b) = _labels(tmp_path / 'whole'), _labels(tmp_path / 'cut')
    assert len(a) == len(b) and all(np.array_equal(x.grasps, y.grasps) for x, y in zip(a, b))


def test_averaging_keeps_pixels_seen_by_half_the_frames():
    a = np.array([[1.0, 0.0, 2.0]], np.float32)
    b = np.array([[3.0, 0.0, 0.0]], np.float32)
    c = np.array([[2.0, 5.0, 0.0]], np.float32)
    out = average_depth([a, b, c])
    assert out[0, 0] == pytest.approx(2.0) and out[0, 1] == 0 and out[0, 2] == 0
    assert average_depth([a, b])[0, 2] == pytest.approx(2.0)  # 1 of 2 frames is half


def _cut(path, share):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * share)])


@pytest.mark.parametrize('ext', ['mcap', 'db3'])
def test_truncated_bag_exports_the_frames_before_the_cut(sim_captured, tmp_path, ext, capsys):
    session = sim_captured / 'seq_000'
    bag = write_session_bag(session, tmp_path / 'bag',
                            storage='mcap' if ext == 'mcap' else 'sqlite3')
    full = export_bags([bag], tmp_path / 'full', progress=False, log=quiet)
    storage = next(bag.glob(f'*.{ext}'))
    _cut(storage, 0.6)
    rc = cli(['export', str(bag), '--out', str(tmp_path / 'cut')])
    out, err = capsys.readouterr()
    assert rc == 0
    assert 'damaged' in err and 'reading stopped after the message at' in err
    ds, labels = _labels(tmp_path / 'cut')
    assert 1 <= len(labels) < full.picks_found
    ref_ds, ref = _labels(tmp_path / 'full')
    for i, lab in enumerate(labels):  # what was exported before the cut is what a whole bag gives
        assert np.array_equal(lab.grasps, ref[i].grasps)
        assert np.array_equal(ds.read_mask(i), ref_ds.read_mask(i))
    assert ds.meta['sources'][0]['cut']


def test_bag_without_metadata_is_read_from_its_storage_files(sim_captured, tmp_path):
    bag = write_session_bag(sim_captured / 'seq_000', tmp_path / 'bag')
    (bag / 'metadata.yaml').unlink()
    with BagSource(bag) as b:
        assert 'no metadata.yaml' in b.damaged
        assert set(CAPTURED_TOPICS) <= set(b.topics)
    s = export_bags([bag], tmp_path / 'ds', progress=False, log=quiet)
    assert s.picks_found == len(Session.open(sim_captured / 'seq_000').frames) - 1


def test_rerun_resumes_and_skips_what_is_done(sim_captured, tmp_path):
    bag = write_session_bag(sim_captured / 'seq_000', tmp_path / 'bag')
    export_bags([bag], tmp_path / 'ds', progress=False, log=quiet)
    ds, labels = _labels(tmp_path / 'ds')
    # a crash in the middle: the last item's labels file never written, the source not complete
    last = ds.item_indices()[-1]
    (ds.path / 'labels' / f'{last:06d}.json').unlink()
    ds.meta['sources'][0]['complete'] = False
    ds.save_meta()
    s = export_bags([bag], tmp_path / 'ds', progress=False, log=quiet)
    assert s.steps == 1  # only the missing pick was labelled again
    ds2, labels2 = _labels(tmp_path / 'ds')
    assert [x.pick_index for x in labels2] == [x.pick_index for x in labels]
    s = export_bags([bag], tmp_path / 'ds', progress=False, log=quiet)
    assert s.skipped_bags == 1 and s.steps == 0


def test_cli_export_bad_input(sim_captured, tmp_path, capsys):
    session = sim_captured / 'seq_000'
    s = Session.open(session)
    rgb, depth = s.read_rgb(0), s.read_depth(0)

    def run(*args):
        rc = cli(['export', *map(str, args)])
        return rc, capsys.readouterr().err

    # not a bag
    rc, err = run(tmp_path / 'nothing', '--out', tmp_path / 'o1')
    assert rc == 2 and 'no such file' in err
    (tmp_path / 'empty').mkdir()
    rc, err = run(tmp_path / 'empty', '--out', tmp_path / 'o1')
    assert rc == 2 and 'not a rosbag2 bag' in err
    # a bag without the expected topics: the error lists what it has
    with BagWriter(tmp_path / 'other', ('/a/image', '/b/depth', '/c/info')) as w:
        w.write_frame(START_NS, rgb, depth, s.intrinsics)
    rc, err = run(tmp_path / 'other', '--out', tmp_path / 'o2')
    assert rc == 2 and '/a/image (sensor_msgs/msg/Image, 1 msgs)' in err and '--topics' in err
    # ... which --topics then reads
    rc, err = run(tmp_path / 'other', '--out', tmp_path / 'o2', '--topics', '/a/image', '/b/depth',
                  '/c/info')
    assert rc == 0, err
    # colour and depth of different sizes
    with BagWriter(tmp_path / 'sizes', CAPTURED_TOPICS) as w:
        for k in range(2):
            w.write_frame(START_NS + k, rgb[::2, ::2], depth, s.intrinsics)
    rc, err = run(tmp_path / 'sizes', '--out', tmp_path / 'o3')
    assert rc == 2 and '160x120' in err and '320x240' in err and 'aligned' in err
    # no camera_info: an error naming the way out, which works
    with BagWriter(tmp_path / 'noinfo', CAPTURED_TOPICS) as w:
        for k in range(2):
            h = w._header(START_NS + k * 10**9)
            w.writer.write(w.conns['rgb'], START_NS + k,
                           w.ts.serialize_cdr(w._image(h, rgb, 'rgb8'), 'sensor_msgs/msg/Image'))
            w.writer.write(w.conns['depth'], START_NS + k,
                           w.ts.serialize_cdr(w._image(h, depth, '16UC1'),
                                              'sensor_msgs/msg/Image'))
    rc, err = run(tmp_path / 'noinfo', '--out', tmp_path / 'o4')
    assert rc == 2 and 'camera_info' in err and '--camera-info' in err
    write_camera_info_yaml(tmp_path / 'cam.yaml', s.intrinsics, depth_scale=0.001)
    rc, err = run(tmp_path / 'noinfo', '--out', tmp_path / 'o4', '--camera-info',
                  tmp_path / 'cam.yaml')
    assert rc == 0, err
    # a depth topic of another type
    from grasp_autolabel.dataset.bags import typestore
    from rosbags.rosbag2 import Writer
    ts = typestore()
    with Writer(tmp_path / 'types', version=8) as w:
        c = w.add_connection(CAPTURED_TOPICS[0], 'sensor_msgs/msg/Image', typestore=ts)
        d = w.add_connection(CAPTURED_TOPICS[1], 'std_msgs/msg/String', typestore=ts)
        w.write(d, START_NS,
                ts.serialize_cdr(ts.types['std_msgs/msg/String'](data='x'), 'std_msgs/msg/String'))
        del c
    rc, err = run(tmp_path / 'types', '--out', tmp_path / 'o5')
    assert rc == 2 and 'std_msgs/msg/String' in err
    # never overwrite a dataset silently
    label_sessions([session], tmp_path / 'labelled', progress=False)
    bag = write_session_bag(session, tmp_path / 'good')
    rc, err = run(bag, '--out', tmp_path / 'labelled')
    assert rc == 2 and '--append' in err and '--overwrite' in err
    rc, err = run(bag, '--out', tmp_path / 'labelled', '--append')
    assert rc == 0, err
    assert len(GraspDataset.open(tmp_path / 'labelled').meta['sources']) == 2


def test_cdr_stamp_is_read_without_decoding(sim_captured, tmp_path):
    bag = write_session_bag(sim_captured / 'seq_000', tmp_path / 'bag', period_s=2.5)
    with BagSource(bag) as b:
        stamps = [cdr_stamp_ns(raw) for _, _, raw in b.messages([CAPTURED_TOPICS[0]])]
    assert stamps == [START_NS + round(k * 2.5e9) for k in range(len(stamps))]


def test_simulate_cli_writes_bags_and_folder_of_bags_exports(tmp_path, capsys):
    rc = cli(['simulate', '--out', str(tmp_path / 'sim'), '--sequences', '2', '--logs', '3',
              '--width', '160',
              '--height', '120', '--bag', 'captured', '--storage', 'sqlite3', '--seed', '4'])
    assert rc == 0
    bags = sorted(p.name for p in (tmp_path / 'sim' / 'bags').iterdir())
    assert bags == ['seq_000', 'seq_001']
    assert cli(['export', str(tmp_path / 'sim' / 'bags'), '--out', str(tmp_path / 'ds')]) == 0
    out = capsys.readouterr().out
    assert '2 bags (0 already exported)' in out and '6 picks found' in out
    ds = GraspDataset.open(tmp_path / 'ds')
    assert len(ds.item_indices()) == 6 and ds.meta['splits']['session']['test_sources']
    shutil.rmtree(tmp_path / 'sim' / 'bags' / 'seq_001')
    assert cli(['export', str(tmp_path / 'sim' / 'bags'), '--out', str(tmp_path / 'ds')]) == 0
    assert '1 bag (1 already exported)' in capsys.readouterr().out
