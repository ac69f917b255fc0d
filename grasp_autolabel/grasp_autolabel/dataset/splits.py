"""Train/test splits of a grasp dataset, recorded in ``dataset.json``.

Two kinds, both kept (training chooses one):

``image``
    Each pick is in the test split with probability ``test_fraction``, decided by a hash of
    (seed, its source, its pick index): adding items never moves the ones already assigned.
``session``
    Whole sources (capture sessions or bags) are held out: all frames of a session are in one
    split, so a detector is tested on piles it never saw. ``round(test_fraction * n)`` sources
    (at least one when there are two or more) are chosen by the same kind of hash.

Augmented copies inherit the split of the item they were made from (their ``origin``), so no
test pick leaks into training through a shifted copy.
"""
from __future__ import annotations

import hashlib

from grasp_autolabel.dataset.labels import LabelRecord
from grasp_autolabel.dataset.store import DatasetError, GraspDataset

__all__ = ['assign_splits', 'origin_of', 'DEFAULT_TEST_FRACTION']

DEFAULT_TEST_FRACTION = 0.2


def origin_of(ds: GraspDataset, label: LabelRecord, index: int) -> tuple[str, int]:
    """Return ``(source key, pick index)`` of the real pick item ``index`` shows.

    Through augmentation (``origin``) or from its source; DatasetError naming the labels file
    when they are not there or of the wrong type.
    """
    try:
        if label.origin is not None:
            return str(label.origin['source']), int(label.origin['pick_index'])
        src = ds.source_of(index, label) if ds.meta.get('sources') else {}
        key = src.get('bag') or src.get('session') or src.get('name') or label.session
        return str(key), label.pick_index
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f'{ds.path}/labels/{index:06d}.json: origin, source or pick_index '
                           f'unreadable ({type(exc).__name__}: {exc})') from None


def _unit(*parts) -> float:
    digest = hashlib.blake2b('/'.join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'little') / 2.0 ** 64


def assign_splits(ds: GraspDataset, *, test_fraction: float | None = None,
                  seed: int | None = None) -> dict:
    """Compute both splits over the dataset's items and save them in ``dataset.json``.

    ``test_fraction`` and ``seed`` default to those already recorded (else 0.2 and 0).
    """
    old = ds.meta.get('splits') or {}
    frac = float(old.get('test_fraction',
                         DEFAULT_TEST_FRACTION) if test_fraction is None else test_fraction)
    seed = int(old.get('seed', 0) if seed is None else seed)
    if not 0.0 <= frac < 1.0:
        raise ValueError(f'test fraction: {frac} is not in [0, 1)')
    origins = {i: origin_of(ds, ds.read_label(i), i) for i in ds.item_indices()}
    sources = sorted({s for s, _ in origins.values()}, key=lambda s: _unit(seed, 'session', s))
    n_test = min(len(sources) - 1,
                 max(1, round(frac * len(sources)))) if len(sources) >= 2 and frac > 0 else 0
    test_sources = set(sources[:n_test])
    image_test = {i for i, o in origins.items() if _unit(seed, 'image', *o) < frac}
    splits = {
        'seed': seed,
        'test_fraction': frac,
        'image': {'train': sorted(set(origins) - image_test), 'test': sorted(image_test)},
        'session': {'train': sorted(i for i, o in origins.items() if o[0] not in test_sources),
                    'test': sorted(i for i, o in origins.items() if o[0] in test_sources),
                    'test_sources': sorted(test_sources)},
    }
    ds.meta['splits'] = splits
    ds.save_meta()
    return splits
