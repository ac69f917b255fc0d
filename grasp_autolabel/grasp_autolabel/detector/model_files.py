"""Which model files a serving node may load: only those inside its model folder.

A node that loads whatever path a service request names lets any participant of the DDS domain
point it at any file on the machine. :func:`allowed_model_path` resolves a requested path
(symlinks followed) and refuses, with the reason, one that lies outside the model folder, a
directory that is not a training run, a file that is not a model, and an ONNX model whose
external data lies outside its own folder. No torch or onnxruntime needed.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ['DEFAULT_MODEL_DIR', 'ModelPathError', 'allowed_model_path', 'default_model_dir']

DEFAULT_MODEL_DIR = '~/grasp_autolabel/models'
MODEL_SUFFIXES = ('.onnx', '.pt')


class ModelPathError(ValueError):
    """A model path the node must not load; the message says which and why."""


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
