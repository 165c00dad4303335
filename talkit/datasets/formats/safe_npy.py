"""Load W-TALC ``.npy`` files without running arbitrary pickle.

W-TALC's ``segments.npy``, ``labels.npy`` and ``labels_all.npy`` are object arrays: NumPy
stores them as a pickle after the ``.npy`` header, and ``np.load(allow_pickle=True)``
would execute whatever that pickle names. Here the header is parsed with
``numpy.lib.format`` and the payload goes to an :class:`Unpickler` whose ``find_class``
admits only what those files contain: NumPy's array/dtype/scalar reconstructors and a
few builtin data types. A pickle that names anything else is refused *when the name is
looked up*, before any call is made, so nothing it asks for ever runs.

Python 2 pickles (the original W-TALC files) are read with ``encoding="latin1"``, which
NumPy documents as the way to load Python 2 arrays; their labels are ASCII.
"""

from __future__ import annotations

import importlib
import io
import math
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.lib import format as npy_format

from talkit.errors import AnnotationError


class UnsafePickleError(AnnotationError):
    """A ``.npy`` pickle asked for a type or function that W-TALC files never hold."""


def _numpy_attr(modules: tuple[str, ...], name: str) -> Any:
    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {modules} has {name}")


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to latin-1."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") not in {"latin1"}:
        raise pickle.UnpicklingError("_codecs.encode is only allowed as str -> latin-1 bytes")
    return text.encode("latin1", errors="strict")


def _allowed() -> dict[tuple[str, str], Any]:
    core = ("numpy._core.multiarray", "numpy.core.multiarray")
    numeric = ("numpy._core.numeric", "numpy.core.numeric")
    reconstruct = _numpy_attr(core, "_reconstruct")
    scalar = _numpy_attr(core, "scalar")
    frombuffer = _numpy_attr(numeric, "_frombuffer")
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for module in core:
        table[(module, "_reconstruct")] = reconstruct
        table[(module, "scalar")] = scalar
    for module in numeric:
        table[(module, "_frombuffer")] = frombuffer
    builtin_types = {
        "list": list,
        "tuple": tuple,
        "dict": dict,
        "set": set,
        "frozenset": frozenset,
        "str": str,
        "bytes": bytes,
        "bytearray": bytearray,
        "int": int,
        "float": float,
        "complex": complex,
        "bool": bool,
    }
    for module in ("builtins", "__builtin__"):
        for name, obj in builtin_types.items():
            table[(module, name)] = obj
    return table


_ALLOWED = _allowed()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only NumPy's reconstructors and builtin data types."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"pickle asks for {module}.{name}, which W-TALC annotation files never "
                "contain; refused without running it"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("pickle uses persistent ids; refused without running it")


def _read_header(fh: BinaryIO, path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = npy_format.read_magic(fh)
        if version == (1, 0):
            return npy_format.read_array_header_1_0(fh)
        if version == (2, 0):
            return npy_format.read_array_header_2_0(fh)
        reader = getattr(npy_format, "_read_array_header", None)
        if reader is None:
            raise ValueError(f"unsupported .npy format version {version}")
        return reader(fh, version)
    except (ValueError, OSError, SyntaxError, TypeError) as exc:
        raise AnnotationError(
            f"{path} is not a valid .npy file ({exc})",
            hint="re-download the W-TALC annotation files",
        ) from None


def load_wtalc_npy(path: str | Path) -> np.ndarray:
    """Read one W-TALC ``.npy`` file; object arrays go through the restricted unpickler.

    Raises :class:`UnsafePickleError` (an :class:`AnnotationError`, exit code 2) when the
    pickle would construct anything but NumPy arrays/dtypes/scalars and builtin data.
    """
    path = Path(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise AnnotationError(f"cannot open {path}: {exc.strerror or exc}") from None
    with fh:
        shape, fortran, dtype = _read_header(fh, path)
        if dtype.hasobject:
            array = _unpickle_array(fh, path)
        else:
            count = math.prod(shape)
            payload = fh.read(count * dtype.itemsize)
            if len(payload) != count * dtype.itemsize:
                raise AnnotationError(
                    f"{path} is truncated: {len(payload)} of {count * dtype.itemsize} data "
                    "bytes present",
                    hint="re-download the W-TALC annotation files",
                )
            array = np.frombuffer(payload, dtype=dtype, count=count).reshape(
                shape, order="F" if fortran else "C"
            )
            array = array.copy()
    if tuple(array.shape) != tuple(shape):
        raise AnnotationError(
            f"{path}: the header says shape {tuple(shape)} but the data has {array.shape}",
            hint="re-download the W-TALC annotation files",
        )
    return array


def _unpickle_array(fh: BinaryIO, path: Path) -> np.ndarray:
    payload = fh.read()
    try:
        obj = RestrictedUnpickler(io.BytesIO(payload), encoding="latin1").load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(
            f"{path}: {exc.message}",
            hint="this is not a genuine W-TALC file; do not load it with np.load(allow_pickle=True)",
        ) from None
    except Exception as exc:  # pickle raises many types on corrupt input
        raise AnnotationError(
            f"{path}: its object-array payload cannot be read ({type(exc).__name__}: {exc})",
            hint="re-download the W-TALC annotation files",
        ) from None
    if not isinstance(obj, np.ndarray):
        raise AnnotationError(
            f"{path}: the payload is a {type(obj).__name__}, not a NumPy array",
            hint="re-download the W-TALC annotation files",
        )
    return obj
