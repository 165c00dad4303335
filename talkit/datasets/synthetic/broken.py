"""Deliberately broken video files, for reliability tests of decoders and pipelines.

Why: real collections always contain a few files that were cut off by a failed download,
overwritten, empty, audio-only or misnamed. Each kind here is generated from a
frame-index signature video (talkit.datasets.synthetic.signature), so a test can check
not only that the damage is detected but also that the decodable prefix is the right one.

Kinds (name -> what the file is):
- ``truncated``: an MP4 with its index (moov) at the front, cut after 45% of its frames'
  data. The container still claims every frame; decoders stop early.
- ``no_moov``: an MP4 with its index at the end, cut before the index. Nothing is
  decodable; FFmpeg says "moov atom not found".
- ``garbage_middle``: an MP4 whose middle 20% of frame data is overwritten with random
  bytes. Container and index are intact; frames in the middle fail to decode.
- ``zero_bytes``: an empty file named ``.mp4``.
- ``audio_only``: an MP4 with one AAC audio stream and no video stream.
- ``single_frame``: a valid H.264 MP4 with exactly one frame (index 0). Not broken, but
  shorter than any snippet: sampling must return zero snippets cleanly.
- ``lying_extension``: a valid VP9 video in a Matroska/WebM container named ``.mp4``.
  Readers must go by content, not by extension: it decodes fully, and a probe reports
  the real container (``matroska,webm``).
"""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np

from talkit.datasets.synthetic.signature import write_signature_video

BROKEN_KINDS = (
    "truncated",
    "no_moov",
    "garbage_middle",
    "zero_bytes",
    "audio_only",
    "single_frame",
    "lying_extension",
)
BASE_FRAMES = 100  # frames in the source video each damaged kind starts from
BASE_FPS = 25


def _boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """Top-level MP4 boxes as (type, offset, size)."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        elif size == 0:
            size = len(data) - pos
        out.append((kind, pos, size))
        pos += size
    return out


def _mdat_span(data: bytes) -> tuple[int, int]:
    for kind, off, size in _boxes(data):
        if kind == b"mdat":
            return off + 8, off + size
    raise RuntimeError("generated MP4 has no mdat box; cannot damage it")


def _write_audio_only(path: Path, seconds: float = 2.0, rate: int = 44100) -> None:
    container = av.open(str(path), mode="w", format="mp4")
    try:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        t = np.arange(int(seconds * rate)) / rate
        tone = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        step = 1024
        for start in range(0, tone.size, step):
            chunk = tone[start : start + step][None, :]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()


def _faststart_signature(path: Path, *, seed: int) -> None:
    """A signature MP4 with the moov box moved to the front (moov, then mdat)."""
    tmp = path.with_suffix(".tmp.mp4")
    write_signature_video(tmp, num_frames=BASE_FRAMES, fps=BASE_FPS, seed=seed)
    data = tmp.read_bytes()
    tmp.unlink()
    boxes = {kind: (off, size) for kind, off, size in _boxes(data)}
    if b"moov" not in boxes or b"mdat" not in boxes:
        raise RuntimeError("generated MP4 lacks moov or mdat; cannot rearrange it")
    moov_off, moov_size = boxes[b"moov"]
    mdat_off, _ = boxes[b"mdat"]
    if moov_off < mdat_off:
        path.write_bytes(data)
        return
    # Moving moov before mdat shifts every chunk by moov_size: patch the chunk offsets.
    moov = bytearray(data[moov_off : moov_off + moov_size])
    _shift_chunk_offsets(moov, moov_size)
    head = data[:mdat_off]
    path.write_bytes(head + bytes(moov) + data[mdat_off:moov_off])


def _shift_chunk_offsets(moov: bytearray, delta: int) -> None:
    """Add ``delta`` to every entry of every stco/co64 box inside ``moov`` (in place)."""
    containers = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}

    def walk(start: int, end: int) -> None:
        pos = start
        while pos + 8 <= end:
            size, kind = struct.unpack(">I4s", moov[pos : pos + 8])
            if size < 8:
                return
            if kind in containers:
                walk(pos + 8, pos + size)
            elif kind == b"stco":
                count = struct.unpack(">I", moov[pos + 12 : pos + 16])[0]
                for k in range(count):
                    at = pos + 16 + 4 * k
                    (value,) = struct.unpack(">I", moov[at : at + 4])
                    moov[at : at + 4] = struct.pack(">I", value + delta)
            elif kind == b"co64":
                count = struct.unpack(">I", moov[pos + 12 : pos + 16])[0]
                for k in range(count):
                    at = pos + 16 + 8 * k
                    (value,) = struct.unpack(">Q", moov[at : at + 8])
                    moov[at : at + 8] = struct.pack(">Q", value + delta)
            pos += size

    walk(8, len(moov))


def make_broken_videos(out_dir: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """Write one file of every broken kind into ``out_dir``; return {kind: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths: dict[str, Path] = {}

    # truncated: index up front, frame data cut after 45% of it.
    p = out / "truncated.mp4"
    _faststart_signature(p, seed=seed)
    data = p.read_bytes()
    start, end = _mdat_span(data)
    p.write_bytes(data[: start + int(0.45 * (end - start))])
    paths["truncated"] = p

    # no_moov: index at the end (the writer's default), cut before it.
    p = out / "no_moov.mp4"
    write_signature_video(p, num_frames=BASE_FRAMES, fps=BASE_FPS, seed=seed)
    data = p.read_bytes()
    start, end = _mdat_span(data)
    p.write_bytes(data[: start + int(0.8 * (end - start))])
    paths["no_moov"] = p

    # garbage_middle: random bytes over the middle 20% of the frame data.
    p = out / "garbage_middle.mp4"
    _faststart_signature(p, seed=seed)
    data = bytearray(p.read_bytes())
    start, end = _mdat_span(bytes(data))
    a, b = start + int(0.4 * (end - start)), start + int(0.6 * (end - start))
    data[a:b] = rng.integers(0, 256, size=b - a, dtype=np.uint8).tobytes()
    p.write_bytes(bytes(data))
    paths["garbage_middle"] = p

    p = out / "zero_bytes.mp4"
    p.write_bytes(b"")
    paths["zero_bytes"] = p

    p = out / "audio_only.mp4"
    _write_audio_only(p)
    paths["audio_only"] = p

    p = out / "single_frame.mp4"
    write_signature_video(p, num_frames=1, fps=BASE_FPS, seed=seed)
    paths["single_frame"] = p

    # lying_extension: Matroska/WebM content (VP9) under an .mp4 name.
    p = out / "lying_extension.mp4"
    tmp = out / "lying_extension.tmp.webm"
    write_signature_video(tmp, num_frames=BASE_FRAMES // 2, fps=BASE_FPS, codec="vp9", seed=seed)
    tmp.replace(p)
    paths["lying_extension"] = p
    return paths
