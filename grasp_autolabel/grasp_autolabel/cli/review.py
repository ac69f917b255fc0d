"""``grasp-autolabel review DATASET``: review labels in a browser, correct a few.

A local web app (Flask; no front-end build: one HTML page, one script, one style sheet in
``review_static/``). The grid shows every item with its mask outline, grasps and the gate's
reason; one item large takes keyboard decisions and mouse edits. Every decision is saved at once
through :func:`grasp_autolabel.dataset.review.save_review` while this process holds the
dataset's lock; a dataset another writer holds opens read-only. Bound to 127.0.0.1 unless
``--host`` says otherwise, it answers no other machine and no other host name.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
import sys

from grasp_autolabel.core.errors import CommandError, DatasetError, OutputError

__all__ = ['add_parser', 'review_main', 'make_app', 'ReviewServer']

STATIC = Path(__file__).with_name('review_static')
FILTERS = ('all', 'accepted', 'rejected', 'reviewed', 'unreviewed')


def add_parser(sub) -> None:
    """Declare the ``review`` command's arguments."""
    p = sub.add_parser('review', help='review and correct labels in a browser (a local web app)',
                       description='Serve a page to review a dataset: accept or reject each '
                                   'item, move, turn, resize, delete and draw grasps. Every '
                                   "decision is saved at once into the item's labels file.")
    p.add_argument('dataset', help='the grasp dataset folder')
    p.add_argument('--port', type=int, default=8765, help='TCP port (default 8765; 0: any free)')
    p.add_argument('--predictions', metavar='DIR',
                   help="a `predict` output over the dataset's sessions: mark the detector's "
                        'candidates right (y) or wrong (w); they train as positives and negatives')
    p.add_argument('--host', default='127.0.0.1',
                   help='address to listen on (default 127.0.0.1: this machine only)')
    p.set_defaults(_impl=review_main)


def _candidates(label, predicted: dict | None) -> list[dict]:
    """Return the detector's candidates on an item with a person's marks on them."""
    marks = {tuple(c['grasp']): c['mark'] for c in (label.review or {}).get('candidates') or []}
    out = []
    for g, s in zip((predicted or {}).get('grasps', []), (predicted or {}).get('scores', [])):
        key = tuple(round(v, 3) for v in g)
        out.append({'grasp': list(key), 'score': round(s, 3), 'mark': marks.pop(key, None)})
    return out + [{'grasp': list(g), 'score': None, 'mark': m} for g, m in marks.items()]


def _item(ds, index: int, read_only: bool, predictions: dict | None = None) -> dict:
    import cv2
    import numpy as np

    from grasp_autolabel.dataset.review import item_size, label_etag

    label = ds.read_label(index)
    mask = ds.read_mask(index, label).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = [c.reshape(-1, 2).tolist() for c in contours if len(c) >= 3]
    review = label.review or {}
    edited = review.get('grasps') if review else None
    w, h = item_size(ds, index)
    return {'index': index, 'width': w, 'height': h, 'accepted': label.accepted,
            'reason': label.reason and str(label.reason), 'detail': label.detail,
            'auto_grasps': label.grasps.tolist(),
            'grasps': edited if review else label.grasps.tolist(),
            'review': review or None, 'verdict': review.get('verdict'),
            'reviewed': label.reviewed, 'outline': outline,
            'candidates': _candidates(label, (predictions or {}).get(index)),
            'etag': label_etag(ds, index), 'read_only': read_only}


def _matches(item: dict, show: str) -> bool:
    if show == 'all':
        return True
    if show in ('accepted', 'rejected'):
        return item['accepted'] == (show == 'accepted')
    if show in ('reviewed', 'unreviewed'):
        return item['reviewed'] == (show == 'reviewed')  # as training counts it
    return item['reason'] == show.removeprefix('reason:')


def _error(status: int, message: str):
    """Return a JSON error response of one line."""
    from flask import jsonify

    response = jsonify(error=' '.join(message.split()))
    response.status_code = status
    return response


def _only_this_machine():
    """Refuse a request from another machine, or for another host name (DNS rebinding)."""
    from flask import request

    host = (request.host or '').rsplit(':', 1)[0].strip('[]')
    try:
        remote_ok = ipaddress.ip_address(request.remote_addr or '').is_loopback
    except ValueError:
        remote_ok = False
    if not remote_ok or host not in ('127.0.0.1', 'localhost', '::1'):
        return _error(403, f'refused: this review server answers only this machine (request '
                           f'from {request.remote_addr} for host {host!r}; start it with --host '
                           'to serve others)')
    return None


