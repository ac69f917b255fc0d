"""The demo's report: one self-contained HTML file (images embedded), readable offline."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from grasp_autolabel.core.fsio import write_text_atomic
from grasp_autolabel.dataset.labels import LabelRecord
import numpy as np

__all__ = ['write_report']


def _img(path_or_png, width: int = 400, caption: str = '') -> str:
    """Return an embedded image.

    Plots as PNG, photos (files) scaled to ``width`` and JPEG-encoded (the report stays a few MB).
    """
    import cv2

    if isinstance(path_or_png, bytes):
        data, mime = path_or_png, 'png'
    else:
        img = cv2.imread(str(path_or_png), cv2.IMREAD_COLOR)
        if img is not None and img.shape[1] > width:
            img = cv2.resize(img, (width, round(img.shape[0] * width / img.shape[1])),
                             interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY,
                                             88]) if img is not None else (False, None)
        data, mime = (buf.tobytes(), 'jpeg') if ok else (Path(path_or_png).read_bytes(), 'png')
    b64 = base64.b64encode(data).decode()
    cap = f'<figcaption>{html.escape(caption)}</figcaption>' if caption else ''
    return f'<figure><img src="data:image/{mime};base64,{b64}" width="{width}">{cap}</figure>'


def _histogram(latencies_ms) -> bytes | None:
    try:
        import matplotlib

        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    ax.hist(latencies_ms, bins=30, color='#3b7dd8')
    for q, style in ((50, '--'), (99, ':')):
        v = float(np.percentile(latencies_ms, q))
        ax.axvline(v, color='k', ls=style, lw=1, label=f'p{q} {v:.0f} ms')
    ax.set_xlabel('image stamped -> grasps received, ms')
    ax.set_ylabel('frames')
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    plt.close(fig)
    return buf.getvalue()


def _table(rows) -> str:
    body = ''.join(f'<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>'
                   for k, v in rows)
    return f'<table>{body}</table>'


_STYLE = ('<style>body{font-family:sans-serif;max-width:1300px;margin:2em auto;color:#222}'
          'figure{display:inline-block;margin:4px}figcaption{font-size:12px;color:#555}'
          'table{border-collapse:collapse;margin:8px 0}'
          'th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}'
          'h2{border-bottom:1px solid #ddd}</style>')


def write_report(out: Path, stats: dict, *, latencies_ms, overlays, heldout=()) -> Path:
    out = Path(out)
    parts = ["<!doctype html><meta charset='utf-8'><title>grasp_autolabel demo</title>", _STYLE,
             '<h1>grasp_autolabel: the simulated cell, end to end</h1>',
             f"<p>Total {stats.get('total_s')} s on this machine. Stages (s): "
             f"{html.escape(json.dumps(stats.get('timings_s', {})))}</p>"]
    parts += _labels_section(out, stats.get('labels', {}))
    parts += _training_section(out, stats.get('train', {}))
    parts += _evaluation_section(stats.get('evaluation', {}), heldout,
                                 stats.get('evaluation_shipped'), stats.get('served', ''))
    parts += _live_section(stats.get('live', {}), latencies_ms, overlays)
    path = out / 'report.html'
    write_text_atomic(path, '\n'.join(parts) + '\n')
    return path


def _labels_section(out: Path, lab: dict) -> list[str]:
    viz = sorted((out / 'cell' / 'dataset' / 'viz').glob('*.png'))
    labels_dir = out / 'cell' / 'dataset' / 'labels'
    accepted, rejected = [], []
    for p in viz:
        path = labels_dir / f'{p.stem}.json'
        label = LabelRecord.from_json(json.loads(path.read_text()), where=str(path))
        (accepted if label.accepted else rejected).append((p, label))
    return ['<h2>1. Automatic labels</h2>',
            '<p>The capture and autolabel nodes labelled a pile live; more simulated sequences '
            'were labelled offline with the same code. Mask outline yellow, spine cyan, jaw '
            'edges green, opening edges red.</p>',
            _table([('steps', lab.get('steps')), ('accepted', lab.get('accepted'))]
                   + [(f'rejected: {k}', v) for k, v in sorted(lab.get('rejected', {}).items())]),
            ''.join(_img(p, 300, f'item {p.stem}: {len(l_.grasps)} grasps')
                    for p, l_ in accepted[:8]),
            '<p>Rejected by the quality gate (faults the simulator injected):</p>',
            ''.join(_img(p, 300, f'item {p.stem}: {l_.reason}')
                    for p, l_ in rejected[:4]) or '<p>none</p>']


def _training_section(out: Path, tr: dict) -> list[str]:
    loss_png = out / 'run' / 'loss.png'
    return ['<h2>2. Training</h2>',
            _table([('model', 'grasp-map network (RGB-D, 320 px input) fine-tuned from the '
                     'shipped simulator-trained model (AdamW 4e-4, a fifth of the rate from '
                     'scratch; cosine)'),
                    ('steps', tr.get('step')),
                    ('held-out images (validation)', tr.get('held_out_items')),
                    ('images', tr.get('train_items')),
                    ('seconds', round(tr.get('seconds', 0), 1)),
                    ('last loss', round(tr.get('loss', 0), 4))]),
            _img(loss_png.read_bytes(), 600, 'loss per step') if loss_png.is_file() else '']


def _figures(ev: dict) -> list:
    def counts(d):
        return ', '.join(f'{k}: {v}' for k, v in (d or {}).items() if v)

    return [ev.get('images'), f"{ev.get('valid_candidates_pct')} %",
            f"{ev.get('valid_top1_pct')} %", f"{ev.get('coverage_pct')} %",
            f"{ev.get('rectangle_metric_top1_pct')} %", ev.get('candidates_per_image'),
            counts(ev.get('invalid_by_reason')), counts(ev.get('missed_by_cause')),
            f"{ev.get('latency_ms_p50')} ms"]


def _evaluation_section(ev: dict, heldout, shipped: dict | None = None,
                        served: str = '') -> list[str]:
    names = ['images', 'valid grasp candidates (a precision)', 'top-1 candidate valid',
             'coverage: free logs with a valid candidate',
             'rectangle metric, top-1 (IoU > 0.25, angle < 30 deg, dense truth)',
             'candidates per image', 'invalid candidates by reason', 'free logs missed by cause',
             'predict latency p50']
    columns = [("this demo's model (fine-tuned on its labels)", _figures(ev))]
    if shipped:
        columns.append(('the shipped simulator-trained model', _figures(shipped)))
    head = ''.join(f'<th>{html.escape(name)}</th>' for name, _ in columns)
    rows = ''.join(f'<tr><td>{html.escape(n)}</td>' + ''.join(
        f'<td>{html.escape(str(col[i]))}</td>' for _, col in columns) + '</tr>'
        for i, n in enumerate(names))
    return ['<h2>3. Evaluation on held-out sequences (ONNX Runtime)</h2>',
            f'<table><tr><th></th>{head}</tr>{rows}</table>',
            f'<p>Served live: {html.escape(served)}.</p>' if served else '',
            '<p>Every candidate on held-out images: green valid, red invalid with the reason.</p>',
            ''.join(_img(p, 400, cap) for p, cap in heldout),
            '<p>A brief CPU training: see bench/table1.py and the README for the full '
            'experiment.</p>']


def _live_section(live: dict, latencies_ms, overlays) -> list[str]:
    hist = _histogram(latencies_ms) if len(latencies_ms) else None
    return ['<h2>4. Live: inference_node on new frames</h2>',
            _table([('frames', live.get('frames')),
                    ('latency p50', f"{live.get('latency_ms_p50')} ms"),
                    ('latency p99', f"{live.get('latency_ms_p99')} ms"),
                    ('~/get_grasps', (live.get('service') or {}).get('message'))]),
            _img(hist, 600, 'latency histogram') if hist else '',
            ''.join(_img(p, 400, '~/overlay') for p in overlays)]
