"""Benchmark: talkit's vectorised detection mAP vs a straightforward per-prediction loop.

Builds 100k random predictions over the THUMOS14 test ground truth (gt.json, 210 videos,
3311 instances), scores them at the 9 THUMOS14 thresholds (0.1..0.9) with
``talkit.wtal_heads.evaluation.evaluate`` and with a plain loop written here from the
same description (shared/reference/evaluation.md), asserts identical APs and prints the
speed ratio. Target: >= 20x faster, and under 2 s absolute.

    python benchmarks/eval.py [--predictions 100000] [--seed 0] [--gt PATH]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from talkit.datasets import load_annotations
from talkit.datasets.bundled import BUNDLED
from talkit.wtal_heads.evaluation import THRESHOLD_PRESETS, evaluate
from talkit.wtal_heads.evaluation.detections import DetectionSet

REPEATS = 7  # best-of for the fast path: shared machines are noisy
DEFAULT_GT = BUNDLED["thumos14"].path  # shipped with talkit


def random_predictions(dataset, n: int, seed: int) -> DetectionSet:
    """Half jittered GT segments, half random ones; 80% of labels from the video's GT."""
    rng = np.random.default_rng(seed)
    videos = list(dataset.videos)
    classes = list(dataset.classes)
    recs = []
    for _ in range(n):
        vid = videos[rng.integers(len(videos))]
        anns = dataset.videos[vid].annotations
        if anns and rng.random() < 0.5:
            seg = anns[rng.integers(len(anns))]
            length = seg.end_s - seg.start_s
            s = seg.start_s + rng.normal(0, 0.3) * length
            e = seg.end_s + rng.normal(0, 0.3) * length
            s, e = min(s, e), max(s, e)
            label = seg.label if rng.random() < 0.8 else classes[rng.integers(len(classes))]
        else:
            s = rng.uniform(0, 200)
            e = s + rng.exponential(8)
            label = (
                anns[rng.integers(len(anns))].label
                if anns and rng.random() < 0.8
                else classes[rng.integers(len(classes))]
            )
        recs.append({"video": vid, "label": label, "score": float(rng.random()), "segment": [s, e]})
    return DetectionSet.from_records(recs)


def loop_ap(dataset, dets: DetectionSet, thresholds) -> np.ndarray:
    """The description, one prediction at a time. Returns (T, C) AP over the GT classes."""
    gt = defaultdict(lambda: defaultdict(list))
    for vid, video in dataset.videos.items():
        for seg in video.annotations:
            gt[seg.label][vid].append((seg.start_s, seg.end_s))
    classes = [c for c in dataset.classes if c in gt]
    labels, videos = dets.label.tolist(), dets.video.tolist()
    ap = np.zeros((len(thresholds), len(classes)))
    for ci, c in enumerate(classes):
        gt_c = {v: np.array(s) for v, s in gt[c].items()}
        offsets, k = {}, 0
        for v, s in gt_c.items():
            offsets[v] = k
            k += len(s)
        npos = k
        idx = [i for i in range(len(dets)) if labels[i] == c]
        idx.sort(key=lambda i: -dets.score[i])  # stable: ties keep input order
        lock = np.zeros((len(thresholds), npos), dtype=bool)
        tp = np.zeros((len(thresholds), len(idx)))
        fp = np.zeros((len(thresholds), len(idx)))
        for n, i in enumerate(idx):
            vid = videos[i]
            if vid not in gt_c:
                fp[:, n] = 1
                continue
            g = gt_c[vid]
            s, e = dets.segments[i]
            inter = np.clip(np.minimum(e, g[:, 1]) - np.maximum(s, g[:, 0]), 0, None)
            tiou = inter / ((g[:, 1] - g[:, 0]) + (e - s) - inter)
            visit = np.argsort(tiou, kind="stable")[::-1]
            for t, thr in enumerate(thresholds):
                for j in visit:
                    if tiou[j] < thr:
                        break
                    if lock[t, offsets[vid] + j]:
                        continue
                    lock[t, offsets[vid] + j] = True
                    tp[t, n] = 1
                    break
                if tp[t, n] == 0:
                    fp[t, n] = 1
        if not idx:
            continue
        tpc, fpc = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
        rec, prec = tpc / npos, tpc / (tpc + fpc)
        for t in range(len(thresholds)):
            mprec = np.hstack([[0], prec[t], [0]])
            mrec = np.hstack([[0], rec[t], [1]])
            for q in range(len(mprec) - 1)[::-1]:
                mprec[q] = max(mprec[q], mprec[q + 1])
            w = np.where(mrec[1:] != mrec[:-1])[0] + 1
            ap[t, ci] = np.sum((mrec[w] - mrec[w - 1]) * mprec[w])
    return ap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gt", type=Path, default=DEFAULT_GT)
    args = parser.parse_args()

    dataset = load_annotations(args.gt).subset("test")
    thresholds = list(THRESHOLD_PRESETS["thumos14"].thresholds)
    dets = random_predictions(dataset, args.predictions, args.seed)
    print(
        f"GT {args.gt}: {len(dataset.videos)} videos, {dataset.num_instances} instances; "
        f"{len(dets)} predictions; {len(thresholds)} thresholds"
    )

    evaluate(dataset, dets, thresholds=thresholds)  # warm-up (imports, caches)
    wall, cpu = [], []
    for _ in range(REPEATS):
        w0, c0 = time.perf_counter(), time.process_time()
        result = evaluate(dataset, dets, thresholds=thresholds)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    fast, fast_cpu = min(wall), min(cpu)

    w0, c0 = time.perf_counter(), time.process_time()
    baseline = loop_ap(dataset, dets, thresholds)
    slow, slow_cpu = time.perf_counter() - w0, time.process_time() - c0

    assert result.ap.shape == baseline.shape, (result.ap.shape, baseline.shape)
    assert np.array_equal(result.ap, baseline), np.abs(result.ap - baseline).max()
    print("mAP@" + " ".join(f"{t:g}:{m:.4f}" for t, m in zip(thresholds, result.map, strict=True)))
    print(f"talkit evaluate (best of {REPEATS}): {fast:.3f} s wall, {fast_cpu:.3f} s CPU")
    print(f"per-prediction loop:         {slow:.3f} s wall, {slow_cpu:.3f} s CPU")
    print(
        f"speed-up: {slow / fast:.1f}x wall, {slow_cpu / fast_cpu:.1f}x CPU "
        "(target >= 20x; absolute target < 2 s)"
    )
    print("APs identical: yes")


if __name__ == "__main__":
    main()
