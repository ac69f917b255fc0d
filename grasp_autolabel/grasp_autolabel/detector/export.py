"""``grasp-autolabel export-onnx``: a checkpoint as an ONNX model for ONNX Runtime.

The graph holds the network only: the grasp-map network from its input ``(1, C, H, W)``
(fixed at the training images' size) to the four activated maps; the Faster R-CNN from the
image tensor to boxes, labels and scores. Decoding, the jaw size and the rotated NMS stay in
Python, shared with the torch predictor. The network and decode settings, the training image
size and camera travel in the model's metadata.
"""
from __future__ import annotations

import json
from pathlib import Path
import warnings

from grasp_autolabel.detector.predict import (checkpoint_meta, CheckpointError, load_checkpoint,
                                              load_weights, ONNX_FORMAT_VERSION)

__all__ = ['export_onnx']


def export_onnx(run, out, *, opset: int = 17, overwrite: bool = False) -> Path:
    """Write ``run``'s best checkpoint (or the ``.pt`` given) to the ONNX file ``out``.

    Raises
    ------
    CheckpointError
        Not a checkpoint; ``out`` exists (and ``overwrite`` is False) or is a folder.
    """
    from grasp_autolabel.detector.models import build_model, family
    from grasp_autolabel.core.session import write_atomic
    import onnx
    import torch

    out = Path(out)
    if out.is_dir():
        raise CheckpointError(f'{out}: is a folder; give the .onnx file to write')
    if out.exists() and not overwrite:
        raise CheckpointError(f'{out}: exists; pass --overwrite to replace it')
    ckpt = load_checkpoint(run)
    if out.exists() and out.resolve() == Path(ckpt['path']).resolve():
        raise CheckpointError(f'--out {out}: is the checkpoint being exported; choose another '
                              '--out')
    network = ckpt['network_obj']
    model = build_model(network)
    load_weights(model, ckpt['state_dict'], ckpt['path'])
    model.eval()
    module, args, names = family(network).onnx_graph(model, network,
                                                     ckpt.get('image_size') or (640, 480))
    meta = checkpoint_meta(network, ckpt['decode_obj'])
    props = {'grasp_autolabel_format': str(ONNX_FORMAT_VERSION),
             'grasp_autolabel_network': json.dumps(meta['network']),
             'grasp_autolabel_decode': json.dumps(meta['decode']),
             'image_size': json.dumps(ckpt.get('image_size')),
             'camera_fx': json.dumps(ckpt.get('camera_fx')),
             'model_id': str(ckpt.get('model_id', 'detector'))}
    out.parent.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(module, args, buf, opset_version=opset, dynamo=False, **names)
    m = onnx.load_from_string(buf.getvalue())
    for key, value in props.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = key, value
    write_atomic(out, lambda f: f.write(m.SerializeToString()))
    return out
