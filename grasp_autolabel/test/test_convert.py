"""sensor_msgs/Image and CameraInfo conversion (the cv_bridge replacement)."""
import numpy as np
import pytest

pytest.importorskip('sensor_msgs')
from grasp_autolabel.core.camera import CameraIntrinsics  # noqa: E402, I100
from grasp_autolabel.ros.convert import (  # noqa: E402
    camera_info_to_intrinsics,
    depth_to_metres,
    ENCODINGS,
    image_to_numpy,
    intrinsics_to_camera_info,
    numpy_to_image,
    to_rgb8,
)
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

RNG = np.random.default_rng(7)


def _random_image(encoding, h=7, w=5):
    dtype, channels = ENCODINGS[encoding]
    shape = (h, w) if channels == 1 else (h, w, channels)
    if dtype.kind == 'f':
        return RNG.normal(size=shape).astype(dtype)
    return RNG.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


def _padded(array, encoding, pad, big_endian=False):
    """Build an Image by hand with `pad` extra bytes at the end of every row."""
    dtype, channels = ENCODINGS[encoding]
    a = array.astype(dtype.newbyteorder('>' if big_endian else '<'))
    rows = a.reshape(a.shape[0], -1).view(np.uint8).reshape(a.shape[0], -1)
    rows = np.concatenate([rows, np.full((a.shape[0], pad), 0xAB, np.uint8)], axis=1)
    msg = Image()
    msg.height, msg.width = a.shape[0], a.shape[1]
    msg.encoding = encoding
    msg.is_bigendian = int(big_endian)
    msg.step = rows.shape[1]
    msg.data = rows.tobytes()
    return msg


@pytest.mark.parametrize('encoding', list(ENCODINGS))
def test_roundtrip_every_encoding(encoding):
    a = _random_image(encoding)
    msg = numpy_to_image(a, encoding)
    assert msg.encoding == encoding and msg.is_bigendian == 0
    assert msg.step == a.shape[1] * a.itemsize * (1 if a.ndim == 2 else a.shape[2])
    b = image_to_numpy(msg)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize('encoding', list(ENCODINGS))
@pytest.mark.parametrize('pad', [1, 3, 64])
@pytest.mark.parametrize('big_endian', [False, True])
def test_padded_step_and_endianness(encoding, pad, big_endian):
    a = _random_image(encoding, h=6, w=9)
    b = image_to_numpy(_padded(a, encoding, pad, big_endian))
    assert b.dtype == a.dtype and b.dtype.isnative
    np.testing.assert_array_equal(b, a)


def test_result_owns_its_memory():
    msg = numpy_to_image(_random_image('16UC1'), '16UC1')
    b = image_to_numpy(msg)
    b[:] = 0  # must not fail (read-only view of the message) nor change the message
    assert any(msg.data)


def _msg(**fields):
    msg = numpy_to_image(np.zeros((4, 3), np.uint16), '16UC1')
    for k, v in fields.items():
        setattr(msg, k, v)
    return msg


@pytest.mark.parametrize(
    'fields, pattern',
    [({'encoding': 'yuv422'}, r"Image.encoding: unsupported encoding 'yuv422'"),
     ({'encoding': ''}, r"Image.encoding: unsupported encoding ''"),
     ({'height': 0}, r'Image.height/width: image is empty'),
     ({'width': 0}, r'Image.height/width: image is empty'),
     ({'step': 5}, r'Image.step: 5 bytes is less than one row'),
     ({'data': bytes(20)}, r'Image.data: 20 bytes, expected step \* height = 6 \* 4 = 24'),
     ({'data': bytes(30)}, r'Image.data: 30 bytes, more than step \* height'),
     ({'height': 5}, r'Image.data: 24 bytes, expected step \* height = 6 \* 5 = 30'),
     ({'data': b''}, r'Image.data: 0 bytes')],
)
def test_malformed_messages_raise_naming_the_field(fields, pattern):
    with pytest.raises(ValueError, match=pattern):
        image_to_numpy(_msg(**fields))


@pytest.mark.parametrize(
    'array, encoding, pattern',
    [(np.zeros((4, 4), np.float64), '32FC1', "dtype float64 does not match encoding '32FC1'"),
     (np.zeros((4, 4), np.uint8), 'rgb8', r"shape \(4, 4\) does not fit encoding 'rgb8'"),
     (np.zeros((4, 4, 4), np.uint8), 'rgb8', "does not fit encoding 'rgb8'"),
     (np.zeros((0, 4), np.uint16), '16UC1', 'image is empty'),
     (np.zeros((4, 4), np.uint16), '16SC1', "unsupported encoding '16SC1'")],
)
def test_numpy_to_image_errors(array, encoding, pattern):
    with pytest.raises(ValueError, match=pattern):
        numpy_to_image(array, encoding)


def test_colour_and_depth_helpers():
    rgb = _random_image('rgb8')
    np.testing.assert_array_equal(to_rgb8(rgb[:, :, ::-1], 'bgr8'), rgb)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(to_rgb8(rgba, 'rgba8'), rgb)
    np.testing.assert_array_equal(to_rgb8(rgba[:, :, [2, 1, 0, 3]], 'bgra8'), rgb)
    with pytest.raises(ValueError, match='not a colour encoding'):
        to_rgb8(np.zeros((2, 2), np.uint16), '16UC1')
    mm = np.array([[0, 1000, 65535]], np.uint16)
    np.testing.assert_allclose(depth_to_metres(mm, '16UC1'), [[0.0, 1.0, 65.535]], rtol=1e-6)
    f = np.array([[np.nan, -1.0, 2.5, np.inf]], np.float32)
    np.testing.assert_array_equal(depth_to_metres(f, '32FC1'), [[0, 0, 2.5, 0]])
    with pytest.raises(ValueError, match='not a depth encoding'):
        depth_to_metres(rgb, 'rgb8')


def test_camera_info_roundtrip():
    intr = CameraIntrinsics(640, 480, fx=615.2, fy=614.9, cx=322.1, cy=238.7,
                            distortion=(0.1, -0.2, 0.001, 0.002, 0.03))
    info = intrinsics_to_camera_info(intr)
    assert isinstance(info, CameraInfo)
    assert list(info.p[:3]) == [615.2, 0.0, 322.1]
    assert camera_info_to_intrinsics(info) == intr


def test_camera_info_errors():
    info = intrinsics_to_camera_info(CameraIntrinsics(640, 480, fx=600.0, fy=600.0, cx=320.0,
                                                      cy=240.0))
    info.k = [0.0] * 9
    with pytest.raises(ValueError, match='CameraInfo.k: focal lengths'):
        camera_info_to_intrinsics(info)
    info = CameraInfo()  # what an uncalibrated driver publishes
    with pytest.raises(ValueError, match='CameraInfo.width/height'):
        camera_info_to_intrinsics(info)
    info = intrinsics_to_camera_info(CameraIntrinsics(640, 480, fx=600.0, fy=600.0, cx=320.0,
                                                      cy=240.0))
    info.distortion_model = 'equidistant'
    info.d = [0.1, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match='CameraInfo: .*distortion_model'):
        camera_info_to_intrinsics(info)
