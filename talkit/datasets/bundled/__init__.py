"""Public ground truths shipped inside the package, addressed as ``bundled:NAME``.

Users of THUMOS14 and ActivityNet 1.2 all start from the same few annotation files, taken
from the authors' repositories of the methods talkit reproduces. Shipping them means that
``talkit train --annotations bundled:thumos14`` works after ``pip install talkit``, and that
the test suite needs nothing outside the repository. The files are byte-for-byte the
published ones (quirks included); each entry records its origin and sha256, and
``talkit datasets bundled`` lists them. HACS Segments (about 40 MB) is not shipped: the
entry for it says where to get it.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from talkit.errors import InputError

PREFIX = "bundled:"


@dataclass(frozen=True)
class BundledAnnotations:
    """One shipped annotation set: where it lives in the package and where it came from."""

    name: str
    relpath: str  # a file or a folder under this package
    format: str
    description: str
    origin: str
    sha256: dict[str, str]  # file name (relative to relpath's folder) -> sha256

    @property
    def path(self) -> Path:
        """The installed file or folder."""
        return _root() / self.relpath


_THUMOS_ORIGIN = "github.com/Pilhyeon/BaSNet-pytorch dataset/THUMOS14/"
_WTALC_ORIGIN = "github.com/naraysa/D2-Net Thumos14reduced-Annotations/"
BUNDLED: dict[str, BundledAnnotations] = {
    b.name: b
    for b in (
        BundledAnnotations(
            "thumos14",
            "thumos14/gt.json",
            "activitynet",
            "THUMOS14 in the ActivityNet JSON layout: 410 videos, 20 classes; subsets "
            "train (200 validation videos) and test (210)",
            _THUMOS_ORIGIN + "gt.json",
            {"gt.json": "09ec867173d8532cd805769497633617f8a95519491c5558edd29a50731116a2"},
        ),
        BundledAnnotations(
            "thumos14_splits",
            "thumos14",
            "id lists",
            "THUMOS14 video-id lists split_train.txt (200) and split_test.txt (210)",
            _THUMOS_ORIGIN + "split_{train,test}.txt",
            {
                "split_train.txt": "5b11e290eb24c93c79f23cb1aecc8b85be4c13b47d7cf3b35e30601c1663f4c0",
                "split_test.txt": "51bad9afadc6545a26833fd1f47b51d0458a05baee5c23ec8f3f8b8693e27f31",
            },
        ),
        BundledAnnotations(
            "thumos14_wtalc",
            "thumos14_wtalc",
            "wtalc",
            "THUMOS14 in the W-TALC .npy layout (D2-Net and successors): 412 videos, "
            "validation 200 / test 212",
            _WTALC_ORIGIN,
            {
                "classlist.npy": "74981a8e967aa4109b341705a851a2406459a57d4c68fbb8c5829f5a6d9eeb81",
                "duration.npy": "c567ebe4277f2d7469b152a88cb1c6990ffba7f1ff205bda5440a6cdd6fcae68",
                "extracted_fps.npy": "644d171582621aadea80e1cb60a344bf2ee25ee1ebfcff32567277aea27d639a",
                "labels.npy": "6c2164c815b4660aebf2d601c8b0eec08516c3c06ed8fdb45bbf7fe2d3a36dfb",
                "labels_all.npy": "84a3d9b625ba77b3dd58581d02af00395b57565ba47ae07094ae339f26ab0abe",
                "original_fps.npy": "2f673d32243c6b045fabebf8c39d0f01141578df1253c798f8fd6ab358fde00c",
                "segments.npy": "35a1f50488b80c3b7861228f56bc3d9e89abc3f628d5e09625e044469cfd5a78",
                "subset.npy": "7311dcb33d3c82353a63092a8a1991b44e8edc688a6a7cd34d7ad8bfdb87d6de",
                "test_gt_meta.npy": "2d92606ea7831f522e969af151b99a1d242d532dc771499808a605b67502854d",
                "test_gt_segments.npy": "f44889d782a5927abc400f5b4692a60143a74d8c2912c4908176025f35b30f34",
                "videoname.npy": "cdd1b327b39d01ac8514d057c31e2b930b850ae7763204bacac2bb2eaf8bb6cc",
                "Ambiguous_test.txt": "0329d864abdd0d2ffc2feb5eed7c0d1ae6e85954860fdec99780e1ecd76c7fb4",
            },
        ),
        BundledAnnotations(
            "thumos14_ambiguous",
            "thumos14_wtalc/Ambiguous_test.txt",
            "ambiguous",
            "THUMOS14 test segments marked Ambiguous (lines: video start end)",
            _WTALC_ORIGIN + "Ambiguous_test.txt",
            {
                "Ambiguous_test.txt": "0329d864abdd0d2ffc2feb5eed7c0d1ae6e85954860fdec99780e1ecd76c7fb4"
            },
        ),
        BundledAnnotations(
            "activitynet12",
            "activitynet12/gt.json",
            "activitynet",
            "ActivityNet 1.2 validation ground truth (official layout): 2383 videos, "
            "100 classes, subset test",
            "github.com/bfshi/DGAM-Weakly-Supervised-Action-Localization eval/gt_anet12.json",
            {"gt.json": "fd6bcad57e34b70b6f723b81776e69fbaad4cc54c819b8f091753baf122b864f"},
        ),
    )
}
NOT_BUNDLED = {
    "hacs": "HACS Segments v1.1.1 is not shipped (about 40 MB): download "
    "HACS_segments_v1.1.1.json from github.com/hangzhaomit/HACS-dataset and pass its path",
}


def _root() -> Path:
    root = resources.files(__name__)
    if not isinstance(root, Path):  # a zipped install; talkit is always installed unzipped
        raise InputError(
            "talkit's bundled annotations are not on the file system (zipped install?)",
            hint="install talkit with pip from its wheel or source",
        )
    return root


def get(name: str) -> BundledAnnotations:
    """The entry called ``name`` (with or without the ``bundled:`` prefix)."""
    key = name.removeprefix(PREFIX)
    if key in BUNDLED:
        return BUNDLED[key]
    hint = NOT_BUNDLED.get(key) or f"bundled: {', '.join(BUNDLED)} (`talkit datasets bundled`)"
    raise InputError(f"no bundled annotations called {key!r}", hint=hint)


def resolve(path: str | Path) -> Path:
    """``bundled:NAME`` becomes the installed file; any other path is returned as it is."""
    text = str(path)
    return get(text).path if text.startswith(PREFIX) else Path(path)


def verify(name: str) -> list[str]:
    """Files of the entry whose bytes differ from the recorded sha256 (empty: all intact)."""
    entry = get(name)
    folder = entry.path if entry.path.is_dir() else entry.path.parent
    return [
        f
        for f, digest in entry.sha256.items()
        if hashlib.sha256((folder / f).read_bytes()).hexdigest() != digest
    ]


def copy_to(name: str, out_dir: str | Path) -> list[Path]:
    """Copy the entry's files into ``out_dir`` (created); returns the written paths."""
    entry = get(name)
    folder = entry.path if entry.path.is_dir() else entry.path.parent
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in entry.sha256:
        shutil.copyfile(folder / f, out / f)
        written.append(out / f)
    return written
