"""Writing rosbag2 bags with ``rosbags`` (for tests, benchmarks, and cells without rosbag2).

* :func:`write_session_bag`: a capture session as the capture node's topics (one frame per pick),
  what ``ros2 bag record /capture_node/captured/...`` gives at a cell.
* :class:`ContinuousBag`: the simulated camera's raw topics at full rate with realsense2_camera's
  names, the operator's arm reaching in for each pick and withdrawing; optionally a trigger topic
  (``std_msgs/msg/Empty``) at each moment the operator is done. Used by ``simulate --bag
  continuous``
  through :func:`grasp_autolabel.jobs.simulate.write_sequence`'s ``stream`` hook.
"""
from __future__ import annotations

from pathlib import Path

from grasp_autolabel.core.camera import CameraIntrinsics
from grasp_autolabel.core.session import Session
from grasp_autolabel.dataset.bags import typestore
import numpy as np

__all__ = ['BagWriter', 'write_session_bag', 'ContinuousBag', 'CAPTURED_TOPICS', 'CAMERA_TOPICS',
           'TRIGGER_TOPIC',
           'START_NS']

CAPTURED_TOPICS = ('/capture_node/captured/rgb', '/capture_node/captured/depth',
                   '/capture_node/captured/camera_info')
CAMERA_TOPICS = ('/camera/camera/color/image_raw',
                 '/camera/camera/aligned_depth_to_color/image_raw',
                 '/camera/camera/color/camera_info')
TRIGGER_TOPIC = '/operator/pick_done'
START_NS = 1_764_000_000 * 1_000_000_000  # an arbitrary, realistic wall-clock start
_IMAGE, _INFO, _EMPTY = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo', 'std_msgs/msg/Empty'


