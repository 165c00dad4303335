"""The exact median of k x k windows as a selection network of min/max operations.

OpenCV's DualTVL1 median-filters the flow between iterations with ``medianBlur`` (5x5,
replicated borders). A median of 25 values by sorting every window (``unfold`` then
``median``) costs 25 copies of the image and a sort per pixel; a fixed network of
element-wise ``minimum``/``maximum`` over 25 shifted views costs no copies, fuses into one
kernel under ``torch.compile``, and runs the same on any device.

The network is Batcher's odd-even merge sort on the next power of two, with the extra
wires held at -inf/+inf, pruned to the comparators the middle output depends on (212
min/max for 25 values, 46 for 9). It is exact: it returns the 13th smallest of 25 values,
as ``medianBlur`` does.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

# A node is ("x", i) for input i, or ("min"|"max", a, b) for two earlier nodes.
Node = tuple


def _batcher(n: int) -> list[tuple[int, int]]:
    """Comparators (low wire, high wire) of Batcher's odd-even merge sort, n a power of 2."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (p * 2) == (i + j + k) // (p * 2):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


@functools.lru_cache(maxsize=8)
def median_program(count: int) -> tuple[tuple[str, int, int], ...]:
    """Straight-line program for the median of ``count`` (odd) inputs.

    Each step is ``(op, a, b)``: slot ``count + step index`` = op(slot a, slot b), where
    slots 0..count-1 are the inputs. The last step's slot holds the median.
    """
    if count < 1 or count % 2 == 0:
        raise ValueError(f"median of an odd number of values only, got {count}")
    if count == 1:
        return ()
    n = 1
    while n < count:
        n *= 2
    low_pads = (n - count) // 2
    wires: list[Node | str] = [("x", i) for i in range(count)]
    wires += ["-inf"] * low_pads + ["+inf"] * (n - count - low_pads)
    for i, j in _batcher(n):
        a, b = wires[i], wires[j]
        if a == "-inf" or b == "+inf":
            continue  # already in order
        if a == "+inf" or b == "-inf":
            wires[i], wires[j] = b, a
            continue
        wires[i], wires[j] = ("min", a, b), ("max", a, b)
    target = wires[(count - 1) // 2 + low_pads]
    # Emit the nodes the median depends on, each once, in dependency order.
    slots: dict[int, int] = {}
    program: list[tuple[str, int, int]] = []

    def emit(node: Node) -> int:
        if node[0] == "x":
            return int(node[1])
        key = id(node)
        if key not in slots:
            a, b = emit(node[1]), emit(node[2])
            program.append((node[0], a, b))
            slots[key] = count + len(program) - 1
        return slots[key]

    emit(target)  # type: ignore[arg-type]
    return tuple(program)


def run_program(
    values: list[torch.Tensor], program: tuple[tuple[str, int, int], ...]
) -> torch.Tensor:
    """Evaluate a :func:`median_program` on same-shaped tensors."""
    slots = list(values)
    for op, a, b in program:
        slots.append(
            torch.minimum(slots[a], slots[b]) if op == "min" else torch.maximum(slots[a], slots[b])
        )
    return slots[-1]


def median_filter(
    x: torch.Tensor, size: int, program: tuple[tuple[str, int, int], ...]
) -> torch.Tensor:
    """``cv2.medianBlur(x, size)`` for every (H, W) plane of ``x`` (..., H, W): replicated
    borders, exact median. ``program`` is ``median_program(size * size)``."""
    r = size // 2
    shape = x.shape
    h, w = shape[-2:]
    planes = x.reshape(-1, 1, h, w)
    padded = F.pad(planes, (r, r, r, r), mode="replicate")[:, 0]
    views = [padded[:, i : i + h, j : j + w] for i in range(size) for j in range(size)]
    return run_program(views, program).reshape(shape)