def make_app(ds, *, read_only: bool, loopback_only: bool, predictions: dict | None = None):
    """Return the Flask app serving dataset ``ds`` (saves only when not ``read_only``).

    ``predictions``: the detector's candidates per item (:func:`.load_predictions`), to mark.
    """
    from flask import Flask

    app = Flask(__name__, static_folder=str(STATIC), static_url_path='/static')
    if loopback_only:
        app.before_request(_only_this_machine)
    _add_routes(app, ds, set(ds.item_indices()), read_only, predictions or {})
    return app


def _add_routes(app, ds, items: set, read_only: bool, predictions: dict) -> None:
    from flask import abort, jsonify, request, send_file

    from grasp_autolabel.dataset.review import ReviewConflict, save_review

    def known(index: int) -> int:
        if index not in items:
            abort(_error(404, f'{ds.path}: there is no item {index}'))
        return index

    @app.get('/')
    def page():
        return send_file(STATIC / 'index.html')

    @app.get('/api/items')
    def list_items():
        show = request.args.get('show', 'all')
        if show not in FILTERS and not show.startswith('reason:'):
            return _error(400, f'show={show!r}: one of {", ".join(FILTERS)} or reason:NAME')
        listed = [_item(ds, i, read_only, predictions) for i in sorted(items)]
        return jsonify(dataset=str(ds.path), read_only=read_only,
                       items=[it for it in listed if _matches(it, show)])

    @app.get('/api/items/<int:index>')
    def get_item(index: int):
        return jsonify(_item(ds, known(index), read_only, predictions))

    @app.get('/image/<int:index>')
    def image(index: int):
        return send_file(ds.rgb_path(known(index)), mimetype='image/png', max_age=3600)

    @app.post('/api/items/<int:index>/review')
    def review(index: int):
        known(index)
        if read_only:
            return _error(403, f'{ds.path} is open read-only (another writer holds it)')
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or 'etag' not in body:
            return _error(400, 'expected a JSON object with verdict, grasps and etag')
        try:
            etag = save_review(ds, index, verdict=body.get('verdict'),
                               grasps=body.get('grasps'), etag=str(body['etag']),
                               candidates=body.get('candidates'))
        except ReviewConflict as exc:
            return _error(409, str(exc))
        except (DatasetError, ValueError) as exc:
            return _error(400, str(exc))
        return jsonify(_item(ds, index, read_only, predictions) | {'etag': etag})


class ReviewServer:
    """The review app served on ``host:port`` (port 0: any free one), holding the dataset's lock.

    A dataset another writer holds is served read-only, with a message.
    """

    def __init__(self, dataset, host: str = '127.0.0.1', port: int = 8765, log=print,
                 predictions=None):
        import logging

        from werkzeug.serving import make_server

        from grasp_autolabel.dataset.review import load_predictions
        from grasp_autolabel.dataset.store import GraspDataset

        self.ds = GraspDataset.open(dataset)
        predicted = load_predictions(self.ds, predictions) if predictions else None
        self.lock, self.read_only = self.ds.lock(), False
        try:
            self.lock.__enter__()
        except OutputError as exc:
            self.lock, self.read_only = None, True
            log(f'review: {exc}; opened read-only (decisions cannot be saved)', file=sys.stderr)
        loopback = ipaddress.ip_address(host if host != 'localhost' else '127.0.0.1').is_loopback
        app = make_app(self.ds, read_only=self.read_only, loopback_only=loopback,
                       predictions=predicted)
        logging.getLogger('werkzeug').setLevel(logging.WARNING)  # not a line per request
        try:
            self.server = make_server(host, port, app, threaded=True)
        except OSError as exc:
            self.close()
            raise CommandError(f'--port {port}: cannot listen on {host} '
                               f'({exc.strerror})') from None
        self.url = f'http://{"127.0.0.1" if loopback else host}:{self.server.server_port}/'

    def serve(self) -> None:
        """Serve until interrupted."""
        self.server.serve_forever()

    def close(self) -> None:
        """Stop serving and let the dataset go."""
        if getattr(self, 'server', None) is not None:
            self.server.server_close()
        if self.lock is not None:
            self.lock.__exit__(None, None, None)
            self.lock = None


def review_main(args) -> int:
    """Run ``grasp-autolabel review``."""
    try:
        import flask  # noqa: F401
    except ImportError:
        raise CommandError('review needs Flask: pip install "grasp_autolabel[review]"') from None
    server = ReviewServer(args.dataset, args.host, args.port, predictions=args.predictions)
    print(f'review: {server.ds.path} ({len(server.ds.item_indices())} items) at {server.url} '
          '(Ctrl-C to stop)', flush=True)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
