"""One training loop for every WS-TAL head, reading straight from the feature store.

    store + annotations ─► prepare_data (all input checks) ─► train / val / test ids
    for each model (one, or one per feature set when ensembling):
        resumable sampler ─► DataLoader (workers open their own store) ─► head.forward/loss
        every eval_every: detections on the validation split ─► mAP ─► best.pt, last.pt
    predict the chosen split with the best weights ─► detections, mAP report, plots

Determinism: every random choice is a function of the seed and the iteration. The
sampler derives each batch from (seed, iteration) and each item's snippet sampling from
its own seed, so neither worker count nor interruption changes what a step sees; dropout
draws from torch's global generator, whose state goes into ``last.pt`` with the optimizer.
A run stopped after iteration k and resumed ends with the same weights as one that ran
straight through.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape

from talkit import __version__
from talkit.datasets.model import Dataset
from talkit.datasets.store_dataset import (
    FeatureSource,
    SnippetDataset,
    collate_items,
    feature_stats,
)
from talkit.errors import CheckpointError, ConfigError, InputError, WorkFailedError
from talkit.locations import absolute_location
from talkit.wtal_heads.config import OptimConfig, RunConfig
from talkit.wtal_heads.data import PreparedData, check_dims, prepare_data, store_source
from talkit.wtal_heads.device import resolve_device
from talkit.wtal_heads.head import WTALHead, build_head
from talkit.wtal_heads.inference import evaluate_model, selection_metric
from talkit.wtal_heads.report import predict_prepared
from talkit.wtal_heads.rundir import RunDir, config_digest
from talkit.wtal_heads.train_progress import TrainProgress


class ResumableBatchSampler:
    """Endless batches of ``(video index, item seed)``, a pure function of seed and step.

    Position p of the stream of samples is video ``perm_e[p mod n]`` with ``perm_e`` the
    seeded permutation of epoch ``e = p // n``, so batch i is the same whether the run
    started at 0 or resumed at i. Batches run across epoch ends (always full).
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_iteration: int = 0) -> None:
        if n <= 0:
            raise InputError("the training split is empty")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_iteration = start_iteration
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            rng = np.random.default_rng([self.seed, epoch, 0x5A17])
            self._perms[epoch] = rng.permutation(self.n)
        return self._perms[epoch]

    def batch(self, iteration: int) -> list[tuple[int, int]]:
        out = []
        for p in range(iteration * self.batch_size, (iteration + 1) * self.batch_size):
            epoch, j = divmod(p, self.n)
            item_seed = int(np.random.SeedSequence([self.seed, p, 0x17E]).generate_state(1)[0])
            out.append((int(self._perm(epoch)[j]), item_seed))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.start_iteration
        while True:
            yield self.batch(it)
            it += 1


