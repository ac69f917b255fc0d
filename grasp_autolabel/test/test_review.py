"""`grasp-autolabel review` (issue 26): decisions saved through the dataset, refusals, training.

The server is the real one (Flask under werkzeug, on a free port); the browser test drives
Debian's Chromium with Playwright and checks every decision in the files on disk.
"""
import json
from pathlib import Path
import shutil
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip('flask')
from grasp_autolabel.cli.review import ReviewServer  # noqa: E402, I100
from grasp_autolabel.core.errors import DatasetError  # noqa: E402
from grasp_autolabel.core.fsio import FolderLock  # noqa: E402
from grasp_autolabel.dataset.store import GraspDataset  # noqa: E402
from grasp_autolabel.jobs.label import label_sessions  # noqa: E402
from grasp_autolabel.jobs.simulate import simulate  # noqa: E402
from grasp_autolabel.sim import CellConfig  # noqa: E402

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
MODEL = Path(__file__).resolve().parents[1] / 'models' / 'sim_grasp_map.onnx'


@pytest.fixture(scope='module')
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp('review')
    sessions = simulate(root / 'sim', sequences=3, seed=26, progress=False,
                        config=CellConfig(n_logs=(7, 7), fault_rate=0.2))  # 640x480, 21 picks
    label_sessions(sessions, root / 'ds', progress=False)
    return root / 'ds'


@pytest.fixture
def dataset(labelled, tmp_path):
    shutil.copytree(labelled, tmp_path / 'ds')
    return tmp_path / 'ds'


@pytest.fixture(scope='module')
def predictions(labelled):
    """The shipped model's candidates on the dataset's sessions (a `predict` output)."""
    pytest.importorskip('onnxruntime')
    from grasp_autolabel.detector.run_predict import predict_sessions

    out = labelled.parent / 'pred'
    if not out.exists():
        predict_sessions(MODEL, [labelled.parent / 'sim'], out, progress=False)
    return out


class _Served:
    def __init__(self, path, predictions=None):
        self.server = ReviewServer(path, port=0, log=lambda *a, **k: None,
                                   predictions=predictions)
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()

    def call(self, path, body=None, host=None):
        req = urllib.request.Request(self.server.url.rstrip('/') + path,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={'Content-Type': 'application/json'})
        if host:
            req.add_header('Host', host)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def close(self):
        self.server.server.shutdown()
        self.server.close()


@pytest.fixture
def served(dataset, predictions):
    s = _Served(dataset, predictions)
    yield s
    s.close()


def _on_disk(dataset, index):
    return json.loads((dataset / 'labels' / f'{index:06d}.json').read_text())


def test_a_decision_is_saved_at_once_and_keeps_the_automatic_grasps(served, dataset):
    status, item = served.call('/api/items/1')
    assert status == 200 and item['grasps'] == item['auto_grasps']
    before = _on_disk(dataset, 1)
    edited = [[g[0] + 3.0, g[1], g[2], g[3], g[4]] for g in item['grasps'][:1]]
    status, back = served.call('/api/items/1/review', {'verdict': 'accepted', 'grasps': edited,
                                                       'etag': item['etag']})
    assert status == 200 and back['etag'] != item['etag']
    after = _on_disk(dataset, 1)
    assert after['grasps'] == before['grasps']  # the gate's grasps stay as they were
    assert after['review']['verdict'] == 'accepted'
    np.testing.assert_allclose(after['review']['grasps'], edited, atol=1e-3)
    assert after['review']['at'].endswith('+00:00')


