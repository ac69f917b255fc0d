"""The ``grasp-autolabel`` command.

Sub-commands are declared here (arguments only); their implementations live in
:mod:`.data`, :mod:`.detector` and :mod:`.info`, imported plainly: those modules import what is
heavy (torch, rosbags, rclpy) inside the command that needs it, so ``grasp-autolabel --help`` is
instant and commands that need no detector never import torch.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys
import traceback

from grasp_autolabel import __version__
from grasp_autolabel.cli import data as data_cmd
from grasp_autolabel.cli import detector as detector_cmd
from grasp_autolabel.cli import info as info_cmd
from grasp_autolabel.cli import review as review_cmd
from grasp_autolabel.cli.argtypes import (fraction, non_negative_float, non_negative_int,
                                          positive_float, positive_int)
from grasp_autolabel.core.errors import CommandError

PROG = 'grasp-autolabel'


def _add_info(sub):
    p = sub.add_parser('info',
                       help='show versions and what is available here (ROS 2, messages, torch)',
                       description='Report the package version and which optional parts work in '
                                   'this environment: rclpy and the grasp_autolabel_msgs messages '
                                   '(nodes), rosbags (bag export), torch/torchvision (detector).')
    p.add_argument('--json', action='store_true', help='print one JSON object instead of a table')
    p.set_defaults(_impl=info_cmd.main)


def _add_simulate(sub):
    p = sub.add_parser('simulate',
                       help='write simulated picking sequences (capture sessions + ground truth)',
                       description='Simulate the log-sorting cell: a pile of logs under a static '
                                   'RGB-D camera, an expert removing one log per step. Each '
                                   'sequence is a capture session (camera_info.yaml, rgb/, '
                                   'depth/) with ground truth in gt/, which the labelling code '
                                   'never reads. Deterministic for a given seed.')
    p.add_argument('--out', required=True, type=Path,
                   help='output folder; sequences go to OUT/seq_000, ...')
    p.add_argument('--sequences', type=positive_int, default=1,
                   help='number of sequences (default 1)')
    p.add_argument('--seed', type=non_negative_int, default=0, help='random seed (default 0)')
    p.add_argument('--logs', type=positive_int, default=None,
                   help='logs per pile (default: 8 to 14 at random)')
    p.add_argument('--fault-rate', '--faults', dest='fault_rate', type=fraction, nargs='?',
                   const=0.25, default=0.0,
                   metavar='RATE',
                   help='include fault steps (failed pick, two logs at once, camera knocked, arm '
                        'in view) '
                        'with this probability per pick (0.25 when given without a value)')
    p.add_argument('--width', type=positive_int, default=640,
                   help='image width in pixels (default 640)')
    p.add_argument('--height', type=positive_int, default=480,
                   help='image height in pixels (default 480)')
    p.add_argument('--tilt-max', type=non_negative_float, default=12.0, metavar='DEG',
                   help='largest camera tilt from straight down; half the sequences are tilted '
                        '(default 12)')
    p.add_argument('--sensor', choices=('d4xx', 'two-sided'), default='d4xx',
                   help='depth sensor model: d4xx (RealSense-like: occlusion band on the far '
                        'side of edges, 1 mm units) or two-sided (edges blanked on both sides, '
                        '25-35 %% invalid, 0.1 mm units, heavier noise)')
    p.add_argument('--bag', choices=('captured', 'continuous'),
                   help="also write each sequence as a rosbag2 bag in OUT/bags/: 'captured' = the "
                        "capture node's topics (one frame per pick), 'continuous' = the camera's "
                        'topics at --fps with the arm in view during picks (needs rosbags)')
    p.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                   help='bag storage (default mcap)')
    p.add_argument('--fps', type=positive_float, default=30.0,
                   help='--bag continuous: frame rate (default 30)')
    p.add_argument('--trigger', action='store_true',
                   help='--bag continuous: also record /operator/pick_done (std_msgs/Empty) once '
                        'per still scene')
    p.add_argument('--overwrite', action='store_true', help='replace sequences already in OUT')
    p.set_defaults(_impl=data_cmd.simulate_main)


def _add_label(sub):
    p = sub.add_parser('label', help='label capture sessions automatically into a grasp dataset',
                       description='For each pick (frames k and k+1 of a session): the removed '
                                   "log's mask from the depth difference, its spine, grasp "
                                   "rectangles across it, and the quality gate's verdict. Writes "
                                   'the grasp dataset layout (dataset.json, images/, depth/, '
                                   'masks/, labels/); item k of a single session is the pick '
                                   'between frames k and k+1. Rejected steps keep a labels file '
                                   'with accepted=false and the reason.')
    p.add_argument('sessions', nargs='+', type=Path, metavar='SESSION',
                   help='capture session folder(s), or folders of sessions (taken in name order)')
    p.add_argument('--out', required=True, type=Path, metavar='DATASET',
                   help='dataset folder to write')
    p.add_argument('--config', type=Path,
                   help='YAML with annotation/gate settings (plain mapping or the autolabel '
                        "node's ROS parameter file)")
    p.add_argument('--viz', action='store_true', help='also write overlays to DATASET/viz/')
    group = p.add_mutually_exclusive_group()
    group.add_argument('--append', action='store_true',
                       help='add to the dataset already in DATASET')
    group.add_argument('--overwrite', action='store_true',
                       help='replace the dataset already in DATASET')
    p.set_defaults(_impl=data_cmd.label_main)


def _add_eval_labels(sub):
    p = sub.add_parser('eval-labels',
                       help="score automatic labels against the simulator's ground truth",
                       description='Mask IoU, valid grasps, coverage, faults rejected and good '
                                   'steps rejected of a dataset labelled from simulated sessions. '
                                   'Prints a table, then the metrics as JSON on the last line.')
    p.add_argument('dataset', type=Path, metavar='DATASET')
    p.add_argument('--gt', type=Path, nargs='+', metavar='SESSION/gt',
                   help='ground-truth folder(s), one per source session in order '
                        "(default: each source session's own gt/)")
    p.set_defaults(_impl=data_cmd.eval_labels_main)


def _add_run_sim(sub):
    p = sub.add_parser('run-sim', help="run the simulated cell's node graph and perform N picks",
                       description='Start sim_camera_node, capture_node (auto capture) and '
                                   'autolabel_node as real processes (what `ros2 launch '
                                   'grasp_autolabel sim.launch.py` starts), perform N picks and '
                                   'stop. Leaves OUT/session, OUT/dataset and OUT/logs; exits '
                                   'non-zero if a node failed. Needs the ROS 2 environment (make '
                                   'setup).')
    p.add_argument('--picks', type=positive_int, required=True, help='number of picks')
    p.add_argument('--out', type=Path, required=True, help='output folder')
    p.add_argument('--seed', type=non_negative_int, default=0, help='pile seed (default 0)')
    p.add_argument('--fps', type=positive_float, default=30.0,
                   help='camera frame rate (default 30)')
    p.add_argument('--width', type=positive_int, default=640)
    p.add_argument('--height', type=positive_int, default=480)
    p.set_defaults(_impl=data_cmd.run_sim_main)


def _add_convert(sub):
    p = sub.add_parser('convert', help='grasp dataset <-> Cornell or Jacquard folders',
                       description="--to: write a grasp dataset's accepted items as a Cornell "
                                   'folder (pcdNNNNr.png, pcdNNNNd.tiff, pcdNNNNcpos.txt) or a '
                                   'Jacquard folder (NNNNNN_RGB.png, NNNNNN_perfect_depth.tiff, '
                                   'NNNNNN_mask.png, NNNNNN_grasps.txt with '
                                   'x;y;theta_deg;opening;jaw). --from: import such a folder as a '
                                   'grasp dataset.')
    p.add_argument('source', type=Path, metavar='SOURCE',
                   help='a grasp dataset (--to) or a Cornell/Jacquard folder (--from)')
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument('--to', choices=('cornell', 'jacquard'))
    group.add_argument('--from', dest='from_', choices=('cornell', 'jacquard'))
    p.add_argument('--out', type=Path, required=True, help='output folder')
    p.add_argument('--all', action='store_true', help='--to: also the items the gate rejected')
    p.add_argument('--overwrite', action='store_true', help='replace what is in --out')
    p.set_defaults(_impl=data_cmd.formats_main)


def _add_export(sub):
    p = sub.add_parser('export',
                       help='rosbag2 bags (MCAP, SQLite3) -> a grasp dataset, without ROS',
                       description='Read rosbag2 recordings with rosbags and label them with the '
                                   "same code as the nodes. A bag of the capture node's topics "
                                   '(/capture_node/captured/...) gives one pick per pair of '
                                   'consecutive frames; a continuous recording of the camera '
                                   '(/camera/camera/color/image_raw + aligned depth) is searched '
                                   'for the still scenes between picks (or the frames after each '
                                   '--trigger message), and a few still frames are averaged. '
                                   'Resumable: a rerun skips what is done. Damaged bags are read '
                                   'up to the fault, which is reported.')
    p.add_argument('bags', nargs='+', type=Path, metavar='BAG',
                   help='rosbag2 folder, .mcap/.db3 file, or a folder of bags')
    p.add_argument('--out', required=True, type=Path, metavar='DATASET',
                   help='dataset folder to write')
    p.add_argument('--topics', nargs=3, metavar=('COLOUR', 'DEPTH', 'CAMERA_INFO'),
                   help='topics to read (default: found by name, see --mode)')
    p.add_argument('--mode', choices=('auto', 'captured', 'continuous'), default='auto',
                   help='captured: every frame is a capture; continuous: find the still scenes '
                        '(default: from the topic names)')
    p.add_argument('--trigger', metavar='TOPIC',
                   help='continuous: capture the first still frame after each message on TOPIC '
                        '(any type) instead of on every scene change')
    p.add_argument('--settle-s', type=non_negative_float, default=0.5,
                   help='continuous: seconds still before a capture (0.5)')
    p.add_argument('--average', type=positive_int, default=5,
                   help='continuous: still frames averaged (5)')
    p.add_argument('--depth-scale', type=positive_float, default=0.001,
                   help='metres per unit of 16UC1 depth (0.001)')
    p.add_argument('--camera-info', type=Path, metavar='YAML',
                   help='camera_info.yaml for bags without camera_info')
    p.add_argument('--config', type=Path, help='YAML with annotation/gate settings (as for label)')
    p.add_argument('--viz', action='store_true', help='also write overlays to DATASET/viz/')
    group = p.add_mutually_exclusive_group()
    group.add_argument('--append', action='store_true',
                       help='add to the dataset already in DATASET')
    group.add_argument('--overwrite', action='store_true',
                       help='replace the dataset already in DATASET')
    p.set_defaults(_impl=data_cmd.export_main)


def _add_augment(sub):
    p = sub.add_parser('augment', help="random shifts and rotations of a dataset's accepted items",
                       description='Each accepted item gives FACTOR items (the first unchanged), '
                                   'rotated about the image centre and shifted at random; images, '
                                   'depth, masks and grasps are moved by the same map, grasps '
                                   'leaving the image are dropped. Deterministic by --seed; a '
                                   'rerun writes only what is missing. Copies keep their '
                                   "original's split.")
    p.add_argument('dataset', type=Path, metavar='DATASET')
    p.add_argument('--out', required=True, type=Path, metavar='DATASET2')
    p.add_argument('--factor', type=positive_int, default=100,
                   help='items per input item (default 100)')
    p.add_argument('--seed', type=non_negative_int, default=0)
    p.add_argument('--max-shift', type=non_negative_float, default=50.0, metavar='PX',
                   help='largest shift in x and y (50 px)')
    p.add_argument('--max-rotation', type=non_negative_float, default=180.0, metavar='DEG',
                   help='largest rotation (180 deg)')
    p.add_argument('--overwrite', action='store_true', help='replace what is in --out')
    p.set_defaults(_impl=data_cmd.augment_main)


def _add_split(sub):
    p = sub.add_parser(
        'split',
        help="recompute a dataset's train/test splits (image-wise and session-wise)",
        description='Write both splits to dataset.json: image-wise (each pick by a seeded hash) '
        'and session-wise (whole sessions or bags held out). label, export and augment write them '
        'with the defaults already.',
    )
    p.add_argument('dataset', type=Path, metavar='DATASET')
    p.add_argument('--test-fraction', type=fraction, default=None,
                   help='share held out (default: as recorded, else 0.2)')
    p.add_argument('--seed', type=non_negative_int, default=None,
                   help='(default: as recorded, else 0)')
    p.set_defaults(_impl=data_cmd.splits_main)


def _add_train(sub):
    p = sub.add_parser('train', help="train the oriented grasp detector on a dataset's labels",
                       description='Train a grasp detector on the accepted labels (and later '
                                   "picks' grasps carried back) of the train part of the "
                                   "dataset's session-wise split; the held-out part picks the "
                                   'best checkpoint. Default: the grasp-map network (RGB-D, from '
                                   'random weights; 900 steps, cut to end within --max-minutes, '
                                   '18 by default, where the machine is slower: a 2-core CPU). '
                                   "--model faster-rcnn: the paper's detector. Writes "
                                   'RUN/config.json, RUN/checkpoints/best.pt and last.pt, '
                                   'RUN/loss.csv, loss.png and validation.csv. Nothing is '
                                   'downloaded.')
    p.add_argument('dataset', type=Path, metavar='DATASET')
    p.add_argument('--out', required=True, type=Path, metavar='RUN')
    p.add_argument('--model', metavar='FAMILY',
                   help='network family: grasp-map (default) or faster-rcnn (the registry in '
                        'detector/models/__init__.py)')
    p.add_argument('--config', type=Path,
                   help='YAML of detector settings: model, network:, train:, decode: (see '
                        'detector/config.py and detector/models/)')
    p.add_argument('--max-steps', dest='max_steps', type=positive_int,
                   help='training steps (grasp-map 900, faster-rcnn 700)')
    p.add_argument('--max-minutes', dest='max_minutes', type=non_negative_float,
                   help='fewer steps where the first ones show the run would take longer than '
                        'this (default 18; 0: always --max-steps)')
    p.add_argument('--batch-size', dest='batch_size', type=positive_int,
                   help='images per step (grasp-map 8, faster-rcnn 4)')
    p.add_argument('--lr', type=positive_float,
                   help='peak learning rate (grasp-map 2e-3, faster-rcnn 1e-4)')
    p.add_argument('--split', choices=('session', 'image', 'none'),
                   help="which split's train part to train on (default session; none: every item, "
                        'no validation)')
    p.add_argument('--reviewed-only', dest='reviewed_only', action='store_true', default=None,
                   help='train only on items a person reviewed (grasp-autolabel review)')
    p.add_argument('--channels',
                   help='input: grasp-map rgbd | depth | rgb (default rgbd); faster-rcnn rgb | '
                        'rgd (default rgd)')
    p.add_argument('--input-size', dest='input_size', type=positive_int,
                   help='long side of the network input, pixels (default 320)')
    p.add_argument('--backbone', choices=('resnet50', 'resnet18'),
                   help="faster-rcnn: resnet50 (the paper's) or resnet18 (default)")
    p.add_argument('--backbone-weights', type=Path, metavar='FILE',
                   help='faster-rcnn: ImageNet weights for the backbone, a local torchvision '
                        'ResNet state_dict file')
    p.add_argument('--device', default='cpu', help='cpu or cuda[:N] (default cpu)')
    p.add_argument('--resume', action='store_true',
                   help='continue the run in RUN from its last checkpoint')
    p.add_argument('--init', metavar='MODEL',
                   help="start from this model's weights (a run folder or .pt checkpoint; "
                        "'shipped': the package's simulator-trained model): fine-tuning, with a "
                        'fresh optimiser and schedule, and --lr defaulting to a fifth of the '
                        "family's. Its network must be the one asked for")
    p.set_defaults(_impl=detector_cmd.train_main)


def _add_decode_options(p):
    p.add_argument('--score-threshold', dest='score_threshold', type=fraction,
                   help="drop candidates scored below this (default: the model's, 0.3)")
    p.add_argument('--max-candidates', dest='max_candidates', type=positive_int,
                   help="candidates per image (default: the model's, 10)")


def _add_evaluate(sub):
    p = sub.add_parser(
        'evaluate',
        help='valid candidates, coverage and rectangle metric of a trained detector',
        description="On simulated data (the source sessions' gt/): the share of candidates that "
        'are valid grasps on a log nothing rests on (a precision), top-1 valid, coverage of the '
        'free logs, the top-1 rectangle metric against dense ground truth along each free log, '
        "and every invalid candidate by why. Elsewhere the rectangle metric against the dataset's "
        'labels. JSON on the last line.',
    )
    p.add_argument('run', type=Path, metavar='MODEL',
                   help="run folder, .pt or .onnx model, or 'shipped' (the simulator-trained one)")
    p.add_argument('dataset', type=Path, metavar='DATASET')
    p.add_argument('--part', choices=('test', 'train', 'all'), default='test',
                   help='which part (default test)')
    p.add_argument('--split', choices=('session', 'image', 'none'), default='session',
                   help='split kind (default session; none with --part all: every item)')
    p.add_argument('--backend', choices=('auto', 'torch', 'onnx'), default='auto')
    p.add_argument('--device', default='cpu')
    _add_decode_options(p)
    p.set_defaults(_impl=detector_cmd.evaluate_main)


def _add_export_onnx(sub):
    p = sub.add_parser('export-onnx', help='export a trained detector to ONNX (for ONNX Runtime)',
                       description="The network as ONNX opset 17 with its settings in the model's "
                                   'metadata; decoding, the jaw size and NMS stay in Python, '
                                   'shared with torch.')
    p.add_argument('run', type=Path, metavar='RUN',
                   help='run folder (its best checkpoint) or .pt checkpoint')
    p.add_argument('--out', required=True, type=Path, help='the .onnx file to write')
    p.add_argument('--overwrite', action='store_true', help='replace --out if it exists')
    p.set_defaults(_impl=detector_cmd.export_main)


def _add_predict(sub):
    p = sub.add_parser('predict', help='run a detector on capture sessions: grasps per frame',
                       description='For every frame k of every session: '
                                   'OUT/<session>/grasps/NNNNNN.json = {grasps: [[x, y, theta, w, '
                                   'h], ...], scores, poses}, best first, in the grasp '
                                   'convention; --viz adds OUT/<session>/viz/NNNNNN.png. A '
                                   'SESSION may be a folder of sessions (taken in name order). '
                                   'OUT must be new or an earlier predict output.')
    p.add_argument('model', type=Path, metavar='MODEL',
                   help="run folder, .pt or .onnx model, or 'shipped' (the simulator-trained one)")
    p.add_argument('sessions', nargs='+', type=Path, metavar='SESSION',
                   help='capture session(s) or folder(s) of them')
    p.add_argument('--out', required=True, type=Path, metavar='DIR')
    p.add_argument('--viz', action='store_true', help='also write overlays')
    p.add_argument('--backend', choices=('auto', 'torch', 'onnx'), default='auto')
    p.add_argument('--device', default='cpu')
    _add_decode_options(p)
    p.set_defaults(_impl=detector_cmd.predict_main)


# Each entry adds one sub-command's parser.
_COMMANDS = [_add_info, _add_simulate, _add_label, _add_eval_labels, _add_run_sim, _add_export,
             _add_augment, _add_split, _add_convert, _add_train, _add_evaluate, _add_export_onnx,
             _add_predict, review_cmd.add_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Automatic oriented-grasp labels from sequential RGB-D frames of a log pile. '
                    'Grasps are (x, y, theta, w, h) in image pixels: theta is the closing '
                    'direction from +x towards +y in [-pi/2, pi/2), w the opening, h the jaw '
                    'size.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    parser.add_argument('--debug', action='store_true',
                        help='show full tracebacks on errors (also: GRASP_AUTOLABEL_DEBUG=1)')
    sub = parser.add_subparsers(title='commands', metavar='COMMAND')
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, '_impl'):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get('GRASP_AUTOLABEL_DEBUG') == '1'
    try:
        return int(args._impl(args) or 0)
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted', file=sys.stderr)
        return 130
    except (CommandError, ValueError, OSError) as exc:
        if debug:
            traceback.print_exc()
        # one line, in one write: processes sharing the stream (torchrun) never interleave it
        sys.stderr.write(f"{PROG}: error: {' '.join(str(exc).split())}\n")
        sys.stderr.flush()
        return 2


if __name__ == '__main__':
    sys.exit(main())
