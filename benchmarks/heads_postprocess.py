"""Measurement: what each step of BaSNet's post-processing is worth, on one trained model.

Trains the narrowed BaSNet of tests/test_train_synthetic.py (T = 64, CAS width 32, 300
iterations of batch 16 at lr 1e-3, standardized input) on a THUMOS-shaped synthetic store
(every third THUMOS14 video of the shipped gt.json, 2048-d features, seed 0), runs its
best checkpoint once on the test videos, and scores the *same* CAS with:

- talkit's ``basnet`` preset (the authors' recipe, minus the documented departures);
- BaSNet's own recipe, restated loop by loop in tests/basnet_reference.py, with its
  defects (a video whose only class is index 0 gets nothing; a class without an active
  sample crashes the reference, counted and then treated as having no proposal);
- the restatement with each defect alone switched off (the effect of each departure);
- the recipe talkit used before issue #15, and each step of the preset reverted alone;
- talkit and the reference again with the ground-truth classes as class scores (1 for a
  video's classes, 0 otherwise), where every video of class index 0 alone is selected as
  such: the case departure 1 is about.

Prints average mAP over tIoU 0.1:0.7 (and 0.1:0.5) for every variant.

    python benchmarks/heads_postprocess.py [--seed 0] [--iterations 300] [--store DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from basnet_reference import basnet_reference

from talkit.datasets import load_annotations, write_activitynet_json
from talkit.datasets.bundled import BUNDLED
from talkit.datasets.store_dataset import multi_hot
from talkit.datasets.synthetic.features import write_features_to_store
from talkit.wtal_heads.config import load_config
from talkit.wtal_heads.data import prepare_data
from talkit.wtal_heads.device import resolve_device
from talkit.wtal_heads.evaluation import evaluate
from talkit.wtal_heads.evaluation.detections import DetectionSet
from talkit.wtal_heads.evaluation.postprocess import detect_videos, get_preset
from talkit.wtal_heads.inference import infer_videos
from talkit.wtal_heads.report import load_member
from talkit.wtal_heads.rundir import RunDir
from talkit.wtal_heads.train import train

OLD = {  # the pre-#15 values of the fields the preset changed
    "normalize_clamp": False,
    "upsample_mode": "nearest",
    "class_score_binary": False,
    "outer_left_ceil": False,
    "nms_length_offset": 0.0,
}


def build_store(root: Path) -> tuple[str, Path]:
    ds = load_annotations(BUNDLED["thumos14"].path)
    ids = sorted(ds.videos)[::3]
    sub = ds.model_copy(update={"videos": {v: ds.videos[v] for v in ids}})
    url = str(root / "feats.store")
    if not (root / "gt.json").is_file():
        filled, _ = write_features_to_store(
            url, sub, dataset_name="thumos14", feature_set="i3d", dim=2048, seed=0
        )
        write_activitynet_json(filled, root / "gt.json")
    return url, root / "gt.json"


def reference_set(outputs, classes, v_lens, *, class0: bool, crash: bool):
    """The restatement on every video; ``class0`` / ``crash`` keep each defect."""
    records, crashed = [], 0
    for o in outputs:
        # The head's CAS and scores have no background column; the reference drops the
        # last one, so append a dummy that is never selected.
        cas = np.concatenate([o.cas, np.zeros((len(o.cas), 1))], axis=1)
        scores = np.append(o.class_scores, 0.0)
        v_len = v_lens[o.video_id]
        try:
            props = basnet_reference(
                cas, scores, v_len, skip_only_class_zero=class0, crash_without_proposals=crash
            )
        except IndexError:
            crashed += 1
            props = basnet_reference(
                cas, scores, v_len, skip_only_class_zero=class0, crash_without_proposals=False
            )
        records += [
            {"video": o.video_id, "label": classes[c], "score": s, "segment": [a, b]}
            for c, s, a, b in props
        ]
    return DetectionSet.from_records(records), crashed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--store", type=Path, default=None, help="reuse/keep the store in this dir")
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.store or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        url, gt_path = build_store(root)
        cfg = load_config(
            "basnet_thumos14",
            {
                "data.num_segments": 64,
                "data.eval_num_segments": 64,
                "data.standardize": True,
                "data.num_workers": 0,
                "model.params.cas_dim": 32,
                "model.params.filter_dim": 16,
                "train.iterations": args.iterations,
                "train.eval_every": 100,
                "train.device": "cpu",
                "train.seed": args.seed,
                "optim.lr": 1e-3,
                "eval.predict_split": None,
            },
        )
        run = Path(tmp) / "run"
        train(cfg, store=url, annotations=gt_path, out=run, show_progress=False)
        data = prepare_data(cfg, store=url, annotations=gt_path)
        dev = resolve_device("cpu")
        model = load_member(RunDir(run), data.classes, data.source.dim, "best", dev)
        ids = data.test_ids
        outputs = infer_videos(model, cfg, data.source, data.annotations, ids, data.classes, dev)
        reader = data.source.open()
        v_lens = {v: reader.num_snippets(v) for v in ids}
        gt = data.ground_truth(ids)

        def score(dets: DetectionSet) -> str:
            avg = evaluate(gt, dets, thresholds="thumos14").averages
            return f"{100 * avg['0.1:0.7']:6.2f} {100 * avg['0.1:0.5']:6.2f}"

        only0 = sum(1 for o in outputs if np.flatnonzero(o.class_scores >= 0.25).tolist() == [0])
        print(f"seed {args.seed}: {len(ids)} test videos, {only0} whose only class is index 0")
        print(f"{'variant':58s} 0.1:0.7 0.1:0.5")
        print(
            f"{'talkit basnet preset':58s} {score(detect_videos(outputs, data.classes, 'basnet'))}"
        )
        ref, crashed = reference_set(outputs, data.classes, v_lens, class0=True, crash=True)
        print(f"{'reference (with its defects)':58s} {score(ref)}  [{crashed} videos crash it]")
        ref, _ = reference_set(outputs, data.classes, v_lens, class0=False, crash=True)
        print(f"{'reference, class-0 videos kept (departure 1)':58s} {score(ref)}")
        ref, _ = reference_set(outputs, data.classes, v_lens, class0=True, crash=False)
        print(f"{'reference, empty classes skipped (departure 2)':58s} {score(ref)}")
        old = get_preset("basnet", **OLD)
        print(f"{'pre-#15 talkit recipe':58s} {score(detect_videos(outputs, data.classes, old))}")
        for field, value in OLD.items():
            one = get_preset("basnet", **{field: value})
            label = f"basnet preset with {field}={value!r}"
            print(f"{label:58s} {score(detect_videos(outputs, data.classes, one))}")
        for field in OLD:
            one = get_preset("basnet", **{k: v for k, v in OLD.items() if k != field})
            label = f"pre-#15 recipe with only {field} as the authors'"
            print(f"{label:58s} {score(detect_videos(outputs, data.classes, one))}")

        oracle = [
            replace(
                o, class_scores=multi_hot(data.annotations.videos[o.video_id].labels, data.classes)
            )
            for o in outputs
        ]
        only0 = sum(1 for o in oracle if np.flatnonzero(o.class_scores).tolist() == [0])
        print(f"with ground-truth classes ({only0} videos whose only class is index 0):")
        print(
            f"{'  talkit basnet preset':58s} {score(detect_videos(oracle, data.classes, 'basnet'))}"
        )
        ref, crashed = reference_set(oracle, data.classes, v_lens, class0=True, crash=True)
        print(f"{'  reference (with its defects)':58s} {score(ref)}  [{crashed} videos crash it]")
        ref, _ = reference_set(oracle, data.classes, v_lens, class0=False, crash=True)
        print(f"{'  reference, class-0 videos kept (departure 1)':58s} {score(ref)}")


if __name__ == "__main__":
    main()
