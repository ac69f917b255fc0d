"""The labels record (dataset/labels.py): one owner of the labels file's format.

Files written by the release before LabelRecord (version 1, in data/labels_v1: `label`, `export`,
`augment` and a Jacquard import) still read, field for field; every bad field is refused in one
line naming the file.
"""
import json
from pathlib import Path
import shutil

from grasp_autolabel.annotate import Reason
from grasp_autolabel.dataset.labels import LABEL_VERSION, LabelRecord
from grasp_autolabel.dataset.splits import assign_splits
from grasp_autolabel.dataset.store import DatasetError, GraspDataset
import numpy as np
import pytest

V1 = Path(__file__).parent / 'data' / 'labels_v1'
V1_FILES = sorted(p for p in V1.glob('*_0*.json'))


@pytest.mark.parametrize('path', V1_FILES, ids=lambda p: p.stem)
def test_a_version_1_file_reads_and_writes_back_every_field_unchanged(path):
    v1 = json.loads(path.read_text())
    assert 'version' not in v1
    rec = LabelRecord.from_json(v1, where=str(path))
    out = rec.to_json()
    assert out['version'] == LABEL_VERSION
    for key, value in v1.items():
        assert out[key] == value, key
    added = set(out) - set(v1) - {'version'}
    assert all(out[k] is None for k in added), added  # only fields v1 left out as unknown
    assert isinstance(rec.grasps, np.ndarray) and rec.grasps.shape[1:] == (5,)
    assert rec.reason is None or isinstance(rec.reason, Reason)
    assert rec.detail == v1['detail']


def test_a_dataset_made_by_the_previous_release_opens_reads_and_splits(tmp_path):
    ds_dir = tmp_path / 'dataset'
    (ds_dir / 'labels').mkdir(parents=True)
    shutil.copy(V1 / 'labelled_dataset.json', ds_dir / 'dataset.json')
    for p in V1.glob('labelled_0*.json'):
        shutil.copy(p, ds_dir / 'labels' / p.name.removeprefix('labelled_'))
    ds = GraspDataset.open(ds_dir)
    labels = [ds.read_label(i) for i in ds.item_indices()]
    assert [lab.accepted for lab in labels] == [True, True, False]
    assert labels[2].reason == Reason.SKELETON_NOT_LINE_LIKE
    assert len(labels[0].later_picks) == len(set(labels[0].later_picks)) >= 1
    assert len(labels[0].all_grasps()) == len(labels[0].grasps) + len(labels[0].later_grasps)
    assert ds.source_of(0, labels[0])['name'] == labels[0].session
    splits = assign_splits(ds)
    assert sorted(splits['image']['train'] + splits['image']['test']) == [0, 1, 2]


def test_a_record_written_through_the_dataset_reads_back_equal(tmp_path):
    ds = GraspDataset.create(tmp_path / 'ds', jaw_width_m=0.02, settings={})
    rec = LabelRecord(accepted=False, reason=Reason.CAMERA_MOVED, pick_index=4, source=0,
                      session='s', frame_before=4, frame_after=5,
                      grasps=np.array([[10.1234, 20.5, 0.25, 30.0, 6.0]]), scores=np.array([0.5]),
                      spine=np.array([[1.0, 2.0], [3.0, 4.0]]), stamp_after_ns=17,
                      later_picks=[6], later_grasps=np.zeros((0, 5)), extra={'note': 'kept'})
    ds.write_item(0, rgb=np.zeros((8, 8, 3), np.uint8), depth=np.zeros((8, 8), np.uint16),
                  mask=np.zeros((8, 8), bool), label=rec)
    back = ds.read_label(0)
    assert back.to_json() == rec.to_json()
    on_disk = json.loads((tmp_path / 'ds' / 'labels' / '000000.json').read_text())
    assert on_disk['reason'] == 'camera_moved'
    assert on_disk['detail'] == Reason.CAMERA_MOVED.description
    assert on_disk['image'] == 'images/000000.png' and on_disk['note'] == 'kept'


@pytest.mark.parametrize('change, message', [
    ({'version': 3}, 'labels format version 3; this grasp_autolabel reads up to 2'),
    ({'accepted': 'yes'}, "'accepted' must be true or false, not 'yes'"),
    ({'reason': 'camara_moved'}, "reason 'camara_moved' is not one of the gate's reasons"),
    ({'pick_index': 1.5}, 'pick_index must be a whole number, not 1.5'),
    ({'grasps': [[1, 2, 3]]}, 'grasps'),
    ({'scores': [0.5, 0.5, 0.5]}, '3 scores for'),
    ({'image': 7}, 'image: expected a path, got int'),
])
def test_a_bad_field_is_refused_in_one_line_naming_the_file(change, message):
    data = {**json.loads(V1_FILES[0].read_text()), **change}
    with pytest.raises(DatasetError) as err:
        LabelRecord.from_json(data, where='DATASET/labels/000007.json')
    text = str(err.value)
    assert text.startswith('DATASET/labels/000007.json: ') and message in text
    assert '\n' not in text