class BagWriter:
    """A rosbag2 bag of colour + aligned depth + camera_info (and an optional trigger topic)."""

    def __init__(self, path, topics=CAMERA_TOPICS, *, storage: str = 'mcap',
                 frame_id: str = 'camera_color_optical_frame',
                 trigger: str | None = None):
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in ('mcap', 'sqlite3'):
            raise ValueError(f"storage: expected 'mcap' or 'sqlite3', got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f'{self.path}: exists; a bag is never overwritten')
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ts = typestore()
        self.frame_id = frame_id
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self.writer = Writer(self.path, version=8, storage_plugin=plugin)
        self.writer.open()
        colour, depth, info = topics
        self.conns = {'rgb': self.writer.add_connection(colour, _IMAGE, typestore=self.ts),
                      'depth': self.writer.add_connection(depth, _IMAGE, typestore=self.ts),
                      'info': self.writer.add_connection(info, _INFO, typestore=self.ts)}
        if trigger:
            self.conns['trigger'] = self.writer.add_connection(trigger, _EMPTY, typestore=self.ts)
        self.frames = 0

    def _header(self, stamp_ns: int):
        t = self.ts.types
        return t['std_msgs/msg/Header'](stamp=t['builtin_interfaces/msg/Time'](
            sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=self.frame_id)

    def _image(self, header, array: np.ndarray, encoding: str):
        a = np.ascontiguousarray(array)
        return self.ts.types[_IMAGE](header=header, height=a.shape[0], width=a.shape[1],
                                     encoding=encoding,
                                     is_bigendian=0, step=a.shape[1] * (
                                         a.shape[2] if a.ndim == 3 else 1) * a.itemsize,
                                     data=a.view(np.uint8).reshape(-1))

    def _info(self, header, i: CameraIntrinsics):
        t = self.ts.types
        d = list(i.distortion) if i.distortion else [0.0] * 5
        return t[_INFO](header=header, height=i.height, width=i.width,
                        distortion_model=i.distortion_model,
                        d=np.array(d, float),
                        k=np.array([i.fx, 0, i.cx, 0, i.fy, i.cy, 0, 0, 1], float),
                        r=np.eye(3).reshape(-1),
                        p=np.array([i.fx, 0, i.cx, 0, 0, i.fy, i.cy, 0, 0, 0, 1, 0], float),
                        binning_x=0, binning_y=0,
                        roi=t['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0,
                                                                  width=0,
                                                                  do_rectify=False))

    def write_frame(self, stamp_ns: int, rgb: np.ndarray, depth: np.ndarray,
                    intrinsics: CameraIntrinsics) -> None:
        """One colour frame (rgb8), its aligned depth (16UC1) and camera_info at ``stamp_ns``."""
        h = self._header(stamp_ns)
        ser = self.ts.serialize_cdr
        self.writer.write(self.conns['info'], stamp_ns, ser(self._info(h, intrinsics), _INFO))
        self.writer.write(self.conns['rgb'], stamp_ns, ser(self._image(h, rgb, 'rgb8'), _IMAGE))
        self.writer.write(self.conns['depth'], stamp_ns + 1000,
                          ser(self._image(h, depth.astype(np.uint16), '16UC1'), _IMAGE))
        self.frames += 1

    def write_trigger(self, stamp_ns: int) -> None:
        msg = self.ts.types[_EMPTY](structure_needs_at_least_one_member=0)
        self.writer.write(self.conns['trigger'], stamp_ns, self.ts.serialize_cdr(msg, _EMPTY))

    def close(self) -> None:
        self.writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_session_bag(session, out, *, storage: str = 'mcap', period_s: float = 5.0,
                      topics=CAPTURED_TOPICS) -> Path:
    """Write a capture session as a bag of the capture node's topics, frame k at k * period_s."""
    s = Session.open(session)
    with BagWriter(out, topics, storage=storage) as bag:
        for n, k in enumerate(s.frames):
            bag.write_frame(START_NS + round(n * period_s * 1e9), s.read_rgb(k), s.read_depth(k),
                            s.intrinsics)
    return Path(out)


class ContinuousBag:
    """The ``stream`` of :func:`~grasp_autolabel.jobs.simulate.write_sequence`.

    Every camera frame.

    For each pick: ``still_s`` of the still scene, the arm reaching in over ``arm_s / 2``, the pick
    (the scene changes under the arm), the arm withdrawing over ``arm_s / 2``. After the last pick,
    ``still_s`` more. Every frame draws fresh sensor noise.
    """

    def __init__(self, path, *, fps: float = 30.0, still_s: float = 1.5, arm_s: float = 1.2,
                 storage: str = 'mcap', trigger: bool = False):
        self.bag = BagWriter(path, CAMERA_TOPICS, storage=storage,
                             trigger=TRIGGER_TOPIC if trigger else None)
        self.fps, self.still_s, self.arm_s = fps, still_s, arm_s
        self.trigger = trigger
        self.n = 0
        self.extra: dict = {}

    def _stamp(self) -> int:
        return START_NS + round(self.n * 1e9 / self.fps)

    def _emit(self, cell, occluders=None) -> None:
        rgb, depth = cell.frame(occluders=occluders)
        self.bag.write_frame(self._stamp(), rgb, depth, cell.intrinsics)
        self.n += 1

    def _still(self, cell) -> None:
        frames = max(1, round(self.still_s * self.fps))
        for j in range(frames):
            if self.trigger and j == frames // 2:
                self.bag.write_trigger(
                    self._stamp())  # the operator presses "done" while the scene is still
            self._emit(cell)

    def pick(self, cell):
        self._still(cell)
        arm = cell.arm()
        half = max(1, round(self.arm_s * self.fps / 2))
        reach = [(j + 1) / half for j in range(half)]
        for f in reach:
            self._emit(cell, (_arm_at(arm, f),))
        t_pick = self._stamp()
        step = cell.pick()
        for f in reach[::-1]:
            self._emit(cell, (_arm_at(arm, f),))
        self.extra = {'stamp_ns': t_pick}
        return step

    def finish(self, cell) -> None:
        self._still(cell)
        self.bag.close()


def _arm_at(arm, reach: float):
    """Return the arm with its hand ``reach`` (0..1) of the way from the border inwards."""
    end = arm.start + max(reach, 0.1) * (arm.end - arm.start)
    return type(arm)(arm.start, end, arm.radius, arm.colour)
