"""The simulated log-sorting cell: a pile, a static camera, an expert who picks logs one by one.

:class:`SimCell` holds the state of one picking sequence. ``frame()`` gives what the camera
sees now (fresh sensor noise on every call), ``pick()`` performs the next pick, possibly with a
fault that a real cell produces, and returns the ground truth of that step.

Fault kinds (``StepTruth.fault``):

``failed_pick``      the gripper touched a log but nothing was removed.
``double_removal``   two logs came out at once.
``camera_moved``     the camera was knocked during the pick (the view shifts and stays shifted).
``arm_in_view``      the operator's arm is still in view in the frame after the pick.
``arm_in_previous``  the frame before this step still showed the arm (so does its label image).
``many_removed``     the operator cleared a part of the pile: 3-6 logs around the target went at
                     once (each free once the ones above it were gone), up to half the view's
                     changed pixels on a small pile.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import math

from grasp_autolabel.core.camera import CameraIntrinsics
from grasp_autolabel.sim.render import Camera, look_at, Occluder, OCCLUDER_ID, Render, render
from grasp_autolabel.sim.robot import GraspOutcome, Gripper, judge_grasp
from grasp_autolabel.sim.scene import build_pile, Pile
from grasp_autolabel.sim.sensor import SensorModel
import numpy as np

__all__ = ['CellConfig', 'SimCell', 'StepTruth', 'LogTruth', 'FAULT_KINDS', 'default_intrinsics']

FAULT_KINDS = ('failed_pick', 'double_removal', 'camera_moved', 'arm_in_view', 'many_removed')


def default_intrinsics(width: int = 640, height: int = 480) -> CameraIntrinsics:
    """Return a RealSense D435 colour camera (69 x 42 deg field of view at 640x480), scaled."""
    f = 615.0 * width / 640
    return CameraIntrinsics(width, height, fx=f, fy=f, cx=(width - 1) / 2, cy=(height - 1) / 2)


@dataclass(frozen=True)
class CellConfig:
    """Parameters of a simulated cell; defaults follow the issue's cell.

    Attributes
    ----------
    width, height : int
        Image size in pixels.
    n_logs : (int, int)
        Inclusive range of the number of logs in a pile.
    camera_height : (float, float)
        Range of the camera's height above the ground, metres.
    tilt_max_deg : float
        Largest tilt of the optical axis from straight down (0 = always straight down);
        half the sequences are tilted, uniformly up to this.
    radius_range, length_range : (float, float)
        Log radius and length, metres. Lengths are capped at 55 % of the ground width in view, as
        an integrator mounts the camera to see the whole pile.
    fault_rate : float
        Probability that a pick is one of FAULT_KINDS (0 = no faults).
    nudge_m : float
        Standard deviation of the shift of logs that touched the removed one, metres.
    sensor : SensorModel
    camera_pose : (position (3,), rotation (3, 3)) or None
        A fixed mounting: the camera optical frame's position and axes (columns) in the world
        frame, which is the robot's base frame (ground at z = 0). The pile lies where the optical
        axis meets the ground. None: a random height in ``camera_height`` and tilt.
    """

    width: int = 640
    height: int = 480
    n_logs: tuple = (8, 14)
    camera_height: tuple = (1.5, 2.5)
    tilt_max_deg: float = 12.0
    radius_range: tuple = (0.04, 0.12)
    length_range: tuple = (0.5, 1.5)
    fault_rate: float = 0.0
    nudge_m: float = 0.004
    sensor: SensorModel = field(default_factory=SensorModel)
    camera_pose: tuple | None = None

    def __post_init__(self):
        if self.width < 64 or self.height < 48:
            raise ValueError(
                f'width/height: at least 64x48 pixels, got {self.width}x{self.height}')
        lo, hi = self.n_logs
        if not 1 <= lo <= hi <= 254:
            raise ValueError(f'n_logs: expected 1 <= min <= max <= 254, got {self.n_logs}')
        if not 0 <= self.fault_rate <= 1:
            raise ValueError(f'fault_rate: expected 0..1, got {self.fault_rate}')


@dataclass
class LogTruth:
    """Ground truth of one log in one frame."""

    id: int  # noqa: A003
    axis_px: list  # [[u0, v0], [u1, v1]] the whole axis projected into the image
    axis_visible_px: list | None  # the part of the projected axis over visible pixels of this log
    diameter_px: float  # 2 r f / z at the log's centre
    depth_m: float  # camera z of the axis centre
    radius_m: float
    length_m: float
    visible_px: int  # visible pixels of the log
    in_view: bool  # the whole log projects inside the image
    graspable: bool  # nothing rests on it
    resting_on: list  # ids of the logs it rests on

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class StepTruth:
    """Ground truth of step k: the pick between frame k and frame k + 1."""

    step: int
    fault: str | None
    removed: list  # ids of the logs that came out
    removed_logs: list  # LogTruth of each, as seen in frame k
    graspable: list  # ids graspable in frame k
    mask: np.ndarray  # (H, W) bool: the removed logs' visible pixels in frame k

    def to_json(self) -> dict:
        return {'step': self.step, 'fault': self.fault, 'removed': self.removed,
                'removed_logs': [t.to_json() for t in self.removed_logs],
                'graspable': self.graspable,
                'mask': f'masks/{self.step:06d}.png'}


class SimCell:
    """One picking sequence. Deterministic for a given config and seed."""

    def __init__(self, config: CellConfig | None = None, seed: int = 0):
        self.config = config or CellConfig()
        self.rng = np.random.default_rng(seed)
        c = self.config
        intr = default_intrinsics(c.width, c.height)
        if c.camera_pose is None:
            eye, rotation = self._random_pose()
        else:
            eye, rotation = (np.asarray(v, dtype=np.float64) for v in c.camera_pose)
            if rotation[2, 2] >= -0.1:
                raise ValueError('camera_pose: the camera must look down at the ground '
                                 f'(optical axis {rotation[:, 2].round(3).tolist()})')
        self.camera = Camera(intr, eye, rotation)
        # the pile's centre: where the optical axis meets the ground
        centre = eye - rotation[:, 2] * (eye[2] / rotation[2, 2])
        height = float(eye[2])
        ground_w = height * c.width / intr.fx
        ground_h = height * c.height / intr.fy
        max_len = min(c.length_range[1], 0.55 * ground_w)
        n = int(self.rng.integers(c.n_logs[0], c.n_logs[1] + 1))
        pile = build_pile(self.rng, n, spread=(0.11 * ground_w, 0.11 * ground_h),
                          radius_range=c.radius_range,
                          length_range=(min(c.length_range[0], max_len), max_len))
        shift = np.array([centre[0], centre[1], 0.0])
        if c.camera_pose is not None:
            pile = pile.replace_logs({i: g.moved(shift) for i, g in pile.logs.items()})
        self.pile: Pile = pile
        self.occluders: tuple = ()
        self.step_index = 0
        self._rays = self.camera.rays()
        self._clean: Render | None = None

    def _random_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Return a camera at a random height, tilted in half the cells, looking at the origin."""
        c = self.config
        height = self.rng.uniform(*c.camera_height)
        tilt = math.radians(self.rng.uniform(0,
                                             c.tilt_max_deg)) if self.rng.random() < 0.5 else 0.0
        tilt_dir = self.rng.uniform(-math.pi, math.pi)
        eye = np.array([math.sin(tilt) * math.cos(tilt_dir), math.sin(tilt) * math.sin(tilt_dir),
                        0.0])
        eye = eye * height / max(math.cos(tilt), 1e-6)
        eye[2] = height
        return eye, look_at(eye, [0.0, 0.0, 0.0])

    # ---------------------------------------------------------------- frames
    @property
    def intrinsics(self) -> CameraIntrinsics:
        return self.camera.intrinsics

    @property
    def done(self) -> bool:
        """No log left to pick."""
        return not self.pile.logs

    def clean(self) -> Render:
        """Return the noiseless render of the current state (cached until the scene changes)."""
        if self._clean is None:
            self._clean = render(self.camera, self.pile.logs, occluders=self.occluders,
                                 rays=self._rays)
        return self._clean

    def frame(self, *, occluders: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return what the camera sees now: ``(rgb (H, W, 3) uint8, depth (H, W) uint16 mm)``.

        Every call draws fresh sensor noise. ``occluders`` (e.g. :meth:`arm`) are shown on top of
        the current scene for this frame only.
        """
        r = self.clean() if not occluders else render(self.camera, self.pile.logs,
                                                      occluders=tuple(self.occluders) + tuple(
                                                          occluders),
                                                      rays=self._rays)
        s = self.config.sensor
        return s.rgb(r.rgb, self.rng), s.depth(r.depth, self.intrinsics.fx, self.rng, r.rgb)

    def arm(self) -> Occluder:
        """Return the operator's forearm reaching in from a random image border, above the pile."""
        rng = self.rng
        i = self.intrinsics
        side = rng.integers(4)
        # a point on the chosen border and one towards the image centre, both at arm height
        t = rng.uniform(0.2, 0.8)
        border = [(t * i.width, -20), (t * i.width, i.height + 20), (-20, t * i.height),
                  (i.width + 20, t * i.height)][side]
        inner = (rng.uniform(0.3, 0.7) * i.width, rng.uniform(0.3, 0.7) * i.height)
        z_arm = self.camera.position[2] - rng.uniform(0.6, 1.0)  # arm height above the ground

        def at_height(u, v):
            d = self.camera.rotation @ np.array([(u - i.cx) / i.fx, (v - i.cy) / i.fy, 1.0])
            return self.camera.position + d * (z_arm - self.camera.position[2]) / d[2]

        return Occluder(at_height(*border), at_height(*inner),
                        radius=float(rng.uniform(0.045, 0.065)))

    # ---------------------------------------------------------------- truth
    def log_truth(self, log_id: int, render_: Render | None = None) -> LogTruth:
        r = render_ or self.clean()
        log = self.pile.logs[log_id]
        i = self.intrinsics
        ends_px = self.camera.project(log.ends)
        cam_c = self.camera.world_to_camera(log.centre)
        depth = float(cam_c[2])
        # the visible part of the projected axis: samples that fall on this log's pixels
        s = np.linspace(0, 1, 201)[:, None]
        pts = ends_px[0] + s * (ends_px[1] - ends_px[0])
        u = np.rint(pts[:, 0]).astype(int)
        v = np.rint(pts[:, 1]).astype(int)
        inside = (u >= 0) & (u < i.width) & (v >= 0) & (v < i.height)
        on = np.zeros(len(s), bool)
        on[inside] = r.instances[v[inside], u[inside]] == log_id
        vis = pts[on]
        corners = np.concatenate([log.ends + d for d in log.radius * np.eye(3)] +
                                 [log.ends - d for d in log.radius * np.eye(3)])
        proj = self.camera.project(corners)
        in_view = bool(np.all(np.isfinite(proj)) and proj[:,
                                                          0].min() >= 0 and proj[:, 1].min() >= 0
                       and proj[:, 0].max() <= i.width - 1 and proj[:, 1].max() <= i.height - 1)
        return LogTruth(id=log_id, axis_px=ends_px.round(3).tolist(),
                        axis_visible_px=[vis[0].round(3).tolist(),
                                         vis[-1].round(3).tolist()] if len(vis) >= 2 else None,
                        diameter_px=round(2 * log.radius * i.fx / depth, 3),
                        depth_m=round(depth, 5), radius_m=round(log.radius, 5),
                        length_m=round(log.length, 5),
                        visible_px=int(np.count_nonzero(r.instances == log_id)), in_view=in_view,
                        graspable=not self.pile.resting_on(log_id),
                        resting_on=sorted(self.pile.supports.get(log_id, ())))

    def frame_truth(self) -> dict:
        """Ground truth of the current frame: every log, and the camera."""
        r = self.clean()
        return {'logs': [self.log_truth(i, r).to_json() for i in sorted(self.pile.logs)],
                'occluder_in_view': bool(np.any(r.instances == OCCLUDER_ID)),
                'camera': {'position_m': self.camera.position.round(5).tolist(),
                           'rotation': self.camera.rotation.round(6).tolist()}}

    # ---------------------------------------------------------------- picking
    def _choose(self, graspable: list[int]) -> int:
        if self.rng.random() < 0.7:  # the expert usually takes the highest free log
            return max(graspable,
                       key=lambda i: self.pile.logs[i].centre[2] + self.pile.logs[i].radius)
        return int(self.rng.choice(graspable))

    def _clear_around(self, target: int, n: int) -> list[int]:
        """Return up to ``n`` logs an operator clears around ``target``, top down.

        Each next one is the free log (nothing resting on it once the earlier ones are gone)
        nearest to the target.
        """
        removed = [target]
        centre = self.pile.logs[target].centre
        while len(removed) < n:
            rest = self.pile.remove(removed)
            free = rest.graspable()
            if not free:
                break
            removed.append(min(free, key=lambda i: float(
                np.linalg.norm(rest.logs[i].centre[:2] - centre[:2]))))
        return removed

    def _nudge(self, around: list[int], exclude: set[int]) -> None:
        moved = {}
        for j in around:
            if j in exclude or j not in self.pile.logs or self.rng.random() < 0.5:
                continue
            shift = np.append(self.rng.normal(0, self.config.nudge_m, 2), 0.0)
            moved[j] = self.pile.logs[j].moved(shift, yaw=self.rng.normal(0, math.radians(0.4)))
        if moved:
            self.pile = self.pile.replace_logs(moved)

    def pick(self, fault: str | None = 'random') -> StepTruth:
        """Perform the next pick and return the step's ground truth.

        Parameters
        ----------
        fault : str or None
            ``"random"``: a fault with probability ``config.fault_rate``; ``None``: a clean pick;
            or one of :data:`FAULT_KINDS`.
        """
        if self.done:
            raise RuntimeError('pick: no logs left in the pile')
        if fault == 'random':
            fault = str(self.rng.choice(
                FAULT_KINDS)) if self.rng.random() < self.config.fault_rate else None
        if fault is not None and fault not in FAULT_KINDS:
            raise ValueError(f'fault: expected one of {FAULT_KINDS} or None, got {fault!r}')
        before = self.clean()
        arm_before = bool(self.occluders)
        graspable = self.pile.graspable()
        if fault == 'double_removal' and len(graspable) < 2:
            fault = None
        target = self._choose(graspable)
        removed = [] if fault == 'failed_pick' else [target]
        if fault == 'double_removal':
            removed.append(int(self.rng.choice([g for g in graspable if g != target])))
        if fault == 'many_removed':
            removed = self._clear_around(target, int(self.rng.integers(3, 7)))
            if len(removed) < 3:  # too few logs left: the step is what it turned out to be
                fault = 'double_removal' if len(removed) == 2 else None
        truths = [self.log_truth(i, before) for i in removed]
        mask = np.isin(before.instances,
                       removed) if removed else np.zeros(before.instances.shape, bool)
        touching = sorted({j for i in [target, *removed] for j in self.pile.touching(i)})

        if fault == 'failed_pick':  # the gripper moved the log a little and let go
            self.pile = self.pile.replace_logs(
                {target: self.pile.logs[target].moved(np.append(self.rng.normal(0, 0.004, 2), 0.0),
                                                      yaw=self.rng.normal(0, math.radians(0.5)))})
        self.pile = self.pile.remove(removed)
        self._nudge(touching, set(removed))
        self.occluders = ()
        if fault == 'camera_moved':
            axis = np.append(self.rng.normal(size=2), 0.0)
            axis /= np.linalg.norm(axis)
            angle = math.radians(self.rng.uniform(0.6, 2.0)) * self.rng.choice([-1, 1])
            self.camera = self.camera.moved(_axis_angle(axis, angle), self.rng.normal(0, 0.01, 3))
            self._rays = self.camera.rays()
        if fault == 'arm_in_view':
            self.occluders = (self.arm(),)
        self._clean = None
        step = StepTruth(self.step_index,
                         fault if fault else ('arm_in_previous' if arm_before else None),
                         removed, truths, graspable, mask)
        self.step_index += 1
        return step

    def robot_pick(self, tcp, approach, closing, opening_m: float,
                   gripper: Gripper = Gripper()) -> tuple[StepTruth, GraspOutcome]:
        """Try the robot's grasp (world frame, see :func:`sim.robot.judge_grasp`); return its step.

        A grasp that holds removes its log (its neighbours may be nudged, as after a person's
        pick); a miss that touched a log leaves it nudged (the step's fault is ``failed_pick``).
        """
        if self.done:
            raise RuntimeError('robot_pick: no logs left in the pile')
        verdict = judge_grasp(self.pile, tcp, approach, closing, opening_m, gripper)
        before = self.clean()
        graspable = self.pile.graspable()
        removed = [verdict.log_id] if verdict.held else []
        truths = [self.log_truth(i, before) for i in removed]
        mask = np.isin(before.instances, removed)
        if verdict.held:
            touching = self.pile.touching(verdict.log_id)
            self.pile = self.pile.remove(removed)
            self._nudge(touching, set(removed))
        elif verdict.log_id >= 0:  # the jaws pushed the log and let go
            log = self.pile.logs[verdict.log_id]
            self.pile = self.pile.replace_logs({verdict.log_id: log.moved(
                np.append(self.rng.normal(0, 0.004, 2), 0.0),
                yaw=self.rng.normal(0, math.radians(0.5)))})
        self.occluders = ()
        self._clean = None
        step = StepTruth(self.step_index, None if verdict.held else 'failed_pick', removed,
                         truths, graspable, mask)
        self.step_index += 1
        return step, verdict


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    x, y, z = axis
    c, s = math.cos(angle), math.sin(angle)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + s * k + (1 - c) * (k @ k)
