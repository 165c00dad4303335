"""W-TALC .npy files load without arbitrary pickle: foreign types are refused unexecuted."""

from __future__ import annotations

import io
import os
import pickle
import shutil

import numpy as np
import pytest
from numpy.lib import format as npy_format

from talkit.datasets import UnsafePickleError, load_annotations, load_wtalc_npy
from talkit.errors import AnnotationError

SIDE_EFFECTS: list[str] = []


class Exploit:
    """Unpickling this would call ``os.system`` (writes a marker file)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Recorder:
    """A harmless-looking custom class whose reconstruction has a side effect."""

    def __setstate__(self, state):
        SIDE_EFFECTS.append("setstate")
        self.__dict__.update(state)


def record(tag: str) -> str:
    SIDE_EFFECTS.append(tag)
    return tag


class CallsRecord:
    def __reduce__(self):
        return (record, ("reduce",))


def npy_with_pickle(path, payload: bytes, shape=(1,)) -> None:
    """A .npy file with an object-dtype header followed by ``payload`` as its pickle."""
    header = {"descr": "|O", "fortran_order": False, "shape": shape}
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, header)
    path.write_bytes(buf.getvalue() + payload)


def object_array_pickle(item, protocol: int = 3) -> bytes:
    arr = np.empty(1, dtype=object)
    arr[0] = item
    return pickle.dumps(arr, protocol=protocol)


def test_os_system_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "segments.npy"
    npy_with_pickle(path, object_array_pickle([Exploit(str(marker))]))
    with pytest.raises(UnsafePickleError, match=r"posix\.system|os\.system") as info:
        load_wtalc_npy(path)
    assert not marker.exists()
    assert info.value.exit_code == 2
    assert "segments.npy" in str(info.value)


@pytest.mark.parametrize("item", [Recorder(), CallsRecord(), [1, CallsRecord()]])
def test_custom_classes_are_refused_without_side_effects(tmp_path, item):
    SIDE_EFFECTS.clear()
    path = tmp_path / "labels.npy"
    npy_with_pickle(path, object_array_pickle(item, protocol=2))
    with pytest.raises(UnsafePickleError, match="refused"):
        load_wtalc_npy(path)
    assert SIDE_EFFECTS == []


@pytest.mark.parametrize(
    "target", [b"cbuiltins\neval\n", b"cbuiltins\ngetattr\n", b"cnumpy\nload\n"]
)
def test_dangerous_builtins_and_numpy_functions_are_refused(tmp_path, target):
    # GLOBAL opcode naming the target, then a call on a string: would run if resolved
    payload = b"\x80\x02" + target + b"X\x08\x00\x00\x00print(1)\x85R."
    path = tmp_path / "x.npy"
    npy_with_pickle(path, payload)
    with pytest.raises(UnsafePickleError):
        load_wtalc_npy(path)


def test_genuine_object_arrays_load_like_numpy(tmp_path):
    segments = np.empty(3, dtype=object)
    segments[0] = [[1.5, 2.25], [3.0, 4.0]]
    segments[1] = []
    segments[2] = [np.float64(7.5), np.int64(3), {"fps": 30.0}, (b"raw", "text"), {1, 2}]
    for protocol in (2, 3, 4):
        path = tmp_path / f"segments_{protocol}.npy"
        with path.open("wb") as fh:
            npy_format.write_array_header_1_0(
                fh, {"descr": "|O", "fortran_order": False, "shape": (3,)}
            )
            pickle.dump(segments, fh, protocol=protocol)
        got = load_wtalc_npy(path)
        assert got.dtype == object and got.shape == (3,)
        assert got.tolist() == np.load(path, allow_pickle=True).tolist()
        assert isinstance(got[2][0], np.float64)


def test_plain_arrays_never_touch_pickle(tmp_path):
    for array in (
        np.array([b"video_validation_0000051", b"video_test_0000004"]),
        np.arange(12, dtype=np.float64).reshape(6, 2),
        np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
    ):
        path = tmp_path / "a.npy"
        np.save(path, array)
        got = load_wtalc_npy(path)
        assert got.dtype == array.dtype
        np.testing.assert_array_equal(got, array)


def test_real_wtalc_files_load_identically_to_numpy(real_data):
    for path in sorted((real_data / "thumos14_wtalc").glob("*.npy")):
        ours = load_wtalc_npy(path)
        theirs = np.load(path, allow_pickle=True, encoding="latin1")
        assert ours.shape == theirs.shape, path.name
        assert repr(ours.tolist()) == repr(theirs.tolist()), path.name


def test_truncated_and_garbage_npy_are_annotation_errors(tmp_path, real_data):
    data = (real_data / "thumos14_wtalc/segments.npy").read_bytes()
    cut = tmp_path / "segments.npy"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AnnotationError, match="cannot be read"):
        load_wtalc_npy(cut)
    plain = (real_data / "thumos14_wtalc/duration.npy").read_bytes()
    (tmp_path / "duration.npy").write_bytes(plain[:-16])
    with pytest.raises(AnnotationError, match="truncated"):
        load_wtalc_npy(tmp_path / "duration.npy")
    (tmp_path / "junk.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(AnnotationError, match=r"not a valid \.npy"):
        load_wtalc_npy(tmp_path / "junk.npy")


def test_poisoned_wtalc_directory_is_refused(tmp_path, real_data):
    wtalc = tmp_path / "wtalc"
    shutil.copytree(real_data / "thumos14_wtalc", wtalc)
    marker = tmp_path / "pwned"
    (wtalc / "labels.npy").chmod(0o644)
    npy_with_pickle(wtalc / "labels.npy", object_array_pickle([Exploit(str(marker))]))
    with pytest.raises(UnsafePickleError, match=r"labels\.npy"):
        load_annotations(wtalc)
    assert not marker.exists()
