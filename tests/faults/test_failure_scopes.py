"""Which failures stop a run: a video's own errors never do; the machine's and the setup's
stop it at once; N in a row of one type stop it too (the setup in disguise)."""

from __future__ import annotations

import errno

import pytest

from talkit.errors import CheckpointError, StoreError, VideoDecodeError
from talkit.pipelines.failures import (
    SETUP,
    SYSTEMATIC,
    VIDEO,
    Failure,
    FailureGuard,
    SetupFailureError,
    SystematicFailureError,
    TooManyFailuresError,
    failure_from_exception,
    failure_scope,
    start_failure_scope,
)
from talkit.pipelines.worker import NoSnippetsError
from talkit.store.errors import FeatureValidationError


def _cuda_oom() -> BaseException:
    import torch

    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.parametrize(
    ("make", "scope"),
    [
        (lambda: VideoDecodeError("v.mp4 is truncated", kind="truncated"), VIDEO),
        (lambda: NoSnippetsError("shorter than one snippet"), VIDEO),
        (lambda: FeatureValidationError("NaN in rgb of v"), VIDEO),
        (lambda: ValueError("odd frame size"), VIDEO),
        (lambda: RuntimeError("shape mismatch in conv3d"), VIDEO),
        (lambda: OSError(errno.EIO, "Input/output error"), VIDEO),
        (_cuda_oom, SYSTEMATIC),
        (lambda: RuntimeError("CUDA error: an illegal memory access was encountered"), SYSTEMATIC),
        (lambda: RuntimeError("cuDNN error: CUDNN_STATUS_NOT_INITIALIZED"), SYSTEMATIC),
        (lambda: MemoryError(), SYSTEMATIC),
        (lambda: OSError(errno.ENOSPC, "No space left on device"), SYSTEMATIC),
        (lambda: OSError(errno.EMFILE, "Too many open files"), SYSTEMATIC),
        (lambda: ModuleNotFoundError("No module named 'av'"), SETUP),
        (lambda: ImportError("libavcodec.so.61: cannot open shared object file"), SETUP),
        (lambda: CheckpointError("checkpoint rgb.pt could not be read"), SETUP),
        (lambda: StoreError("cannot commit to s.store"), SETUP),
    ],
)
def test_errors_are_classed_as_the_videos_the_machines_or_the_setups(
    make: object, scope: str
) -> None:
    exc = make()  # type: ignore[operator]
    assert failure_scope(exc) == scope
    assert failure_from_exception("v", "v.mp4", exc).scope == scope


def test_a_workers_start_error_is_classed_by_its_type_name() -> None:
    assert start_failure_scope("CheckpointError: checkpoint not found: /m/rgb.pt") == SETUP
    assert start_failure_scope("ModuleNotFoundError: No module named 'decord'") == SETUP
    assert start_failure_scope("torch.OutOfMemoryError: CUDA out of memory") == SYSTEMATIC
    assert start_failure_scope("ValueError: odd") == VIDEO


def _failure(vid: str, error_type: str = "VideoDecodeError", scope: str = VIDEO) -> Failure:
    return Failure(vid, f"{vid}.mp4", error_type, f"{vid} is broken", scope=scope)  # type: ignore[arg-type]


def test_the_streak_counts_failures_in_a_row_of_one_type_only() -> None:
    guard = FailureGuard(max_consecutive=3)
    guard.failure(_failure("a"), 1)
    guard.failure(_failure("b"), 2)
    guard.success()  # a video extracted in between: the streak starts over
    guard.failure(_failure("c"), 3)
    guard.failure(_failure("d", "NoSnippetsError"), 4)  # another type: starts over too
    guard.failure(_failure("e"), 5)
    guard.failure(_failure("f"), 6)
    with pytest.raises(
        TooManyFailuresError, match="3 videos in a row failed with VideoDecodeError"
    ):
        guard.failure(_failure("g"), 7)


def test_zero_never_stops_for_a_streak_and_max_failures_still_counts_all() -> None:
    guard = FailureGuard(max_consecutive=0)
    for i in range(100):
        guard.failure(_failure(f"v{i}"), i + 1)
    guard = FailureGuard(max_failures=2, max_consecutive=0)
    guard.failure(_failure("a"), 1)
    guard.failure(_failure("b"), 2)
    with pytest.raises(TooManyFailuresError, match="more than --max-failures 2"):
        guard.failure(_failure("c"), 3)


def test_the_machines_and_the_setups_errors_stop_at_the_first_with_their_exit_codes() -> None:
    with pytest.raises(SystematicFailureError) as machine:
        FailureGuard().failure(_failure("a", "OutOfMemoryError", SYSTEMATIC), 1)
    assert machine.value.exit_code == 1 and "stopped at once" in machine.value.message
    with pytest.raises(SetupFailureError) as setup:
        FailureGuard().failure(_failure("a", "ModuleNotFoundError", SETUP), 1)
    assert setup.value.exit_code == 2 and "not of the video" in setup.value.message
    assert "\n" not in str(setup.value)


def test_the_default_streak_is_20() -> None:
    from talkit.pipelines.config import ExtractConfig

    assert ExtractConfig().max_consecutive_failures == 20
    guard = FailureGuard()
    for i in range(19):
        guard.failure(_failure(f"v{i}"), i + 1)
    with pytest.raises(TooManyFailuresError):
        guard.failure(_failure("v19"), 20)
