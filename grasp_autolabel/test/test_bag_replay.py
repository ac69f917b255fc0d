"""A bag of the capture node's topics, written with rosbags (sqlite3 and MCAP) and replayed by a
small publisher, gives the autolabel node the same labels as live."""
from collections import Counter
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('rosbags')
from grasp_autolabel.ros.cell_client import CellClient  # noqa: E402, I100
from grasp_autolabel.ros.messages import msg_to_grasps  # noqa: E402
from grasp_autolabel.ros.qos import LATCHED  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from ros_helpers import NodeProcess, wait_for_fresh_frames  # noqa: E402
from rosbags.rosbag2 import Reader, StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import get_typestore, Stores  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

TOPICS = {'/capture_node/captured/rgb': (Image, 'sensor_msgs/msg/Image'),
          '/capture_node/captured/depth': (Image, 'sensor_msgs/msg/Image'),
          '/capture_node/captured/camera_info': (CameraInfo, 'sensor_msgs/msg/CameraInfo')}


def _record_live(context, tmp_path, picks=3):
    """The real cell, live; the captured topics recorded as raw CDR, as `ros2 bag record` does."""
    procs = [NodeProcess('sim_camera_node', '-r', '__node:=camera', '-r', '__ns:=/camera', '-p',
                         'width:=320', '-p', 'height:=240', '-p', 'fps:=15.0', '-p', 'logs:=6',
                         '-p', 'seed:=21', '-p', 'tilt_max_deg:=0.0', log_dir=tmp_path),
             NodeProcess('capture_node', '-p', f'session_dir:={tmp_path / "session"}',
                         '-p', 'diagnostics_period_s:=0.2', log_dir=tmp_path),
             NodeProcess('autolabel_node', '-p', 'diagnostics_period_s:=0.2', log_dir=tmp_path)]
    c = CellClient(procs, timeout_s=20.0, name='live_client', context=context)
    recorded = []
    for topic in TOPICS:
        c.listen(TOPICS[topic][0], topic, LATCHED, raw=True,
                 callback=lambda raw, t=topic: recorded.append((t, time.time_ns(), bytes(raw))))
    try:
        g = c.node
        assert c.spin_until(lambda: g.count_subscribers('/capture_node/captured/rgb') >= 2
                            and g.count_publishers('/autolabel_node/grasps') >= 1, 30)
        while not c.call('/capture_node/capture').success:  # until the first frame pair
            c.spin_for(0.3)
        assert c.spin_until(lambda: c.autolabel_frames() >= 1, 10)
        n0 = len(c.labels)
        for _ in range(picks):
            assert c.call('/camera/camera/pick').success
            wait_for_fresh_frames(c)  # the scene after the pick has reached the capture node
            n = len(c.labels)
            assert c.call('/capture_node/capture').success
            assert c.spin_until(lambda: len(c.labels) > n, 20)
        frames = c.autolabel_frames()
        assert c.spin_until(lambda: len(recorded) >= 3 * frames, 10)  # the recorder has them all
    finally:
        c.close()
        for p in procs:
            assert p.stop() in (0, -2), p.output()
    assert len(recorded) >= 3 * picks
    return recorded, c.labels[n0:]


def _write_bag(path, recorded, plugin):
    typestore = get_typestore(Stores.ROS2_KILTED)
    with Writer(path, version=8, storage_plugin=plugin) as writer:
        conns = {t: writer.add_connection(t, TOPICS[t][1], typestore=typestore) for t in TOPICS}
        for topic, stamp, raw in recorded:
            writer.write(conns[topic], stamp, raw)


def _replay(context, tmp_path, bag, name, *extra, labels=True):
    node = NodeProcess('autolabel_node', '-p', 'diagnostics_period_s:=0.2', *extra,
                       log_dir=tmp_path)
    c = CellClient([node], timeout_s=20.0, name=f'replay_{name}', context=context)
    pubs = {t: c.node.create_publisher(TOPICS[t][0], t, LATCHED) for t in TOPICS}
    try:
        assert c.spin_until(lambda: c.node.count_subscribers('/capture_node/captured/rgb') >= 1
                            and c.node.count_publishers('/autolabel_node/grasps') >= 1, 30)
        published = Counter()
        with Reader(bag) as reader:
            assert {conn.topic for conn in reader.connections} == set(TOPICS)
            for conn, _, raw in reader.messages():
                pubs[conn.topic].publish(deserialize_message(raw, TOPICS[conn.topic][0]))
                published[conn.topic] += 1
                whole = min(published[t] for t in TOPICS)  # frames with all three parts sent
                if published[conn.topic] == whole:  # this part completed frame `whole`
                    assert c.spin_until(lambda: c.autolabel_frames() >= whole, 10), (
                        f'{name}: the autolabel node did not receive frame {whole}')
        if labels:
            assert c.spin_until(lambda: len(c.labels) >= whole - 1, 20)
        else:  # every frame heard, each step already in the dataset (the first frame ends none)
            assert c.spin_until(lambda: int(c.status.get('autolabel_node', {}).get(
                'already_labelled', 0)) >= whole - 1, 10), c.status
            assert c.status['autolabel_node']['steps'] == '0'
        # /diagnostics counts every reason the gate has, zero or not
        from grasp_autolabel.annotate import Reason
        counted = c.status['autolabel_node']
        assert all(counted.get(f'rejected_{r}') == '0' for r in Reason), counted
    finally:
        c.close()
        assert node.stop() in (0, -2), node.output()
    return c.labels


def test_bag_replay_gives_the_same_labels_as_live(rclpy_context, tmp_path):
    recorded, live = _record_live(rclpy_context, tmp_path)
    # (a node that joined late may have missed the very first frame: compare by the frame's stamp)
    # three picks of free logs: each labelled live, at least two with grasps to compare
    assert len(live) == 3 and sum(1 for m in live if len(m.grasps)) >= 2, [
        len(m.grasps) for m in live]
    for plugin, name in ((StoragePlugin.SQLITE3, 'sqlite3'), (StoragePlugin.MCAP, 'mcap')):
        bag = tmp_path / f'bag_{name}'
        _write_bag(bag, recorded, plugin)
        replayed = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in _replay(
            rclpy_context, tmp_path, bag, name)}
        if name == 'sqlite3':  # a replay restarted into the same dataset adds nothing
            _replay_twice(rclpy_context, tmp_path, bag)
        for a in live:
            b = replayed.get((a.header.stamp.sec, a.header.stamp.nanosec))
            assert b is not None, (
                f'{name}: the replay did not label the frame the live node labelled')
            assert a.header == b.header
            ga, gb = msg_to_grasps(a), msg_to_grasps(b)
            np.testing.assert_array_equal(ga.grasps, gb.grasps)
            np.testing.assert_array_equal(ga.scores, gb.scores)


def _replay_twice(context, tmp_path, bag):
    from grasp_autolabel.dataset import GraspDataset

    dataset = tmp_path / 'replayed_dataset'
    first = _replay(context, tmp_path, bag, 'first', '-p', f'dataset_dir:={dataset}')
    items = GraspDataset.open(dataset).item_indices()
    assert len(items) == len(first) >= 2
    again = _replay(context, tmp_path, bag, 'again', '-p', f'dataset_dir:={dataset}',
                    labels=False)
    ds = GraspDataset.open(dataset)
    assert again == [] and ds.item_indices() == items and len(ds.meta['sources']) == 1