def build_optimizer(params: Any, cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def build_model(config: RunConfig, in_dim: int, num_classes: int) -> WTALHead:
    return build_head(
        config.model.head, in_dim=in_dim, num_classes=num_classes, params=config.model.params
    )


@dataclass
class MemberResult:
    """How one model's training ended."""

    name: str
    iterations_done: int
    best_iteration: int | None
    best_metric: float | None
    interrupted: bool


@dataclass
class TrainResult:
    """What ``train`` did: per-model results, and the report of the predicted split."""

    run_dir: Path
    members: list[MemberResult]
    interrupted: bool
    report: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _train_member(
    config: RunConfig,
    data: PreparedData,
    source: FeatureSource,
    rundir: RunDir,
    *,
    resume: bool,
    stop_after: int | None,
    console: Console,
    show_progress: bool,
    log: Callable[[str], None],
) -> MemberResult:
    loop = config.train
    device = resolve_device(loop.device)
    if device.type == "cuda":  # same seed, same run: no autotuned or racing kernels
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    torch.manual_seed(loop.seed)
    model = build_model(config, source.dim, len(data.classes)).to(device)
    optimizer = build_optimizer(model.parameters(), config.optim)
    digest = config_digest(config)
    start, best_metric, best_iteration, skipped = 0, None, None, 0
    if config.data.standardize:
        mean, std = feature_stats(source, data.train_ids, seed=loop.seed)
        model.set_input_stats(torch.from_numpy(mean).to(device), torch.from_numpy(std).to(device))

    if resume and rundir.checkpoint("last").is_file():
        ckpt = rundir.load_checkpoint("last")
        if ckpt.get("config_digest") != digest:
            raise CheckpointError(
                f"{rundir.checkpoint('last')} was written by a run with another model, data or "
                "seed than this config",
                hint="resume with the run's own config.yaml, or start a new --out",
            )
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"{rundir.checkpoint('last')} does not fit the model: {exc}"
            ) from exc
        torch.set_rng_state(ckpt["torch_rng"])
        if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng"], device)
        start = int(ckpt["iteration"])
        best_metric, best_iteration = ckpt.get("best_metric"), ckpt.get("best_iteration")
        skipped = int(ckpt.get("skipped_steps", 0))
        rundir.truncate_metrics(start)
        log(f"resuming {config.name} at iteration {start}")
    if start >= loop.iterations:
        return MemberResult(config.name, start, best_iteration, best_metric, False)

    train_ds = SnippetDataset(
        source,
        data.annotations,
        data.train_ids,
        classes=data.classes,
        sampling=config.data.sampling,
        num_segments=config.data.num_segments,
        seed=loop.seed,
    )
    sampler = ResumableBatchSampler(len(train_ds), loop.batch_size, loop.seed, start)
    workers = config.data.num_workers
    loader = torch.utils.data.DataLoader(
        train_ds,
        batch_sampler=sampler,
        collate_fn=collate_items,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        # Fresh worker processes: a forked copy of an open store's I/O threads can hang.
        multiprocessing_context="spawn" if workers > 0 else None,
        # The loader's own seed draw must not touch the global generator dropout uses.
        generator=torch.Generator().manual_seed(loop.seed),
    )
    batches = iter(loader)
    metric_name = selection_metric(config)

    def checkpoint_payload(done: int) -> dict[str, Any]:
        return {
            "iteration": done,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "best_metric": best_metric,
            "best_iteration": best_iteration,
            "skipped_steps": skipped,
            "config_digest": digest,
            "head": config.model.head,
            "head_params": config.model.params,
            "in_dim": source.dim,
            "classes": data.classes,
        }

    t0, last_loss, val_text = time.perf_counter(), "-", "-"
    progress = TrainProgress(
        console, name=config.name, total=loop.iterations, start=start, enabled=show_progress
    )
    with progress:
        done = start
        try:
            for it in range(start, loop.iterations):
                batch = next(batches)
                x = batch["features"].to(device, non_blocking=True)
                y = batch["labels"].to(device)
                mask = batch["mask"].to(device) if batch["mask"] is not None else None
                model.train()
                out = model(x, mask)
                loss, parts = model.loss(out, y)
                loss_value = float(loss.detach())
                finite = math.isfinite(loss_value)
                if not finite and not model.skip_nonfinite:
                    raise WorkFailedError(
                        f"training of {config.name} diverged: loss is {loss_value} at "
                        f"iteration {it + 1}",
                        hint="lower optim.lr or set train.grad_clip",
                    )
                optimizer.zero_grad(set_to_none=True)
                if finite:
                    loss.backward()
                    if loop.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), loop.grad_clip)
                    optimizer.step()
                else:  # the head asks for the step to be skipped (D2-Net's reference does)
                    skipped += 1
                    log(
                        f"{config.name}: loss is {loss_value} at iteration {it + 1}; step "
                        f"skipped ({skipped} so far)"
                    )
                done = it + 1
                last_loss = f"{loss_value:.4f}"
                rate = (done - start) / max(time.perf_counter() - t0, 1e-9)
                if done % loop.log_every == 0 or done == loop.iterations:
                    rundir.log_metrics(
                        {
                            "iteration": done,
                            "split": "train",
                            "loss": loss_value if finite else None,
                            **{k: v if math.isfinite(v) else None for k, v in parts.items()},
                            "skipped_steps": skipped,
                            "lr": optimizer.param_groups[0]["lr"],
                            "it_per_s": rate,
                        }
                    )
                if done % loop.eval_every == 0 or done == loop.iterations:
                    result = evaluate_model(model, config, data, source, "val", device)
                    value = result.averages.get(metric_name, math.nan)
                    improved = best_metric is None or value > best_metric
                    if improved:
                        best_metric, best_iteration = float(value), done
                        rundir.save_checkpoint(
                            "best",
                            {
                                "iteration": done,
                                "model": model.state_dict(),
                                "metric": metric_name,
                                "value": float(value),
                                "head": config.model.head,
                                "head_params": config.model.params,
                                "in_dim": source.dim,
                                "classes": data.classes,
                            },
                        )
                    rundir.log_metrics(
                        {
                            "iteration": done,
                            "split": "val",
                            "average_mAP": result.averages,
                            "mAP": {
                                f"{t:g}": float(m)
                                for t, m in zip(result.thresholds, result.map, strict=True)
                            },
                            "best": improved,
                        }
                    )
                    val_text = f"{value * 100:.1f}"
                    rundir.save_checkpoint("last", checkpoint_payload(done))
                elif loop.checkpoint_every and done % loop.checkpoint_every == 0:
                    rundir.save_checkpoint("last", checkpoint_payload(done))
                progress.update(done, loss=last_loss, val=val_text, rate=rate)
                if stop_after is not None and done >= stop_after and done < loop.iterations:
                    rundir.save_checkpoint("last", checkpoint_payload(done))
                    log(f"{config.name}: stopped after iteration {done}; continue with --resume")
                    return MemberResult(config.name, done, best_iteration, best_metric, True)
        except KeyboardInterrupt:
            rundir.save_checkpoint("last", checkpoint_payload(done))
            log(f"{config.name}: interrupted after iteration {done}; continue with --resume")
            raise
    return MemberResult(config.name, done, best_iteration, best_metric, False)