@pytest.mark.parametrize('body, status, message', [
    ({'verdict': 'accepted', 'grasps': [[5000.0, 10.0, 0.0, 20.0, 8.0]]}, 400,
     'lies outside the 640x480 image'),
    ({'verdict': 'accepted', 'grasps': [[50.0, 50.0, 0.0, 0.0, 8.0]]}, 400, 'positive'),
    ({'verdict': 'maybe', 'grasps': []}, 400, "review verdict 'maybe' is not one of"),
])
def test_bad_grasps_and_verdicts_are_refused_in_one_line_and_nothing_is_written(
        served, dataset, body, status, message):
    _, item = served.call('/api/items/0')
    before = (dataset / 'labels' / '000000.json').read_bytes()
    code, reply = served.call('/api/items/0/review', {**body, 'etag': item['etag']})
    assert code == status and message in reply['error'] and '\n' not in reply['error'], reply
    assert (dataset / 'labels' / '000000.json').read_bytes() == before


def test_a_file_changed_on_disk_is_never_overwritten(served, dataset):
    _, item = served.call('/api/items/0')
    path = dataset / 'labels' / '000000.json'
    changed = {**json.loads(path.read_text()), 'info': {'edited': 'elsewhere'}}
    path.write_text(json.dumps(changed))
    code, reply = served.call('/api/items/0/review', {'verdict': 'rejected', 'grasps': [],
                                                      'etag': item['etag']})
    assert code == 409 and 'changed on disk' in reply['error']
    assert json.loads(path.read_text()) == changed


def test_unknown_items_other_hosts_and_a_second_writer_are_refused(dataset, served):
    assert served.call('/api/items/999')[0] == 404
    code, reply = served.call('/api/items', host='attacker.example')
    assert code == 403 and 'answers only this machine' in reply['error']
    code, reply = served.call('/api/items?show=sideways')
    assert code == 400
    second = _Served(dataset)  # the first server holds the dataset's lock
    try:
        assert second.server.read_only
        _, item = second.call('/api/items/0')
        code, reply = second.call('/api/items/0/review', {'verdict': 'accepted', 'grasps': [],
                                                          'etag': item['etag']})
        assert code == 403 and 'read-only' in reply['error']
    finally:
        second.close()


def test_training_uses_the_review(dataset):
    from grasp_autolabel.dataset.review import label_etag, save_review
    from grasp_autolabel.detector.data import item_logs, select_items

    ds = GraspDataset.open(dataset)
    labels = {i: ds.read_label(i) for i in ds.item_indices()}
    accepted = [i for i, lab in labels.items() if lab.accepted and len(lab.grasps)]
    rejected = [i for i, lab in labels.items() if not lab.accepted]
    assert accepted and rejected, 'the fixture needs both'
    drawn = [[320.0, 240.0, 0.3, 60.0, 16.0]]
    with FolderLock(dataset):
        save_review(ds, accepted[0], verdict='rejected', grasps=[],
                    etag=label_etag(ds, accepted[0]))
        save_review(ds, rejected[0], verdict='accepted', grasps=drawn,
                    etag=label_etag(ds, rejected[0]))
    out = ds.read_label(accepted[0])
    assert len(out.all_grasps()) == 0 and item_logs(out, {}) == []  # a person left it out
    hand = ds.read_label(rejected[0])
    logs = item_logs(hand, {}, use_later=False)
    np.testing.assert_allclose(logs[0][1], drawn)  # the hand label teaches on a gate-rejected pick
    usable = select_items(ds, 'all', 'none')
    assert rejected[0] in usable and accepted[0] not in usable
    assert select_items(ds, 'all', 'none', reviewed_only=True) == [rejected[0]]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (make setup installs Debian's "
                                             'chromium where apt-get can)')
def test_a_person_reviews_20_items_with_the_keyboard_and_edits_with_the_mouse(served, dataset):
    sync_api = pytest.importorskip('playwright.sync_api')
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=['--no-sandbox'])
        try:
            page = browser.new_page(viewport={'width': 1300, 'height': 900})
            _keyboard_review(page, served.server.url, dataset)
            _drag_and_turn(page, dataset)
            _hand_label(page, dataset)
            _mark_candidate(page, served.server.url, dataset)
        finally:
            browser.close()


def _current(page) -> int:
    return int(page.get_attribute('#view', 'data-index'))


