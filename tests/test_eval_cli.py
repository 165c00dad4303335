"""`talkit eval` end to end: reports, complaints about bad input, plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_cli

from talkit.wtal_heads.evaluation.detections import DetectionSet, read_detections, write_detections

GT_DOC = {
    "database": {
        "video_test_0000001": {
            "subset": "test",
            "annotations": [
                {"segment": ["1.0", "5.0"], "label": "HighJump"},
                {"segment": ["10.0", "14.0"], "label": "HighJump"},
            ],
        },
        "video_test_0000002": {
            "subset": "test",
            "annotations": [{"segment": ["2.0", "6.0"], "label": "Diving"}],
        },
        "video_validation_0000001": {
            "subset": "train",
            "annotations": [{"segment": ["0.0", "3.0"], "label": "Diving"}],
        },
    }
}


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def gt_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "gt.json", GT_DOC)


def _results(**extra: list[dict[str, Any]]) -> dict[str, Any]:
    results = {
        "video_test_0000001": [
            {"label": "HighJump", "score": 0.9, "segment": [1.0, 5.0]},
            {"label": "HighJump", "score": 0.8, "segment": [10.0, 14.0]},
        ],
        "video_test_0000002": [{"label": "Diving", "score": 0.7, "segment": [2.0, 6.0]}],
    }
    results.update(extra)
    return {"version": "VERSION 1.3", "results": results}


@pytest.fixture
def dets(tmp_path: Path) -> Path:
    """Detections that match the GT of subset 'test' exactly."""
    return _write(tmp_path / "dets.json", _results())


def run_eval(
    capsys: pytest.CaptureFixture[str], dets: Path, gt: Path, *args: str
) -> tuple[int, str, str]:
    """``talkit eval DETS --gt GT ARGS...`` in-process: (exit code, stdout, stderr)."""
    return run_cli(capsys, "eval", str(dets), "--gt", str(gt), *args)


def refused(capsys: pytest.CaptureFixture[str], dets: Path, gt: Path) -> str:
    """stderr of ``talkit eval DETS --gt GT --subset test``, which must refuse (exit 2)."""
    code, _, err = run_eval(capsys, dets, gt, "--subset", "test")
    assert code == 2, err
    return err


def test_eval_json_report_records_gt_counts_and_options(
    tmp_path: Path, gt_file: Path, dets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    code, stdout, _ = run_eval(
        capsys, dets, gt_file, "--subset", "test", "--json", "--out", str(out)
    )
    assert code == 0
    report = json.loads(stdout)
    assert report == json.loads(out.read_text())
    assert report["gt"]["file"] == str(gt_file)
    assert report["gt"]["subset"] == "test"
    assert (report["gt"]["videos"], report["gt"]["instances"], report["gt"]["classes"]) == (2, 3, 2)
    assert report["options"]["threshold_preset"] == "thumos14"
    assert report["options"]["ambiguous_file"] is None
    assert "tie_rule" in report["options"]
    assert set(report["mAP"].values()) == {1.0}
    assert report["average_mAP"] == {"0.1:0.7": 1.0, "0.1:0.5": 1.0, "0.1:0.9": 1.0}
    assert report["per_class"]["HighJump"]["npos"] == 2
    assert report["detections"] == {"file": str(dets), "predictions": 3, "videos": 2}


def test_eval_table_and_activitynet_preset(
    gt_file: Path, dets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, _ = run_eval(capsys, dets, gt_file, "--subset", "test", "--preset", "activitynet")
    assert code == 0
    assert "HighJump" in stdout and "0.95" in stdout
    assert "average mAP 0.5:0.95: 100.00" in stdout


def test_eval_needs_a_subset_when_the_gt_has_several(
    gt_file: Path, dets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_eval(capsys, dets, gt_file)
    assert code == 2
    assert "several subsets" in err and "--subset" in err
    code, _, err = run_eval(capsys, dets, gt_file, "--subset", "nope")
    assert code == 2 and "no video in subset 'nope'" in err


def test_eval_refuses_malformed_entries_with_their_location(
    tmp_path: Path, gt_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _results(
        video_test_0000003=[
            {"label": "HighJump", "score": "high", "segment": [1, 2]},
            {"label": "HighJump", "score": 0.5, "segment": [5, 2]},
            {"label": "HighJump", "score": 0.5},
        ]
    )
    err = refused(capsys, _write(tmp_path / "bad.json", bad), gt_file)
    assert "3 malformed detection entries" in err
    assert 'results["video_test_0000003"][0]' in err and "score" in err
    assert "ends before it starts" in err and "missing 'segment'" in err
    not_json = tmp_path / "x.json"
    not_json.write_text("{oops")
    assert "not valid JSON" in refused(capsys, not_json, gt_file)
    assert '"results"' in refused(capsys, _write(tmp_path / "y.json", {"res": {}}), gt_file)


def test_eval_refuses_labels_unknown_to_the_gt(
    tmp_path: Path, gt_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dets = _write(
        tmp_path / "dets.json",
        _results(video_test_0000002=[{"label": "diving", "score": 0.7, "segment": [2.0, 6.0]}]),
    )
    err = refused(capsys, dets, gt_file)
    assert "'diving'" in err and "did you mean 'Diving'" in err


def test_eval_counts_and_reports_videos_outside_the_subset(
    tmp_path: Path, gt_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = [{"label": "Diving", "score": 0.95, "segment": [0.0, 3.0]}]
    dets = _write(tmp_path / "dets.json", _results(video_validation_0000001=extra))
    base = ["--subset", "test", "--json"]
    code, stdout, err = run_eval(capsys, dets, gt_file, *base)
    assert code == 0
    report = json.loads(stdout)
    assert report["accounting"]["videos_not_in_gt"] == {
        "videos": 1,
        "predictions": 1,
        "examples": ["video_validation_0000001"],
        "handling": "fp",
    }
    assert "not in subset 'test'" in err and "false positives" in err
    # As a false positive ranked first it halves Diving's AP: P=0, 1/2; R=0, 1 -> 0.5.
    assert report["per_class"]["Diving"]["AP"]["0.5"] == 0.5
    code, stdout, _ = run_eval(capsys, dets, gt_file, *base, "--unknown-videos", "drop")
    assert code == 0 and json.loads(stdout)["per_class"]["Diving"]["AP"]["0.5"] == 1.0
    code, _, err = run_eval(capsys, dets, gt_file, *base, "--unknown-videos", "error")
    assert code == 2 and "video_validation_0000001" in err


def test_eval_exclusions_and_ambiguous_file(
    tmp_path: Path, gt_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    amb = tmp_path / "Ambiguous_test.txt"
    amb.write_text("video_test_0000001  20.0 25.0\n")
    extra = [{"label": "HighJump", "score": 0.99, "segment": [21.0, 24.0]}]
    dets = _write(
        tmp_path / "dets.json",
        _results(video_test_0000001=[*_results()["results"]["video_test_0000001"], *extra]),
    )
    args = ["--subset", "test", "--json", "--ambiguous", str(amb)]
    code, stdout, _ = run_eval(
        capsys, dets, gt_file, *args, "--exclude-videos", "video_test_0000002"
    )
    assert code == 0
    report = json.loads(stdout)
    assert report["accounting"]["ambiguous"] == {"intervals": 1, "predictions_dropped": 1}
    assert report["options"]["ambiguous_file"] == str(amb)
    assert report["options"]["exclude_videos"] == ["video_test_0000002"]
    assert report["gt"]["videos"] == 1 and report["gt"]["instances"] == 2
    assert report["average_mAP"]["0.1:0.7"] == 1.0


@pytest.mark.slow
def test_eval_writes_plots(
    tmp_path: Path, gt_file: Path, dets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plots = tmp_path / "plots"
    code, _, err = run_eval(capsys, dets, gt_file, "--subset", "test", "--plots", str(plots))
    assert code == 0
    files = sorted(p.relative_to(plots).as_posix() for p in plots.rglob("*.png"))
    assert files == [
        "map_by_threshold.png",
        "pr/Diving.png",
        "pr/HighJump.png",
        "timelines/video_test_0000001.png",
        "timelines/video_test_0000002.png",
    ]
    for f in plots.rglob("*.png"):
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote 5 plots" in err


def test_detections_round_trip(tmp_path: Path) -> None:
    src = DetectionSet.from_results(_results()["results"])
    path = write_detections(
        tmp_path / "d.json", src, external_data={"used": True, "details": "test"}
    )
    back = read_detections(path)
    assert back.to_results() == src.to_results()
    assert json.loads(path.read_text())["version"] == "VERSION 1.3"
    assert back.for_video("video_test_0000001")[0]["score"] == 0.9
    # Numeric strings are accepted as the reference's float() does.
    assert (
        DetectionSet.from_results(
            {"v": [{"label": "a", "score": "0.5", "segment": ["1", "2"]}]}
        ).score[0]
        == 0.5
    )


def test_eval_custom_thresholds(
    gt_file: Path, dets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--subset", "test", "--json"]
    code, stdout, _ = run_eval(capsys, dets, gt_file, *base, "--thresholds", "0.3,0.5")
    assert code == 0
    report = json.loads(stdout)
    assert report["thresholds"] == [0.3, 0.5]
    assert report["options"]["threshold_preset"] is None
    assert report["average_mAP"] == {"0.3:0.5": 1.0}
    code, _, err = run_eval(capsys, dets, gt_file, *base, "--thresholds", "0.5,abc")
    assert code == 2 and "--thresholds" in err
    code, _, err = run_eval(capsys, dets, gt_file, *base, "--thresholds", "0,0.5")
    assert code == 2 and "(0, 1]" in err


def test_eval_refuses_deeply_nested_detections(capsys, tmp_path: Path, gt_file: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"results": ' + "[" * 100_000 + "]" * 100_000 + "}")
    err = refused(capsys, deep, gt_file)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "nested too deeply" in lines[0]


def _gt_as_results(gt: Path, subset: str) -> dict[str, Any]:
    doc = json.loads(gt.read_text())
    return {
        "results": {
            vid: [
                {"label": a["label"], "segment": a["segment"], "score": 0.9}
                for a in v["annotations"]
            ]
            for vid, v in doc["database"].items()
            if v["subset"] == subset
        }
    }


def test_eval_auto_scores_synthetic_gt_as_the_demo_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The synthetic generator writes THUMOS14-style GT (3 classes, named 'synthetic'); the
    demo trains with lgbm_thumos14 and reports THUMOS14 thresholds; `--preset auto` must
    score the same way without being told."""
    from talkit.datasets import load_annotations
    from talkit.datasets.synthetic.videos import generate_videos
    from talkit.wtal_heads.config import load_config

    generate_videos(tmp_path, num_videos=4, size=(64, 48), duration_s=(2.0, 3.0), classes=3)
    gt = tmp_path / "annotations" / "gt.json"
    assert json.loads(gt.read_text())["talkit"]["eval_preset"] == "thumos14"
    ds = load_annotations(gt)
    assert ds.name == "synthetic" and len(ds.classes) == 3 and ds.eval_preset == "thumos14"
    dets = _write(tmp_path / "dets.json", _gt_as_results(gt, "test"))
    code, out, err = run_eval(capsys, dets, gt, "--subset", "test", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["options"]["threshold_preset"] == load_config("lgbm_thumos14").eval.thresholds
    assert list(report["mAP"]) == [f"0.{i}" for i in range(1, 10)]

    # a gt.json written before the marker existed: THUMOS14 video ids say the same
    doc = json.loads(gt.read_text())
    del doc["talkit"]["eval_preset"]
    old = _write(tmp_path / "old_gt.json", doc)
    code, out, err = run_eval(capsys, dets, old, "--subset", "test", "--json")
    assert code == 0, err
    assert json.loads(out)["options"]["threshold_preset"] == "thumos14"


def test_eval_auto_keeps_activitynet_thresholds_for_other_gt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = _write(
        tmp_path / "gt.json",
        {
            "database": {
                "abc123": {
                    "subset": "validation",
                    "annotations": [{"label": "Run", "segment": [1, 4]}],
                }
            }
        },
    )
    dets = _write(tmp_path / "dets.json", _gt_as_results(gt, "validation"))
    code, out, err = run_eval(capsys, dets, gt, "--json")
    assert code == 0, err
    assert json.loads(out)["options"]["threshold_preset"] == "activitynet"


def test_eval_subset_hint_names_the_subsets_and_the_detections_subset(
    gt_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dets_in_train = _write(
        tmp_path / "train_dets.json",
        {
            "results": {
                "video_validation_0000001": [{"label": "Diving", "score": 0.5, "segment": [0, 3]}]
            }
        },
    )
    code, _, err = run_eval(capsys, dets_in_train, gt_file)
    assert code == 2
    line = " ".join(err.split())
    assert "several subsets: test (2 videos), train (1 videos)" in line
    assert "e.g. --subset train" in line
    code, _, err = run_eval(capsys, _write(tmp_path / "none.json", {"results": {}}), gt_file)
    assert code == 2 and "e.g. --subset test" in " ".join(err.split())
