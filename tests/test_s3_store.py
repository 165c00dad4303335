"""Feature stores on S3-compatible storage (moto's server): the same results as on disk.

Every store command and the Python API run against ``s3://`` URLs with talkit reading
only the standard AWS environment, and give what the same operations give on a local
store, bit for bit. Errors (missing bucket, unreachable endpoint, no credentials) are
one line with a hint and exit 2.
"""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import run_cli

from talkit.store import FeatureStore, StoreError
from tests.store_helpers import (
    DS,
    FS,
    KEY,
    features,
    fork_worker,
    independent_writer,
    make_store,
    spec,
)


def _npy_dir(root: Path, videos: dict[str, int], seed0: int) -> Path:
    """A per-stream .npy folder (the BaSNet layout) of seeded features."""
    for i, (vid, t) in enumerate(videos.items()):
        for stream, array in features(seed0 + i, t).items():
            (root / stream).mkdir(parents=True, exist_ok=True)
            np.save(root / stream / f"{vid}.npy", array)
    return root


def _contents(url: str, version: str | None = None) -> dict[str, Any]:
    """Everything a reader sees of every feature set: spec, arrays (bytes), attrs."""
    store = FeatureStore.open(url, version=version)
    out: dict[str, Any] = {}
    for key in store.feature_sets():
        fs = store.feature_set(key)
        out[key] = {"spec": fs.spec.to_attrs()}
        for vid in fs.videos():
            video = fs.video(vid)
            # written_at, and the digest that covers it, differ between any two writes.
            attrs = {
                k: v for k, v in video.attrs.items() if k not in ("written_at", "attrs_sha256")
            }
            arrays = {name: video.stream(name).read() for name in fs.spec.streams}
            out[key][vid] = {
                "attrs": attrs,
                "timestamps": video.timestamps.tobytes(),
                **{n: (a.dtype.str, a.shape, a.tobytes()) for n, a in arrays.items()},
            }
    return out


def _log(capsys: pytest.CaptureFixture[str], url: str) -> list[dict[str, Any]]:
    code, out, err = run_cli(capsys, "store", "log", url, "--json")
    assert code == 0, err
    return [
        {"message": c["message"], "metadata": c["metadata"], "tags": c["tags"]}
        for c in json.loads(out)
    ]


def _store_session(capsys: pytest.CaptureFixture[str], target: str, tmp: Path) -> dict[str, Any]:
    """The same sequence of store commands on ``target``; what each one printed or made."""
    first = _npy_dir(tmp / "first", {"video_a": 37, "video_b": 300, "video_c": 5}, 0)
    second = _npy_dir(tmp / "second", {"video_b": 41, "video_d": 12}, 10)
    common = ["-d", DS, "-f", FS, "--format", "npy-dir", "--chunk-t", "64"]
    results: dict[str, Any] = {}
    code, _, err = run_cli(capsys, "store", "import", str(first), target, *common, "-m", "first")
    assert code == 0, err
    code, out, err = run_cli(capsys, "store", "tag", target, "v1")
    assert code == 0 and "v1" in out, err
    code, _, err = run_cli(
        capsys, "store", "import", str(second), target, *common, "--overwrite", "-m", "second"
    )
    assert code == 0, err
    results["log"] = _log(capsys, target)
    code, out, err = run_cli(capsys, "store", "diff", target, "v1", "main", "--json")
    assert code == 0, err
    results["diff"] = json.loads(out)
    code, out, err = run_cli(capsys, "store", "info", target, "--json")
    assert code == 0, err
    results["info"] = json.loads(out)
    code, out, err = run_cli(capsys, "store", "info", target)  # the table, too
    assert code == 0 and "video" in out, err
    export = tmp / "export"
    code, _, err = run_cli(capsys, "store", "export", target, str(export), "--format", "npy")
    assert code == 0, err
    results["export"] = {
        str(p.relative_to(export)): p.read_bytes() for p in sorted(export.rglob("*")) if p.is_file()
    }
    results["contents"] = _contents(target)
    results["contents_v1"] = _contents(target, "v1")
    return results