def _keyboard_review(page, url, dataset):
    page.goto(url)
    page.wait_for_selector('#grid[data-show="all"]')
    page.click('.cell >> nth=0')
    page.wait_for_selector('#view image')
    decided = {}
    for k in range(20):
        index = _current(page)
        key = 'a' if k % 3 else 'r'
        page.keyboard.press(key)
        page.wait_for_function(f'document.querySelector("#view").dataset.index != "{index}"')
        decided[index] = 'accepted' if key == 'a' else 'rejected'
    page.keyboard.press('u')  # the last decision undone: the item has no verdict again
    page.wait_for_function(f'document.querySelector("#view").dataset.index == "{index}"')
    page.wait_for_function('document.querySelector("#view").dataset.verdict == ""')
    del decided[index]
    for i, verdict in decided.items():
        assert _on_disk(dataset, i)['review']['verdict'] == verdict, i
    assert (_on_disk(dataset, index).get('review') or {}).get('verdict') is None


def _mark_candidate(page, url, dataset):
    page.goto(url)  # a fresh page: what was decided before comes from the files
    page.wait_for_selector('#grid[data-show="all"]')
    page.click('.cell:has(.candidate) >> nth=0')
    page.wait_for_selector('#view .candidate')
    index = _current(page)
    box = page.locator('#view .candidate').nth(0).bounding_box()
    page.evaluate('document.querySelector("#status").textContent = ""')
    page.mouse.move(box['x'] + box['width'] / 2, box['y'] + box['height'] / 2)
    page.keyboard.press('w')
    page.wait_for_function('document.querySelector("#status").textContent.includes("saved")')
    marks = _on_disk(dataset, index)['review']['candidates']
    assert [m['mark'] for m in marks] == ['wrong']
    page.wait_for_selector('#view .candidate.wrong')


def _open_first(page, show: str, ready: str) -> int:
    """Back to the grid, filter it, open its first item; return the item's index."""
    page.keyboard.press('Escape')
    page.select_option('#show', show)
    page.wait_for_selector(f'#grid[data-show="{show}"]')
    page.click('.cell >> nth=0')
    page.wait_for_selector(ready)
    return _current(page)


def _drag(page, start, end) -> None:
    """Drag with the mouse from ``start`` to ``end`` and wait until the page saved."""
    page.evaluate('document.querySelector("#status").textContent = ""')
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=5)
    page.mouse.up()
    page.wait_for_function('document.querySelector("#status").textContent.includes("saved")')


def _grasp_screen_centre(page, k=0):
    box = page.locator('#view .grasp .body').nth(k).bounding_box()
    return box['x'] + box['width'] / 2, box['y'] + box['height'] / 2


def _drag_and_turn(page, dataset):
    index = _open_first(page, 'accepted', '#view .grasp')
    before = _on_disk(dataset, index)
    x, y = _grasp_screen_centre(page)
    _drag(page, (x, y), (x + 30, y + 20))
    # the grasp on top under the mouse (they overlap along a log) moved, and only it
    shift = np.subtract(_on_disk(dataset, index)['review']['grasps'], before['grasps'])
    k = int(np.argmax(shift[:, 0]))
    assert shift[k, 0] > 5 and shift[k, 1] > 3, shift
    assert np.abs(np.delete(shift, k, axis=0)).max(initial=0) < 1e-6, shift
    moved = _on_disk(dataset, index)['review']['grasps'][k]
    box = page.locator('#view .turn').bounding_box()  # the selected grasp's turn handle
    hx, hy = box['x'] + box['width'] / 2, box['y'] + box['height'] / 2
    cx, cy = _grasp_screen_centre(page)
    _drag(page, (hx, hy), (cx + (hy - cy), cy - (hx - cx)))  # a quarter turn about the centre
    turned = _on_disk(dataset, index)['review']['grasps'][k]
    diff = abs((turned[2] - moved[2] + np.pi / 2) % np.pi - np.pi / 2)
    assert diff > 1.0, (moved, turned)
    assert _on_disk(dataset, index)['grasps'] == before['grasps']


