"""How the chunks of an array are encoded, as the lean read path decodes them.

The codec chains :mod:`talkit.store.fastread` decodes itself (pcodec, or bytes with an
optional Zstd or Blosc, after an optional (1, 0) transpose, before an optional crc32c),
the crc32c zarr's ``crc32c`` codec appends to each chunk, and the index a sharding codec
writes at either end of a shard. Damage found here is raised as :class:`Damaged`, which
the read path turns into a CorruptDataError naming the array and chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    ShardingCodec,
    TransposeCodec,
    ZstdCodec,
)

Decoder = Callable[[bytes], np.ndarray]
DecodeInto = Callable[[bytes, np.ndarray], int]  # values written into the flat target


@dataclass(frozen=True)
class ShardLayout:
    """Where a shard keeps its index of chunk byte ranges, and how it is encoded."""

    chunks_per_shard: int
    index_nbytes: int  # 16 bytes per chunk, plus 4 with a crc32c
    index_at_start: bool
    checksum: bool

    def parse(self, raw: bytes, *, verify: bool = True) -> np.ndarray:
        """(chunks_per_shard, 2) uint64 offsets and lengths from the encoded index.

        Raises :class:`Damaged` for an index of the wrong size or checksum.
        """
        if len(raw) != self.index_nbytes:
            raise Damaged(f"its shard index has {len(raw)} bytes, expected {self.index_nbytes}")
        body = raw[:-4] if self.checksum else raw
        if self.checksum and verify and crc32c(body) != raw[-4:]:
            raise Damaged("its shard index fails its crc32c checksum")
        return np.frombuffer(body, dtype="<u8").reshape(self.chunks_per_shard, 2)


class Damaged(Exception):
    """Bytes that fail a check; :func:`talkit.store.fastread.read_rows` names where."""

    def __init__(self, what: str, chunk: int | None = None) -> None:
        self.what = what
        self.chunk = chunk
        super().__init__(what)


def crc32c(data: Any) -> bytes:
    """The crc32c of ``data`` (bytes or a uint8 array) as zarr stores it: 4 bytes, little-endian."""
    import google_crc32c  # zarr's own dependency for its crc32c codec

    return np.uint32(google_crc32c.value(data)).astype("<u4").tobytes()


def _pcodec_into(raw: bytes, target: np.ndarray) -> int:
    """Decode the first ``target.size`` values of a pcodec chunk (pcodec stops there)."""
    from pcodec import standalone

    return int(standalone.simple_decompress_into(raw, target).n_processed)


def split_chain(codecs: Sequence[Any]) -> tuple[list[Any], bool, bool] | None:
    """(codecs to decode, transposed, checksum) of a chunk codec chain, None if unsupported."""
    codecs = list(codecs)
    transposed = False
    if codecs and isinstance(codecs[0], TransposeCodec):
        if tuple(codecs[0].order) != (1, 0):
            return None
        transposed, codecs = True, codecs[1:]
    checksum = bool(codecs) and isinstance(codecs[-1], Crc32cCodec)
    if checksum:
        codecs = codecs[:-1]
    if any(isinstance(c, TransposeCodec | Crc32cCodec) for c in codecs):
        return None
    return codecs, transposed, checksum


def decoders(codecs: Sequence[Any], dtype: np.dtype) -> tuple[Decoder, DecodeInto | None] | None:
    """Decoders (bytes -> flat ndarray, and into an array if it can) for a codec chain."""
    codecs = list(codecs)
    if not codecs:
        return None
    first = codecs[0]
    if type(first).__name__ == "PCodec":
        if len(codecs) != 1 or getattr(first, "codec_name", "").split(".")[-1] != "pcodec":
            return None
        try:
            from pcodec import standalone
        except ImportError:
            return None
        return standalone.simple_decompress, _pcodec_into
    decode = _decoder(codecs, dtype)
    return None if decode is None else (decode, None)


def _decoder(codecs: list[Any], dtype: np.dtype) -> Decoder | None:
    """A bytes -> flat ndarray decoder for bytes (+ Zstd or Blosc), or None if unsupported."""
    first = codecs[0]
    if not isinstance(first, BytesCodec) or len(codecs) > 2:
        return None
    endian = getattr(first.endian, "value", first.endian)
    stored = dtype.newbyteorder("<" if endian in (None, "little") else ">")
    if len(codecs) == 1:
        return lambda raw: np.frombuffer(raw, dtype=stored)
    second = codecs[1]
    if isinstance(second, ZstdCodec):
        from numcodecs import Zstd

        zstd = Zstd()
        return lambda raw: np.frombuffer(zstd.decode(raw), dtype=stored)
    if isinstance(second, BloscCodec):
        from numcodecs import Blosc

        blosc = Blosc()  # a Blosc frame carries its own settings; decoding needs none
        return lambda raw: np.frombuffer(blosc.decode(raw), dtype=stored)
    return None


def shard_layout(codec: ShardingCodec, shard_rows: int, dim: int) -> ShardLayout | None:
    """The index layout of a sharding codec this path can read, else None."""
    inner_rows, inner_dim = codec.chunk_shape
    if inner_dim != dim or inner_rows <= 0 or shard_rows % inner_rows:
        return None
    index_codecs = list(codec.index_codecs)
    if not index_codecs or not isinstance(index_codecs[0], BytesCodec):
        return None
    if getattr(index_codecs[0].endian, "value", index_codecs[0].endian) not in (None, "little"):
        return None
    checksum = index_codecs[1:] == [Crc32cCodec()]
    if len(index_codecs) > 1 and not checksum:
        return None
    n = shard_rows // inner_rows
    return ShardLayout(
        chunks_per_shard=n,
        index_nbytes=16 * n + (4 if checksum else 0),
        index_at_start=getattr(codec.index_location, "value", codec.index_location) == "start",
        checksum=checksum,
    )