def _member_source(config: RunConfig, store: str | FeatureSource) -> FeatureSource:
    if isinstance(store, FeatureSource):
        raise InputError("an ensemble needs a store URL, not in-memory features")
    return store_source(store, config.data)


def train(
    config: RunConfig,
    *,
    store: str | FeatureSource,
    annotations: str | Path | Dataset,
    out: str | Path,
    allow_missing: bool = False,
    resume: bool = False,
    stop_after: int | None = None,
    show_progress: bool = True,
    console: Console | None = None,
) -> TrainResult:
    """Train ``config`` on ``store`` + ``annotations`` into run directory ``out``.

    ``resume`` continues from ``out/checkpoints/last.pt`` (same config; the iteration
    budget may grow). ``stop_after`` ends the run after that many iterations as an
    interruption would (resumable), for time-sliced jobs and tests.
    """
    console = console or Console(stderr=True)
    notes: list[str] = []

    def log(msg: str) -> None:
        notes.append(msg)
        if show_progress:
            console.print(f"[dim]{escape(msg)}[/]", highlight=False)

    rundir = RunDir(out)
    if resume:
        if rundir.config_path.is_file():
            stored = rundir.read_config()
            if config_digest(stored) != config_digest(config):
                raise ConfigError(
                    f"{rundir.root} was trained with another config (model, data or seed differ)",
                    hint="resume without --config overrides that change the model, or use a new --out",
                )
    elif rundir.checkpoints.exists() or any(rundir.root.glob("members/*/checkpoints")):
        raise InputError(
            f"{rundir.root} already holds a training run",
            hint="pass --resume to continue it, or choose another --out",
        )

    data = prepare_data(
        config, store=store, annotations=annotations, allow_missing=allow_missing, log=log
    )
    rundir.write_config(config)
    rundir.write_info(
        {
            "talkit_version": __version__,
            "store": absolute_location(store) if isinstance(store, str | Path) else None,
            "store_version": config.data.store_version,
            "annotations": absolute_location(annotations)
            if isinstance(annotations, str | Path)
            else None,
            "classes": data.classes,
            "splits": {
                "train": len(data.train_ids),
                "val": len(data.val_ids),
                "test": len(data.test_ids),
            },
            "val_ids": data.val_ids,
            "members": [m.name for m in config.members()] if config.ensemble else [],
            "notes": data.notes,
        }
    )
    results = []
    for member in config.members():
        source = _member_source(member, store) if config.ensemble else data.source
        if config.ensemble:
            check_dims(member, source)
        member_dir = rundir.member(member.name) if config.ensemble else rundir
        result = _train_member(
            member,
            data,
            source,
            member_dir,
            resume=resume,
            stop_after=stop_after,
            console=console,
            show_progress=show_progress,
            log=log,
        )
        results.append(result)
        if result.interrupted:
            return TrainResult(rundir.root, results, True, None, notes)
    report = None
    if config.eval.predict_split:
        report = predict_prepared(
            rundir, config, data, split=config.eval.predict_split, store=store
        )
    return TrainResult(rundir.root, results, False, report, notes)
