"""Which model files a serving node may load: only those inside its model folder.

A node that loads whatever path a service request names lets any participant of the DDS domain
point it at any file on the machine. :func:`allowed_model_path` resolves a requested path
(symlinks followed) and refuses, with the reason, one that lies outside the model folder, a
directory that is not a training run, a file that is not a model, and an ONNX model whose
external data lies outside its own folder. No torch or onnxruntime needed.
"""
from __future__ import annotations

from pathlib import Path

from grasp_autolabel.core.errors import ModelPathError

__all__ = ['DEFAULT_MODEL_DIR', 'ModelPathError', 'allowed_model_path', 'default_model_dir',
           'shipped_model', 'open_model', 'SHIPPED_MODEL', 'SHIPPED_DESCRIPTION', 'NO_MODEL']

DEFAULT_MODEL_DIR = '~/grasp_autolabel/models'
MODEL_SUFFIXES = ('.onnx', '.pt')
# the grasp-map model that ships with the package (models/README.md): trained on the simulator
SHIPPED_MODEL = 'sim_grasp_map'
SHIPPED_DESCRIPTION = 'the shipped simulator-trained model (never trained on this cell)'
NO_MODEL = 'none'  # model_path value: start without a model, wait for ~/load_model


def shipped_model(suffix: str = '.onnx') -> Path:
    """Return the shipped model's file (``.onnx``, or ``.pt``: its weights, for ``--init``).

    Looked for next to the package's sources (a checkout, an editable install), in
    ``PREFIX/share/grasp_autolabel/models`` (pip, colcon) and through the ament index.

    Raises
    ------
    ModelPathError
        Not found (a broken install): the places looked in are named.
    """
    import sys

    name = SHIPPED_MODEL + suffix
    places = [Path(__file__).resolve().parents[2] / 'models',
              Path(sys.prefix) / 'share' / 'grasp_autolabel' / 'models']
    try:
        from ament_index_python.packages import get_package_share_directory

        places.append(Path(get_package_share_directory('grasp_autolabel')) / 'models')
    except Exception:  # noqa: B902 - no ROS, or the package is not in the ament index
        pass
    for folder in places:
        if (folder / name).is_file():
            return folder / name
    raise ModelPathError(f"the shipped model {name} is in none of {', '.join(map(str, places))}"
                         ' (a broken install: reinstall grasp_autolabel)')


def default_model_dir(model_path: str) -> Path:
    """Return the folder of ``model_path`` (what it resolves to), else the documented default."""
    if model_path.strip():
        return Path(model_path).expanduser().resolve().parent
    return Path(DEFAULT_MODEL_DIR).expanduser()


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _tensors(graph):
    """Yield every tensor of an ONNX graph: initializers and node attributes, subgraphs too."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField('t'):
                yield attr.t
            yield from attr.tensors
            if attr.HasField('g'):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def _check_onnx_external_data(model: Path) -> None:
    """Refuse an ONNX model whose external tensor data lies outside its folder."""
    import onnx

    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception as exc:  # noqa: B902 - any parse failure is "not a model"
        raise ModelPathError(f'{model}: not an ONNX model ({type(exc).__name__})') from None
    folder = model.parent
    for tensor in _tensors(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get('location', '')
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not _inside(target, folder):
            raise ModelPathError(f'{model}: tensor {tensor.name!r} keeps its data at '
                                 f"{location!r}, outside the model's folder {folder}")


def allowed_model_path(path: str, model_dir) -> Path:
    """Return the resolved model path if a node may load it.

    Parameters
    ----------
    path : str
        As requested: absolute, ``~``-relative, or relative to ``model_dir``.
    model_dir : path-like
        The folder every loaded model must lie in (after symlinks are followed).

    Raises
    ------
    ModelPathError
        For a path that does not exist, resolves outside ``model_dir``, is a directory that
        is not a training run, is not a ``.onnx`` / ``.pt`` file, or is an ONNX model whose
        external data lies outside its folder.
    """
    root = Path(model_dir).expanduser().resolve()
    requested = Path(path).expanduser()
    if not requested.is_absolute():
        requested = root / requested
    try:
        real = requested.resolve(strict=True)
    except (FileNotFoundError, RuntimeError, OSError) as exc:
        raise ModelPathError(f'{path}: no such model ({type(exc).__name__})') from None
    if not _inside(real, root):
        via = '' if real == requested.absolute() else f' (resolves to {real})'
        raise ModelPathError(f'{path}{via}: outside model_dir {root}; only models in it are '
                             'loaded')
    if real.is_dir():
        if not any((real / 'checkpoints' / n).is_file() for n in ('best.pt', 'last.pt')):
            raise ModelPathError(f'{path}: a directory that is not a training run (no '
                                 'checkpoints/best.pt or last.pt)')
        for name in ('best.pt', 'last.pt'):
            ckpt = real / 'checkpoints' / name
            if ckpt.is_file() and not _inside(ckpt.resolve(), root):
                raise ModelPathError(f'{path}: its checkpoint {ckpt} resolves outside '
                                     f'model_dir {root}')
        return real
    if real.suffix not in MODEL_SUFFIXES:
        raise ModelPathError(f'{path}: not a model (expected a .onnx file, a .pt checkpoint or '
                             'a training run folder)')
    if real.suffix == '.onnx':
        _check_onnx_external_data(real)
    return real


def open_model(path: str, backend: str, *, model_dir, trusted: bool = False, device: str = 'cpu',
               threads: int | None = None, score_threshold: float | None = None,
               max_grasps: int | None = None):
    """Load a predictor for a serving node: ``(predictor or None, message, refused?)``.

    ``trusted``: the package's own model, loaded wherever it is installed; any other path must
    pass :func:`allowed_model_path`. A failure is a message, never an exception: a node keeps
    serving its old model.
    """
    if backend not in ('onnx', 'torch'):
        return None, f'backend {backend!r}: expected onnx or torch', False
    try:
        path_obj = Path(path) if trusted else allowed_model_path(path, model_dir)
    except ModelPathError as exc:
        return None, f'model {path} refused: {exc}', True
    from grasp_autolabel.detector.predict import load_predictor

    try:
        predictor = load_predictor(path_obj, backend=backend, device=device, threads=threads)
    except Exception as exc:  # noqa: B902 - any failure to load must leave the node serving
        return None, f'model {path} not loaded: {exc}', False
    predictor.decode = predictor.decode.with_(score_threshold=score_threshold,
                                              max_candidates=max_grasps)
    return predictor, '', False
