"""Shared fixtures.

Every test process gets its own ROS 2 domain so parallel runs (and other ROS users on the machine)
never hear each other.
"""
import os

os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA')  # ~1 MB images at 30 Hz
os.environ.setdefault('RCUTILS_LOGGING_BUFFERED_STREAM', '0')

from hypothesis import HealthCheck, settings  # noqa: E402
import pytest  # noqa: E402

# Deterministic property tests: CI never fails on an example a previous run did not see.
# Set HYPOTHESIS_PROFILE=explore to search with fresh random examples.
# (too_slow: on a loaded CI machine data generation speed says nothing about the code)
settings.register_profile('ci', derandomize=True, deadline=None, max_examples=200,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile('explore', deadline=None, max_examples=2000)
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'ci'))


_domains = iter(range(10_000))


@pytest.fixture(autouse=True)
def ros_domain(monkeypatch):
    """Return a ROS 2 domain of its own for every test.

    Nodes a previous test killed (their DDS participants linger for a lease period) or left behind
    are never heard. Processes the test starts inherit it through ROS_DOMAIN_ID.
    """
    domain = 1 + (os.getpid() * 7 + next(_domains)) % 100
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain))
    return domain


@pytest.fixture
def rclpy_context(ros_domain):
    """Yield an initialised rclpy context on the test's own domain, shut down after the test."""
    rclpy = pytest.importorskip('rclpy')
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain)
    try:
        yield context
    finally:
        if context.ok():
            rclpy.shutdown(context=context)


@pytest.fixture(scope='session')
def tiny_models(tmp_path_factory):
    """Two tiny grasp-map models briefly trained on one simulated 160x120 sequence.

    ``onnx`` (4 steps, exported), ``pt`` (6 steps, a torch checkpoint), ``broken`` (an ONNX
    file cut short), all in one folder; score threshold 0: every peak is a candidate.
    """
    pytest.importorskip('torch')
    from grasp_autolabel.detector.config import DecodeSettings, TrainSettings
    from grasp_autolabel.detector.export import export_onnx
    from grasp_autolabel.detector.models import GraspMapNetwork
    from grasp_autolabel.detector.train import train
    from grasp_autolabel.jobs.label import label_sessions
    from grasp_autolabel.jobs.simulate import simulate
    from grasp_autolabel.sim import CellConfig

    tiny, any_peak = GraspMapNetwork(input_size=96, width=8), DecodeSettings(score_threshold=0.0)
    root = tmp_path_factory.mktemp('models')
    paths = simulate(root / 'sim', sequences=1, seed=51, progress=False,
                     config=CellConfig(width=160, height=120, n_logs=(4, 4), tilt_max_deg=0.0))
    label_sessions(paths, root / 'ds', progress=False)
    for name, steps in (('run_a', 4), ('run_b', 6)):
        train(root / 'ds', root / name, tiny,
              TrainSettings(batch_size=2, split='none', max_steps=steps), decode=any_peak,
              progress=False)
    onnx = export_onnx(root / 'run_a', root / 'a.onnx')
    (root / 'broken.onnx').write_bytes(onnx.read_bytes()[:4000])
    return {'onnx': onnx, 'pt': root / 'run_b' / 'checkpoints' / 'last.pt',
            'broken': root / 'broken.onnx'}