@pytest.mark.slow
def test_every_store_command_on_s3_gives_what_it_gives_on_disk(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = _store_session(capsys, str(tmp_path / "local.store"), tmp_path / "l")
    url = s3.url("stores/feats")
    remote = _store_session(capsys, url, tmp_path / "r")

    assert remote["contents"] == local["contents"]  # arrays bit for bit, attrs, specs
    assert remote["contents_v1"] == local["contents_v1"]  # time travel to a tag
    assert sorted(local["contents"][KEY]) == ["spec", "video_a", "video_b", "video_c", "video_d"]
    for entry in (remote, local):  # the import sources' paths differ; nothing else does
        for commit in entry["log"]:
            commit["metadata"].get("import", {}).pop("source", None)
    assert remote["log"] == local["log"]
    assert [c["message"] for c in remote["log"]][:2] == ["second", "first"]
    assert remote["log"][1]["tags"] == ["v1"]
    assert remote["diff"] == local["diff"]
    assert remote["diff"]["feature_sets"][KEY]["videos_changed"] == ["video_b"]
    assert remote["export"] == local["export"]
    info_r, info_l = remote["info"], local["info"]
    assert info_r["url"] == url and info_r["bytes_on_disk"] > 0
    for key in ("url", "snapshot_id", "bytes_on_disk"):
        info_r.pop(key), info_l.pop(key)
    assert info_r == info_l
    # Every object of the store is under its prefix; nothing was spread elsewhere.
    assert s3.keys() == s3.keys("stores/feats/")

    # A store-to-store copy, from the S3 store into another one on S3.
    copy = s3.url("stores/copy")
    code, _, err = run_cli(
        capsys, "store", "import", url, copy, "-d", DS, "-f", "copy", "--format", "zarr"
    )
    assert code == 0, err
    copied = _contents(copy)[f"{DS}/copy"]
    original = remote["contents"][KEY]
    assert {k: v for k, v in copied.items() if k != "spec"} == {
        k: v for k, v in original.items() if k != "spec"
    }


def test_python_api_reads_crops_versions_and_cache_from_s3(s3: Any) -> None:
    from talkit.store import fastread

    url = s3.url("api")
    store = FeatureStore.create(url)
    store.create_feature_set(DS, FS, spec())
    with store.writer(message="two videos") as w:
        for i, (vid, t) in enumerate({"a": 300, "b": 20}.items()):
            w.write_video(DS, FS, vid, streams=features(i, t))
    store.tag("before")
    with store.writer(message="replace b") as w:
        w.write_video(DS, FS, "b", streams=features(9, 25), overwrite=True)

    cached = FeatureStore.open(url, cache_bytes=1 << 20)
    expected = features(0, 300)
    joint = np.concatenate([expected["rgb"][17:250], expected["flow"][17:250]], axis=1)
    for _ in range(2):  # the second pass is served by the chunk cache
        crop = cached.video(KEY, "a").features(start=17, stop=250)
        assert crop.tobytes() == joint.tobytes()
    stats = cached.cache_stats()
    assert stats is not None and stats.hits > 0
    fastread.ENABLED = False  # zarr's own read path gives the same bytes
    try:
        slow = FeatureStore.open(url).video(KEY, "a").features(start=17, stop=250)
    finally:
        fastread.ENABLED = True
    assert slow.tobytes() == joint.tobytes()

    old = FeatureStore.open(url, version="before").video(KEY, "b").stream("rgb").read()
    np.testing.assert_array_equal(old, features(1, 20)["rgb"])
    new = FeatureStore.open(url).video(KEY, "b").stream("rgb").read()
    np.testing.assert_array_equal(new, features(9, 25)["rgb"])
    with pytest.raises(StoreError, match="already exists"):
        FeatureStore.create(url)
    assert FeatureStore.create(url, exist_ok=True).snapshot_id == FeatureStore.open(url).snapshot_id


@pytest.mark.slow
def test_forked_writers_and_concurrent_committers_on_s3_lose_nothing(s3: Any) -> None:
    url = s3.url("shared")
    store = make_store(url, {"existing": 10})
    ctx = mp.get_context("spawn")
    ids = [f"video_{i:02d}" for i in range(12)]
    # Forks: two processes write into one transaction, merged into one commit.
    with store.writer(message="forked") as w:
        forks = [w.fork(), w.fork()]
        with ctx.Pool(2) as pool:
            done = pool.starmap(
                fork_worker, [(forks[k], ids[k:6:2], list(range(k, 6, 2))) for k in (0, 1)]
            )
        w.merge(*done)
    # Independent writers: two processes commit at the same time; icechunk's conditional
    # ref update makes one rebase onto the other.
    procs = [
        ctx.Process(
            target=independent_writer, args=(url, ids[6 + k :: 2], list(range(6 + k, 12, 2)))
        )
        for k in (0, 1)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    reopened = FeatureStore.open(url)
    log = reopened.log()
    assert [c.message for c in log[:4]] == [
        *["worker writes 3 videos"] * 2,
        "forked",
        "initial videos",
    ]
    assert log[0].parent_id == log[1].id and log[1].parent_id == log[2].id
    fs = reopened.feature_set(DS, FS)
    assert fs.videos() == sorted([*ids, "existing"])
    for i, vid in enumerate(ids):
        np.testing.assert_array_equal(
            fs.video(vid).stream("flow")[:], features(i, 30 + i % 7)["flow"]
        )


def test_two_writers_of_the_same_video_on_s3_conflict_instead_of_overwriting(s3: Any) -> None:
    from talkit.store.errors import CommitConflictError

    url = s3.url("same")
    make_store(url, {"existing": 10})
    a, b = FeatureStore.open(url, mode="a"), FeatureStore.open(url, mode="a")
    wa, wb = a.writer(message="a"), b.writer(message="b")
    wa.write_video(DS, FS, "clash", streams=features(1, 12))
    wb.write_video(DS, FS, "clash", streams=features(2, 12))
    wa.commit()
    with pytest.raises(CommitConflictError, match="conflicts with a concurrent writer"):
        wb.commit()
    stored = FeatureStore.open(url).video(KEY, "clash").stream("rgb").read()
    np.testing.assert_array_equal(stored, features(1, 12)["rgb"])  # the first one stands


def _one_line_error(code: int, err: str, *needles: str) -> None:
    text = " ".join(err.split())
    assert code == 2, err
    assert text.startswith("error:") and "Traceback" not in err and "icechunk::" not in err, err
    for needle in needles:
        assert needle in text, (needle, err)


@pytest.mark.slow
def test_s3_errors_are_one_line_with_a_hint(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_store(s3.url("feats"), {"a": 10})
    code, _, err = run_cli(capsys, "store", "info", "s3://no-such-bucket-here/feats")
    _one_line_error(code, err, "bucket 'no-such-bucket-here' does not exist", "create the bucket")
    code, _, err = run_cli(capsys, "store", "log", s3.url("nothing-here"))
    _one_line_error(code, err, "no talkit store at", "check the URL")
    code, _, err = run_cli(
        capsys, "store", "export", s3.url("feats"), s3.url("out"), "--format", "npy"
    )
    _one_line_error(code, err, "not a local path", "talkit store import")
    code, _, err = run_cli(
        capsys, "store", "import", s3.url("npy"), str(tmp_path / "x"), "-d", DS, "-f", FS,
        "--format", "npy-dir",
    )  # fmt: skip
    _one_line_error(code, err, "reads local files")
    with pytest.raises(StoreError, match="plain zarr stores must be local"):
        FeatureStore.create(s3.url("plain"), engine="zarr")
    s3.put("taken/file.txt", b"not a store")
    with pytest.raises(StoreError, match="clean prefixes"):
        FeatureStore.create(s3.url("taken"))
    with pytest.raises(StoreError, match="root of a bucket"):
        FeatureStore.create(s3.url(""))

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, _, err = run_cli(capsys, "store", "info", s3.url("feats"))
    _one_line_error(code, err, "no AWS credentials", "AWS_ACCESS_KEY_ID", "AWS_PROFILE")

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: refused
    code, _, err = run_cli(capsys, "store", "log", s3.url("feats"))
    _one_line_error(
        code, err, "cannot reach the object store at http://127.0.0.1:9", "AWS_ENDPOINT_URL"
    )

    monkeypatch.setenv("AWS_PROFILE", "nobody")
    code, _, err = run_cli(capsys, "store", "log", s3.url("feats"))
    _one_line_error(code, err, "AWS profile 'nobody'", "~/.aws/config")


def test_endpoint_region_and_credentials_can_come_from_a_profile(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from s3_helpers import ACCESS_KEY, SECRET_KEY

    home = Path(os.environ["AWS_CONFIG_FILE"]).parent
    (home / "config").write_text(
        f"[profile lab]\nregion = eu-west-1\nservices = lab-s3\n\n"
        f"[services lab-s3]\ns3 =\n  endpoint_url = {s3.endpoint}\n"
    )
    (home / "credentials").write_text(
        f"[lab]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_PROFILE", "lab")
    url = s3.url("profiled")
    make_store(url, {"a": 12})
    code, out, err = run_cli(capsys, "store", "info", url, "--json")
    assert code == 0, err
    assert json.loads(out)["feature_sets"][KEY]["videos"] == 1

    from talkit import s3 as talkit_s3

    cfg = talkit_s3.resolve_config()
    assert (cfg.endpoint_url, cfg.region, cfg.addressing_style) == (
        s3.endpoint,
        "eu-west-1",
        "path",
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # env beats the profile
    assert talkit_s3.resolve_config().endpoint_url == "http://127.0.0.1:9"


def test_a_failed_import_into_a_new_s3_store_leaves_nothing(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _npy_dir(tmp_path / "bad", {"video_a": 10}, 0)
    np.save(src / "rgb" / "video_b.npy", np.full((10, 8), np.nan, np.float32))
    np.save(src / "flow" / "video_b.npy", np.zeros((10, 6), np.float32))
    url = s3.url("never")
    code, _, err = run_cli(
        capsys, "store", "import", str(src), url, "-d", DS, "-f", FS, "--format", "npy-dir"
    )
    assert code == 2 and "video_b" in err, err
    assert s3.keys("never/") == []
    assert not FeatureStore.exists(url)
