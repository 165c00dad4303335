"""Bounded memory: streaming a 10-minute 1280x720 video through the sampler.

Peak RSS is measured in a fresh subprocess per video, as the kernel's high-water mark of
that process's own address space (VmHWM). Not ru_maxrss: Linux carries the parent's peak
into a child's ru_maxrss across fork/vfork + exec, so a large pytest process would count. The videos are built once per session by
repeating an encoded 2 s segment (video_helpers.make_long_video): real 720p H.264 that
every frame of must be decoded, but cheap to write.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from video_helpers import make_long_video

SCRIPT = r"""
import json, sys
from talkit.extractors import SnippetSpec, iter_snippet_batches
stream = iter_snippet_batches(sys.argv[1], SnippetSpec(25, 16, 16), batch_size=4)
snippets = 0
for batch in stream:
    assert batch.frames.shape[1:] == (16, 720, 1280, 3)
    snippets += len(batch)
with open("/proc/self/status") as status:
    hwm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
rss_mb = hwm_kb / 1024
print(json.dumps({"snippets": snippets, "frames": stream.num_frames, "peak_rss_mb": rss_mb}))
"""


@pytest.fixture(scope="session")
def long_720p(tmp_path_factory):
    root = tmp_path_factory.mktemp("long720p")
    return {
        minutes: make_long_video(root / f"{minutes}min.mp4", seconds=60 * minutes, size=(1280, 720))
        for minutes in (2, 10)
    }


def _peak(path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=500,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_peak_rss_is_bounded_and_does_not_grow_with_length(long_720p):
    short, long = _peak(long_720p[2]), _peak(long_720p[10])
    assert short["frames"] == 2 * 60 * 25 and long["frames"] == 10 * 60 * 25
    assert long["snippets"] == (15000 - 16) // 16 + 1
    assert long["peak_rss_mb"] < 1500, long
    # Five times the video, the same memory (within 10% + 50 MB of allocator noise).
    assert long["peak_rss_mb"] <= 1.10 * short["peak_rss_mb"] + 50, (short, long)
