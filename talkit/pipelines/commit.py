"""Committing finished videos: one store version per batch, safe with concurrent runs.

The driver buffers finished videos and commits them as one store version every
``commit_every`` videos, 256 MiB or ``commit_interval_s``. Several runs may write one
store at once (two extracts of the same videos, of disjoint ones, of other datasets), so
each commit decides per video and feature set against the store as it is *at that
commit*, not as it was when the run was planned:

================================================  ===========================================
the video in the store now                        this commit
================================================  ===========================================
absent                                            writes it
as when the run was planned (a redo, ``--force``)  overwrites it
committed meanwhile from the same source          skips it: the other run's copy is the same
                                                  result (same spec, same fingerprint); listed
                                                  in the report as ``concurrent``
committed meanwhile from another source           keeps the committed one and lists the clash
                                                  in the report (``clashes``; exit 1): the run
                                                  cannot tell which file is the right one, and
                                                  re-running the same command re-extracts the
                                                  video if the file now differs from what the
                                                  store holds
================================================  ===========================================

The decisions are made against the version the commit's transaction starts from (if the
branch moves between reading it and starting the transaction, the commit starts over). Two
commits that race from one version are rebased by the store; if both wrote the same
video, the rebase fails and this commit starts over against the new version, so nothing
another run committed is overwritten and nothing this run extracted is dropped unless it
is already in the store.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from talkit.pipelines.report import RunReport, VideoDone, commit_record
from talkit.pipelines.resume import SOURCE_ATTR, Fingerprint, decide
from talkit.pipelines.testhooks import pause_point

MAX_BUFFER_BYTES = 256 << 20
COMMIT_ATTEMPTS = 30
LOOKAHEAD = 256  # queued videos checked for another run's commits after each commit
ABSENT = object()  # a video a feature set does not hold

# feature set name -> video id -> the video's stored ``source`` attrs (None without one)
Sources = dict[str, dict[str, Any]]


def read_sources(
    store: Any, dataset: str, names: list[str], ids: Iterable[str] | None = None
) -> Sources:
    """The stored source of every (or each listed) complete video of each feature set.

    Listed ids are looked up one by one, so a commit of 100 videos into a set of 50,000
    reads 100 videos' metadata, not the whole listing.
    """
    from talkit.store.errors import VideoNotFoundError

    out: Sources = {}
    wanted = None if ids is None else list(ids)
    for name in names:
        fs = store.feature_set(dataset, name)
        if wanted is None:
            out[name] = {vid: fs.video(vid).attrs.get(SOURCE_ATTR) for vid in fs.videos()}
            continue
        found = {}
        for vid in wanted:
            try:
                found[vid] = fs.video(vid).attrs.get(SOURCE_ATTR)
            except VideoNotFoundError:  # absent, or half-written (plain zarr)
                continue
        out[name] = found
    return out


def common_sources(sources: Sources) -> dict[str, Any]:
    """Video id -> source, for resume: None where the sets disagree or hold it partly."""
    per_set = list(sources.values())
    common = set.intersection(*(set(d) for d in per_set)) if per_set else set()
    out: dict[str, Any] = {}
    for vid in common:
        found = [d[vid] for d in per_set]
        out[vid] = found[0] if all(s == found[0] for s in found) else None
    # Present in some sets only: redo (overwrite) so that all sets agree again.
    for d in per_set:
        for vid in set(d) - common:
            out.setdefault(vid, None)
    return out


def same_source(a: Any, b: Any) -> bool:
    """Whether two stored ``source`` attrs name one file in one state."""
    fa, fb = Fingerprint.from_attrs(a), Fingerprint.from_attrs(b)
    return fa is not None and fa == fb


class CommitRetriesExhausted(Exception):
    """Every attempt of a commit lost a race with another writer (see Committer.commit)."""


@dataclass
class _Decision:
    result: Any  # VideoResult
    actions: dict[str, str]  # feature set -> write, overwrite, same, clash


class Committer:
    """Buffers finished videos and commits them as one store version at a time."""

    def __init__(
        self,
        store: Any,
        *,
        dataset: str,
        feature_sets: list[str],
        planned: Sources,
        report: RunReport,
        observer: Any,
        commit_every: int,
        commit_interval_s: float,
        write_report: Any = None,
    ) -> None:
        self.store = store
        self.dataset = dataset
        self.names = feature_sets
        self.planned = planned
        self.report = report
        self.observer = observer
        self.commit_every = commit_every
        self.commit_interval_s = commit_interval_s
        self.write_report = write_report or (lambda: None)
        self.buffer: list[Any] = []
        self.bytes = 0
        self.part = 0
        self.last = time.monotonic()
        self.known_tip = store.snapshot_id  # the branch tip as this run last left or saw it
        self.others_seen = False  # another writer committed since the last look at the queue

    @property
    def pending(self) -> list[str]:
        """Video ids finished but not committed yet."""
        return [r.item.video_id for r in self.buffer]

    def add(self, result: Any) -> bool:
        """Buffer one finished video; commit if a limit is reached (True if it committed)."""
        self.buffer.append(result)
        self.bytes += result.nbytes
        if (
            len(self.buffer) >= self.commit_every
            or self.bytes >= MAX_BUFFER_BYTES
            or time.monotonic() - self.last >= self.commit_interval_s
        ):
            self.commit(final=False)
            return True
        return False

    def commit(self, *, final: bool) -> None:
        """Commit the buffer (see module docstring); the buffer is kept until it lands."""
        from talkit.store.errors import CommitConflictError

        self.last = time.monotonic()
        if not self.buffer:
            return
        for _ in range(COMMIT_ATTEMPTS):
            if self._attempt(final):
                self.buffer, self.bytes = [], 0
                self.last = time.monotonic()
                return
        raise CommitConflictError(
            f"{len(self.buffer)} finished videos could not be committed to {self.store.url}: "
            f"{COMMIT_ATTEMPTS} attempts in a row lost a race with other writers",
            hint="the videos are listed as uncommitted in the report; re-run the same "
            "command when fewer runs write this store",
        )

    def _decide(self) -> tuple[str, list[_Decision]]:
        """The store's current version, and what to do with each buffered video there."""
        self.store.refresh()
        base = self.store.snapshot_id
        if base != self.known_tip:
            self.others_seen = True
        now = read_sources(self.store, self.dataset, self.names, self.pending)
        decisions = []
        for result in self.buffer:
            vid = result.item.video_id
            actions = {}
            for fs, out in (result.outputs or {}).items():
                theirs = now.get(fs, {}).get(vid, ABSENT)
                planned = self.planned.get(fs, {}).get(vid, ABSENT)
                if theirs is ABSENT:
                    actions[fs] = "write"
                elif planned is not ABSENT and theirs == planned:
                    actions[fs] = "overwrite"
                elif same_source(theirs, out.attrs.get(SOURCE_ATTR)):
                    actions[fs] = "same"
                else:
                    actions[fs] = "clash"
            decisions.append(_Decision(result, actions))
        return base, decisions

    def _attempt(self, final: bool) -> bool:
        """One try at committing the buffer; False if another writer got in between."""
        from talkit.store.errors import CommitConflictError, VideoExistsError

        base, decisions = self._decide()
        written = [d for d in decisions if {"write", "overwrite"} & set(d.actions.values())]
        report = self.report
        snapshot = None
        if written:
            ids = [d.result.item.video_id for d in written]
            meta = commit_record(report, self.part + 1, ids, final=final)
            message = (
                f"extract {', '.join(report.feature_sets)}: {len(ids)} videos "
                f"(run {report.run_id}, part {self.part + 1})"
            )
            w = self.store.writer(message=message, metadata=meta)
            self.store.refresh()
            if self.store.snapshot_id != base:  # the branch moved: decide again
                w.abort()
                return False
            # Workers validated every array against the spec (store.validate), so a write
            # error here is the store's (disk, permissions) and stops the run.
            try:
                with w:
                    for d in written:
                        for fs, action in d.actions.items():
                            if action not in ("write", "overwrite"):
                                continue
                            out = d.result.outputs[fs]
                            w.write_video(
                                self.dataset,
                                fs,
                                d.result.item.video_id,
                                streams=out.streams,
                                timestamps=out.timestamps,
                                attrs=out.attrs,
                                overwrite=action == "overwrite",
                            )
                    pause_point("commit-written")
            except (CommitConflictError, VideoExistsError):
                return False  # another run committed one of these videos meanwhile
            snapshot = w.snapshot_id
            self.part += 1
            if snapshot:
                report.commits.append(snapshot)
        self.known_tip = self.store.snapshot_id  # refreshed by the commit, if one was made
        for d in decisions:
            r, vid = d.result, d.result.item.video_id
            acts = set(d.actions.values())
            if acts & {"write", "overwrite"}:
                report.extracted.append(
                    VideoDone(vid, str(r.item.path), r.snippets, r.seconds, r.node_id, r.pid,
                              r.attempts, r.frames_decoded)
                )  # fmt: skip
                for fs, action in d.actions.items():
                    if action != "clash":
                        self.planned.setdefault(fs, {})[vid] = r.outputs[fs].attrs.get(SOURCE_ATTR)
            elif acts == {"same"}:
                report.concurrent.append(vid)
            for fs, action in d.actions.items():
                if action == "clash":
                    report.clashes.append(self._clash(vid, fs, r))
        self.observer.on_commit(snapshot, len(written))
        if written:
            pause_point("commit-landed")
        self.write_report()
        return True

    def _clash(self, vid: str, fs: str, result: Any) -> dict[str, Any]:
        theirs = self.store.feature_set(self.dataset, fs).video(vid).attrs.get(SOURCE_ATTR)
        return {
            "video_id": vid,
            "feature_set": f"{self.dataset}/{fs}",
            "kept": theirs,
            "dropped": result.outputs[fs].attrs.get(SOURCE_ATTR),
        }

    def done_elsewhere(self, items: list[Any]) -> list[Any]:
        """Queued videos that another run has committed since planning, from the same file.

        Called after a commit (the store is at the new version): such videos need not be
        extracted again here. Only when another writer has committed since the last look,
        and only the next LOOKAHEAD videos of the queue (those this run is about to start)
        are looked up; those whose stored state changed since planning are hashed, as a
        resume would.
        """
        if not items or not self.others_seen:
            return []
        self.others_seen = False
        items = items[:LOOKAHEAD]
        ids = [i.video_id for i in items]
        now = read_sources(self.store, self.dataset, self.names, ids)
        changed = {
            vid
            for vid in ids
            for fs in self.names
            if now.get(fs, {}).get(vid, ABSENT) is not ABSENT
            and now[fs][vid] != self.planned.get(fs, {}).get(vid, ABSENT)
        }
        if not changed:
            return []
        stored = {vid: s for vid, s in common_sources(now).items() if vid in changed}
        done = decide([i for i in items if i.video_id in changed], stored).done
        for item in done:
            for fs in self.names:
                self.planned.setdefault(fs, {})[item.video_id] = now[fs].get(item.video_id)
        return done
