"""The training loop on a store: run directory, determinism, resume, ensembles, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli
from train_helpers import make_store, thumos_few_classes, tiny_config

from talkit.datasets import Segment, load_annotations, write_activitynet_json
from talkit.datasets.synthetic.features import write_features_to_store
from talkit.errors import ConfigError, InputError
from talkit.wtal_heads.data import ClassMismatchError, EmptySplitError, MissingVideosError
from talkit.wtal_heads.evaluation.detections import read_detections
from talkit.wtal_heads.predict import predict_run
from talkit.wtal_heads.train import ResumableBatchSampler, train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> tuple[str, Path]:
    """6 training and 6 test THUMOS14 timelines (3 classes), 64-d synthetic features,
    plus a second 32-d feature set of the same videos (for joins and ensembles)."""
    root = tmp_path_factory.mktemp("tiny")
    url, gt, ds = make_store(root, thumos_few_classes(real_data), dim=64)
    write_features_to_store(url, ds, dataset_name="thumos14", feature_set="other", dim=32, seed=1)
    return url, gt


def test_a_run_records_absolute_locations_so_predict_works_from_elsewhere(
    tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, gt = tiny
    monkeypatch.chdir(Path(url).parent)
    run = tmp_path / "run"
    train(
        tiny_config("basnet"),
        store=Path(url).name,
        annotations=gt.name,
        out=run,
        show_progress=False,
    )
    info = json.loads((run / "run.json").read_text())
    assert (info["store"], info["annotations"]) == (url, str(gt))
    monkeypatch.chdir(tmp_path)
    assert predict_run(run, split="test")["result"]["gt"]["videos"] == 6


def _weights(run: Path, which: str = "last") -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / f"{which}.pt", weights_only=True)["model"]


def _val_records(run: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items()}
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if '"val"' in line
    ]


def test_a_run_directory_holds_everything_a_user_needs(tiny, tmp_path: Path) -> None:
    url, gt = tiny
    run = tmp_path / "run"
    result = train(tiny_config("lgbm"), store=url, annotations=gt, out=run, show_progress=False)
    assert not result.interrupted and result.members[0].iterations_done == 8
    for name in (
        "config.yaml",
        "run.json",
        "metrics.jsonl",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "detections_test.json",
        "report_test.json",
        "report_test.md",
        "plots/training.png",
        "plots/map_test.png",
    ):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["store"] == url and info["splits"] == {"train": 4, "val": 2, "test": 6}
    val = _val_records(run)
    assert [m["iteration"] for m in val] == [4, 8]
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["iteration"] == result.members[0].best_iteration
    report = json.loads((run / "report_test.json").read_text())
    assert report["result"]["gt"]["videos"] == 6
    assert set(report["baseline_whole_video"]["average_mAP"]) == {"0.1:0.7", "0.1:0.5", "0.1:0.9"}
    dets = read_detections(run / "detections_test.json")
    assert set(dets.video) <= set(load_annotations(gt).subset("test").videos)

    # `predict` re-reads the run's store and annotations and writes the same detections.
    (run / "detections_test.json").unlink()
    again = predict_run(run, split="test")
    assert again["result"]["average_mAP"] == report["result"]["average_mAP"]
    assert len(read_detections(run / "detections_test.json")) == len(dets)


def test_same_seed_gives_the_same_metrics_and_weights(tiny, tmp_path: Path) -> None:
    url, gt = tiny
    cfg = tiny_config("basnet")
    train(cfg, store=url, annotations=gt, out=tmp_path / "a", show_progress=False)
    train(cfg, store=url, annotations=gt, out=tmp_path / "b", show_progress=False)
    other = tiny_config("basnet", **{"train.seed": 1})
    train(other, store=url, annotations=gt, out=tmp_path / "c", show_progress=False)
    assert _val_records(tmp_path / "a") == _val_records(tmp_path / "b")
    a, b, c = (_weights(tmp_path / x) for x in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_interrupted_and_resumed_equals_uninterrupted(tiny, tmp_path: Path) -> None:
    """Stop after 3 of 8 iterations (between evaluations), resume with a worker process
    reading the store: the final weights, optimizer state and metrics are identical."""
    url, gt = tiny
    cfg = tiny_config("lgbm")
    train(cfg, store=url, annotations=gt, out=tmp_path / "straight", show_progress=False)

    part = train(
        cfg, store=url, annotations=gt, out=tmp_path / "resumed", stop_after=3, show_progress=False
    )
    assert part.interrupted and part.members[0].iterations_done == 3
    assert not (tmp_path / "resumed" / "detections_test.json").exists()
    with pytest.raises(InputError, match="already holds a training run"):
        train(cfg, store=url, annotations=gt, out=tmp_path / "resumed", show_progress=False)
    workers = cfg.model_copy(update={"data": cfg.data.model_copy(update={"num_workers": 1})})
    done = train(
        workers,
        store=url,
        annotations=gt,
        out=tmp_path / "resumed",
        resume=True,
        show_progress=False,
    )
    assert not done.interrupted and done.members[0].iterations_done == 8

    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for sa, sb in zip(
        a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True
    ):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert _val_records(tmp_path / "straight") == _val_records(tmp_path / "resumed")
    assert a["best_iteration"] == b["best_iteration"]

    changed = tiny_config("lgbm", **{"model.params.cas_dim": 32})
    with pytest.raises(ConfigError, match="another config"):
        train(
            changed,
            store=url,
            annotations=gt,
            out=tmp_path / "resumed",
            resume=True,
            show_progress=False,
        )


def test_sampler_batches_depend_only_on_seed_and_iteration() -> None:
    s = ResumableBatchSampler(10, 4, seed=3)
    first = [b for b, _ in zip(s, range(6), strict=False)]
    resumed = [
        b
        for b, _ in zip(
            ResumableBatchSampler(10, 4, seed=3, start_iteration=4), range(2), strict=False
        )
    ]
    assert resumed == first[4:6]
    # Each epoch visits every video once.
    flat = [i for batch in first[:5] for i, _ in batch]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))


def test_joined_feature_sets_and_an_ensemble_train_from_one_store(tiny, tmp_path: Path) -> None:
    url, gt = tiny
    # Two aligned feature sets, concatenated per snippet; random crops padded with a mask,
    # every snippet at test time.
    joined = tiny_config(
        "basnet",
        **{
            "data.feature_sets": ["thumos14/i3d", "thumos14/other"],
            "model.in_dim": 96,
            "data.sampling": "crop",
            "data.eval_sampling": "full",
        },
    )
    train(joined, store=url, annotations=gt, out=tmp_path / "joined", show_progress=False)
    assert (
        torch.load(tmp_path / "joined" / "checkpoints" / "last.pt", weights_only=True)["in_dim"]
        == 96
    )

    ens = tiny_config(
        "lgbm",
        **{
            "data.feature_sets": ["thumos14/i3d", "thumos14/other"],
            "model.in_dim": None,
            "ensemble": True,
            "eval.postprocess_params": {"class_value": 0.0},  # every class: many detections
        },
    )
    result = train(ens, store=url, annotations=gt, out=tmp_path / "ens", show_progress=False)
    assert [m.name for m in result.members] == ["thumos14/i3d", "thumos14/other"]
    for member, dim in (("thumos14__i3d", 64), ("thumos14__other", 32)):
        ckpt = torch.load(
            tmp_path / "ens" / "members" / member / "checkpoints" / "best.pt", weights_only=True
        )
        assert ckpt["in_dim"] == dim
    merged = read_detections(tmp_path / "ens" / "detections_test.json")
    assert len(merged) > 0
    # Merged and NMS'd: no two detections of one class in one video overlap at tIoU >= 0.5.
    for vid in set(merged.video):
        for label in set(merged.label[merged.video == vid]):
            segs = merged.segments[(merged.video == vid) & (merged.label == label)]
            for i in range(len(segs)):
                for j in range(i + 1, len(segs)):
                    inter = max(0.0, min(segs[i, 1], segs[j, 1]) - max(segs[i, 0], segs[j, 0]))
                    union = (segs[i, 1] - segs[i, 0]) + (segs[j, 1] - segs[j, 0]) - inter
                    assert union <= 0 or inter / union < 0.5


def test_bad_input_is_refused_before_training(tiny, tmp_path: Path) -> None:
    url, gt = tiny
    with pytest.raises(ConfigError, match=r"expects model.in_dim=2048 but the store gives 64"):
        train(
            tiny_config("basnet", **{"model.in_dim": 2048}),
            store=url,
            annotations=gt,
            out=tmp_path / "dims",
            show_progress=False,
        )
    assert not (tmp_path / "dims" / "checkpoints").exists()

    with pytest.raises(
        EmptySplitError, match="no annotated video is in the training subset 'training'"
    ):
        train(
            tiny_config("basnet", **{"data.train_subset": "training"}),
            store=url,
            annotations=gt,
            out=tmp_path / "empty",
            show_progress=False,
        )

    # Annotated videos the store lacks: counted, refused, or skipped with --allow-missing.
    ds = load_annotations(gt)
    extra = dict(ds.videos)
    for vid in ("video_validation_0000999", "video_test_0009999"):
        subset = "train" if "validation" in vid else "test"
        extra[vid] = ds.videos[next(iter(ds.videos))].model_copy(
            update={"id": vid, "subset": subset}
        )
    more = tmp_path / "more.json"
    write_activitynet_json(ds.model_copy(update={"videos": extra}), more)
    with pytest.raises(MissingVideosError, match="2 of 14 annotated videos are not in the store"):
        train(
            tiny_config("basnet"),
            store=url,
            annotations=more,
            out=tmp_path / "miss",
            show_progress=False,
        )
    ok = train(
        tiny_config("basnet", **{"train.iterations": 2, "train.eval_every": 2}),
        store=url,
        annotations=more,
        out=tmp_path / "miss",
        allow_missing=True,
        show_progress=False,
    )
    assert any("2 of 14" in n for n in ok.notes)

    # A test class that training never sees.
    test_vid = next(v for v in ds.videos.values() if v.subset == "test")
    relabeled = test_vid.model_copy(
        update={"annotations": [Segment(label="Diving", start_s=1.0, end_s=3.0)]}
    )
    odd = tmp_path / "odd.json"
    write_activitynet_json(
        ds.model_copy(update={"videos": {**ds.videos, test_vid.id: relabeled}}), odd
    )
    with pytest.raises(
        ClassMismatchError, match="1 classes of the test split never occur in training: Diving"
    ):
        train(
            tiny_config("basnet"),
            store=url,
            annotations=odd,
            out=tmp_path / "odd",
            show_progress=False,
        )


def test_predict_refuses_annotations_with_another_class_list(tiny, tmp_path: Path) -> None:
    url, gt = tiny
    run = tmp_path / "run"
    train(
        tiny_config("basnet", **{"train.iterations": 2, "train.eval_every": 2}),
        store=url,
        annotations=gt,
        out=run,
        show_progress=False,
    )
    ds = load_annotations(gt)
    fewer = tmp_path / "fewer.json"
    write_activitynet_json(ds.model_copy(update={"classes": ds.classes[:-1]}), fewer)
    with pytest.raises(ClassMismatchError, match="differs from the one the model was trained on"):
        predict_run(run, split="test", annotations=fewer)


def test_cli_trains_predicts_and_reports_bad_input_as_exit_2(
    tiny, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, gt = tiny
    args = [
        "train",
        "--config",
        "basnet_thumos14",
        "--store",
        url,
        "--annotations",
        str(gt),
        "--out",
        str(tmp_path / "cli"),
        "--iterations",
        "4",
        "--eval-every",
        "2",
        "--quiet",
        "--set",
        "model.in_dim=64",
        "--set",
        "model.params.cas_dim=16",
        "--set",
        "model.params.filter_dim=8",
        "--set",
        "data.num_segments=16",
        "--set",
        "data.eval_num_segments=16",
        "--set",
        "data.val_fraction=0.25",
        "--set",
        "data.num_workers=0",
        "--device",
        "cpu",
        "--batch-size",
        "4",
    ]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "average mAP 0.1:0.7" in out and "(baseline" in out
    code, out, err = run_cli(
        capsys, "predict", "--run", str(tmp_path / "cli"), "--split", "val", "--device", "cpu"
    )
    assert code == 0, err
    assert (tmp_path / "cli" / "detections_val.json").is_file()

    bad_args = [str(tmp_path / "bad") if a == str(tmp_path / "cli") else a for a in args]
    code, out, err = run_cli(capsys, *bad_args, "--set", "model.in_dim=1024")
    assert code == 2
    assert "expects model.in_dim=1024 but the store gives 64" in err
    assert "Traceback" not in err and not (tmp_path / "bad" / "checkpoints").exists()