def _hand_label(page, dataset):
    index = _open_first(page, 'rejected', '#view image')
    box = page.locator('#view').bounding_box()
    page.mouse.move(box['x'] + box['width'] * 0.5, box['y'] + box['height'] * 0.5)
    page.keyboard.press('g')
    page.wait_for_selector('#view .grasp')
    page.keyboard.press('a')
    page.wait_for_function(f'document.querySelector("#view").dataset.index != "{index}" || '
                           'document.querySelector("#status").textContent.includes("accepted")')
    review = _on_disk(dataset, index)['review']
    assert review['verdict'] == 'accepted' and len(review['grasps']) == 1
    x, y = review['grasps'][0][:2]
    assert 200 < x < 440 and 140 < y < 340  # where the mouse was, in image pixels (640x480)


def test_marked_candidates_train_as_positives_and_negatives(served, dataset):
    from grasp_autolabel.detector.models import family, GraspMapNetwork

    item = next(it for it in served.call('/api/items')[1]['items'] if len(it['candidates']) >= 2)
    right, wrong = item['candidates'][0]['grasp'], item['candidates'][1]['grasp']
    code, back = served.call(f"/api/items/{item['index']}/review", {
        'verdict': None, 'grasps': item['grasps'], 'etag': item['etag'],
        'candidates': [{'grasp': right, 'mark': 'right'}, {'grasp': wrong, 'mark': 'wrong'}]})
    assert code == 200, back
    assert [c['mark'] for c in back['candidates'][:2]] == ['right', 'wrong']
    label = GraspDataset.open(dataset).read_label(item['index'])
    np.testing.assert_allclose(label.negatives(), [wrong], atol=1e-3)
    assert any(np.allclose(g, right, atol=1e-3) for g in label.own_grasps())
    # the grasp-map's targets: -1 (a marked negative) under the wrong candidate, never over a
    # positive; the loss weighs it as much as a positive
    import torch

    net = GraspMapNetwork(input_size=640, width=4)
    x = np.zeros((5, 480, 640), np.float32)  # the candidates' own pixels
    maps = family(net).encode_targets(label.own_grasps(), None, x, net,
                                      np.asarray([wrong]))['maps']
    assert (maps[0] == -1).any() and not ((maps[0] == -1) & (maps[0] > 0.5)).any()
    from grasp_autolabel.detector.models.grasp_map import loss

    target = torch.from_numpy(maps)[None]
    fire = torch.full_like(target, 3.0)  # the network fires everywhere
    unmarked = target.clone()
    unmarked[:, 0] = unmarked[:, 0].clamp(min=0)
    assert loss(fire, target)['quality'] > loss(fire, unmarked)['quality']


def test_predictions_for_other_sessions_are_refused_in_one_line(dataset, tmp_path):
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'predictions.json').write_text(json.dumps({'sessions': ['/elsewhere/seq_900']}))
    with pytest.raises(DatasetError) as err:
        ReviewServer(dataset, port=0, predictions=other)
    assert 'predicts sessions seq_900, none of' in str(err.value) and '\n' not in str(err.value)
    with FolderLock(dataset):  # nothing was held: the dataset is free
        pass


def test_evaluate_reports_the_reviewed_items_apart(dataset):
    pytest.importorskip('onnxruntime')
    from grasp_autolabel.dataset.review import label_etag, save_review
    from grasp_autolabel.detector.evaluate import evaluate

    ds = GraspDataset.open(dataset)
    with FolderLock(dataset):
        for i in ds.item_indices()[:2]:
            save_review(ds, i, verdict='accepted', grasps=ds.read_label(i).grasps,
                        etag=label_etag(ds, i))
    r = evaluate(MODEL, dataset, part='all', split='none', progress=False)
    assert r['images'] == len(ds.item_indices()) and r['reviewed']['images'] == 2
    assert r['reviewed']['candidates'] <= r['candidates']
