"""A small deterministic training loop shared by both stages: phases of per-window losses,
validation every few steps keeping the best checkpoint, resumable atomic checkpoints, and data
parallelism over ``torch.distributed`` ranks.

How long a phase trains is decided by its steps and its validation, never by the clock: a
deadline only caps it (and the run then says that the result depends on the machine)."""

from __future__ import annotations

import atexit
import errno
import logging
import math
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import InvalidInput

logger = logging.getLogger(__name__)

STATE_VERSION = 2


@dataclass
class Phase:
    name: str
    params: list[str]  # names of the parameters this phase trains
    loss: Callable[[int], torch.Tensor] | None  # window index -> loss (None: a synchronisation point)
    windows: int = 0
    epochs: int = 0
    lr: float = 1e-4
    sharded: bool = False  # windows of each batch split over ranks, gradients summed
    deadline: float | None = None  # seconds since the run started after which the phase stops
    after: Callable[[], None] | None = None  # called once the phase is complete
    validate: Callable[[], dict[str, float]] | None = None  # validation metrics of the current weights
    score: Callable[[dict[str, float]], float] | None = None  # lower is better: the checkpoint kept
    eval_every: int = 0  # steps between validations (the starting point is validated too)
    patience: int = 0  # stop after this many validations without a better score (0: never)

    def steps_per_epoch(self, batch: int) -> int:
        return math.ceil(self.windows / batch) if self.loss is not None else 0


@dataclass
class Dist:
    """This process's place in a ``torch.distributed`` job (world 1 without one)."""

    world: int = 1
    rank: int = 0

    @classmethod
    def from_env(cls) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)
            # a group left to the interpreter's teardown can abort the process after its work
            # ("terminate called without an active exception" from Gloo's threads)
            atexit.register(dist.destroy_process_group)
        return cls(dist.get_world_size(), dist.get_rank())

    @property
    def main(self) -> bool:
        return self.rank == 0

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (collective)."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def min(self, value: int) -> int:
        if self.world == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t.item())

    def sum_(self, tensors: list[torch.Tensor]) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist

        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)

    def broadcast_(self, tensors: list[torch.Tensor], src: int) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist

        for t in tensors:
            dist.broadcast(t, src=src)


@dataclass
class State:
    phase: int = 0
    epoch: int = 0
    step: int = 0  # within the epoch
    steps_done: int = 0  # optimizer steps of this process, all phases
    epoch_loss: float = 0.0  # running sum over the current epoch
    epoch_steps: int = 0
    planned: dict[str, int] = field(default_factory=dict)  # phase -> steps, when a time budget cut it
    history: dict[str, list[float]] = field(default_factory=dict)  # phase -> mean loss per epoch
    elapsed: float = 0.0  # training seconds before this process started (resumed runs)
    optimizer: dict | None = None
    evals: list[dict] = field(default_factory=list)  # validations of the current phase: step, metrics, score
    best: int | None = None  # index into evals of the checkpoint kept
    best_params: dict | None = None  # its trained parameters
    stopped_by: dict[str, str] = field(default_factory=dict)  # phase -> "validation" | "time budget" | "steps"


def lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first 10 % of steps, then cosine decay to 10 % of the peak."""
    warm = max(1, total // 10)
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def epoch_order(n: int, seed: int, phase: str, epoch: int) -> list[int]:
    """The window order of one epoch: a function of the phase's name, not its position, so a
    block trained on any rank sees the same order as in a single process."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(phase.encode()) * 1009 + epoch)
    return torch.randperm(n, generator=g).tolist()


def _read_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated or foreign file
        raise InvalidInput(
            f"cannot read the checkpoint {path} ({type(exc).__name__}: {exc}); delete it to start over"
        ) from None


def saved_key(path: Path | None) -> dict | None:
    """The run key of the checkpoint at ``path`` (None when there is none)."""
    if path is None or not path.is_file():
        return None
    saved = _read_checkpoint(path)
    return saved.get("key") if saved.get("version") == STATE_VERSION else None


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        phases: list[Phase],
        *,
        batch: int,
        seed: int,
        dist: Dist,
        key: dict,
        state_path: Path | None,
        checkpoint_every: float,
        max_steps: int | None,
        autocast: Any,
        progress: bool,
    ) -> None:
        self.model, self.phases, self.batch, self.seed, self.dist = model, phases, batch, seed, dist
        self.key, self.state_path, self.every, self.max_steps = key, state_path, checkpoint_every, max_steps
        self.autocast, self.progress = autocast, progress
        self.params = dict(model.named_parameters())
        self.trained = sorted({n for p in phases for n in p.params})
        self.stopped_early = False
        self.resumed = False

    # -- checkpoints ---------------------------------------------------------------------
    def load(self) -> State:
        if self.state_path is None or not self.state_path.is_file():
            return State()
        saved = _read_checkpoint(self.state_path)
        if saved.get("version") != STATE_VERSION or saved.get("key") != self.key:
            raise InvalidInput(
                f"{self.state_path} was written by a different adaptation run (other model, data, options or "
                "number of processes): resume with the same ones, or delete it to start again"
            )
        with torch.no_grad():
            for name, value in saved["params"].items():
                self.params[name].copy_(value)
        self.resumed = True
        state = State(**saved["state"])
        logger.info(
            "resuming from %s: phase %d/%d, epoch %d, step %d",
            self.state_path,
            state.phase + 1,
            len(self.phases),
            state.epoch + 1,
            state.step,
        )
        return state

    def save(self, state: State, optimizer: torch.optim.Optimizer | None) -> None:
        if self.state_path is None:
            return
        saved = dict(vars(state), elapsed=self.elapsed(), optimizer=optimizer.state_dict() if optimizer else None)
        payload = {
            "version": STATE_VERSION,
            "key": self.key,
            "state": saved,
            "params": {n: self.params[n].detach().cpu().clone() for n in self.trained},
        }
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(payload, tmp)
            os.replace(tmp, self.state_path)
        except OSError as exc:  # a full disk must not stop training: the previous checkpoint stays
            tmp.unlink(missing_ok=True)
            why = "the disk is full" if exc.errno == errno.ENOSPC else str(exc)
            logger.warning(
                "could not write the checkpoint %s (%s); training goes on, the previous one is kept",
                self.state_path,
                why,
            )
        self.last_save = time.monotonic()

    def elapsed(self) -> float:
        return self.base_elapsed + time.monotonic() - self.started

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> State:
        self.started = self.last_save = time.monotonic()
        state = self.load()
        self.base_elapsed = state.elapsed
        steps = [state.planned.get(p.name, p.steps_per_epoch(self.batch) * p.epochs) for p in self.phases]
        total = sum(steps)
        done = sum(steps[: state.phase])
        if state.phase < len(self.phases):
            done += state.epoch * self.phases[state.phase].steps_per_epoch(self.batch) + state.step
        bar = None
        if self.progress and self.dist.main:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=done, desc="adapting", unit="step")
        try:
            while state.phase < len(self.phases):
                if self._run_phase(self.phases[state.phase], state, bar):
                    break
        finally:
            if bar is not None:
                bar.close()
        return state

    def _run_phase(self, phase: Phase, state: State, bar) -> bool:
        """Run (the rest of) ``phase``; True when the whole run must stop (step limit)."""
        optimizer = None
        if phase.loss is not None:
            params = [self.params[n] for n in phase.params]
            for p in self.model.parameters():
                p.requires_grad_(False)
            for p in params:
                p.requires_grad_(True)
            optimizer = torch.optim.AdamW(params, lr=phase.lr, weight_decay=0.0)
            if state.optimizer is not None:
                optimizer.load_state_dict(state.optimizer)
                state.optimizer = None
            per_epoch = phase.steps_per_epoch(self.batch)
            total = state.planned.get(phase.name, per_epoch * phase.epochs)
            full = per_epoch * phase.epochs  # the schedule: a cut phase ends early, its rates unchanged
            if phase.validate is not None and not state.evals:
                self._validate(phase, state, 0)  # the starting point is a candidate too
            first = None  # end of this process's first step in the phase
            ran = 0
            while state.epoch * per_epoch + state.step < total:
                k = state.epoch * per_epoch + state.step  # step within the phase
                if self.max_steps is not None and state.steps_done >= self.max_steps:
                    self.stopped_early = True
                    state.stopped_by[phase.name] = "steps"
                    self.save(state, optimizer)
                    self._restore_best(state)
                    return True
                order = epoch_order(phase.windows, self.seed, phase.name, state.epoch)
                batch = order[state.step * self.batch : (state.step + 1) * self.batch]
                loss = self._step(phase, optimizer, batch, lr_at(k, full, phase.lr))
                state.step += 1
                state.steps_done += 1
                state.epoch_loss += loss
                state.epoch_steps += 1
                ran += 1
                first = first or time.monotonic()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{phase.name} loss {loss:.4f}")
                if state.step == per_epoch or k + 1 >= total:
                    state.history.setdefault(phase.name, []).append(state.epoch_loss / state.epoch_steps)
                    state.epoch_loss, state.epoch_steps = 0.0, 0
                    if state.step == per_epoch:
                        state.epoch, state.step = state.epoch + 1, 0
                if phase.validate is not None and ((k + 1) % phase.eval_every == 0 or k + 1 >= total):
                    self._validate(phase, state, k + 1)
                    since = len(state.evals) - 1 - state.best
                    if phase.patience and since >= phase.patience and k + 1 < total:
                        logger.info(
                            "%s: %d validations without improvement: stopping after step %d, keeping step %d",
                            phase.name,
                            since,
                            k + 1,
                            state.evals[state.best]["step"],
                        )
                        total = self._cut(phase, state, total, k + 1, bar, "validation")
                if ran > 1 and phase.deadline is not None and k + 1 < total:
                    # steps vary (window lengths, checkpoints, validations): stop when the next one would not fit
                    over = self.elapsed() + (time.monotonic() - first) / (ran - 1) > phase.deadline
                    if self.dist.any(over) if phase.sharded else over:
                        logger.warning(
                            "%s: the time budget ran out after %d of %d steps: the result now depends on "
                            "this machine's speed (give a larger --time-budget to let validation decide)",
                            phase.name,
                            k + 1,
                            total,
                        )
                        total = self._cut(phase, state, total, k + 1, bar, "time budget")
                        self.stopped_early = True
                due = self.every == 0 or time.monotonic() - self.last_save >= self.every
                if self.dist.any(due) if phase.sharded else due:
                    self.save(state, optimizer)
            self._restore_best(state)
        if phase.after is not None:
            phase.after()
        state.phase += 1
        state.epoch = state.step = state.epoch_steps = 0
        state.epoch_loss = 0.0
        state.evals, state.best, state.best_params = [], None, None
        if phase.loss is None or phase.validate is not None:
            self.save(state, None)  # after a synchronisation point or a restored best: never redo it on resume
        return False

    def _validate(self, phase: Phase, state: State, step: int) -> None:
        metrics = phase.validate()
        value = phase.score(metrics)
        state.evals.append(
            {
                "step": step,
                "epoch": round(step / max(1, phase.steps_per_epoch(self.batch)), 2),
                **metrics,
                "score": round(value, 5),
            }
        )
        if state.best is None or value < state.evals[state.best]["score"]:
            state.best = len(state.evals) - 1
            state.best_params = {n: self.params[n].detach().clone() for n in phase.params}
        state.history[f"{phase.name} validation"] = list(state.evals)
        state.history[f"{phase.name} kept"] = [state.evals[state.best]["step"]]
        logger.info(
            "%s validation at step %d: %s (score %.4f%s)",
            phase.name,
            step,
            ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
            value,
            ", best" if state.best == len(state.evals) - 1 else "",
        )

    def _restore_best(self, state: State) -> None:
        """Put the kept checkpoint's weights back (no-op without validation)."""
        if state.best_params is None:
            return
        with torch.no_grad():
            for name, value in state.best_params.items():
                self.params[name].copy_(value)

    def _cut(self, phase: Phase, state: State, total: int, steps: int, bar, why: str) -> int:
        """End ``phase`` after ``steps`` (validation stopped improving, or the time budget ran out)."""
        state.stopped_by[phase.name] = why
        if state.epoch_steps:  # the cut epoch's loss is recorded too: a phase that ran is in the report
            state.history.setdefault(phase.name, []).append(state.epoch_loss / state.epoch_steps)
            state.epoch_loss, state.epoch_steps = 0.0, 0
        if bar is not None:
            bar.total -= total - steps
            bar.refresh()
        state.planned[phase.name] = steps
        return steps

    def _step(self, phase: Phase, optimizer, batch: list[int], lr: float) -> float:
        mine = batch[self.dist.rank :: self.dist.world] if phase.sharded else batch
        optimizer.zero_grad(set_to_none=False)
        for p in optimizer.param_groups[0]["params"]:
            if p.grad is None:  # a rank with no window this step still joins the gradient sum
                p.grad = torch.zeros_like(p)
        total = torch.zeros(1)
        for w in mine:
            with self.autocast():
                loss = phase.loss(w) / len(batch)  # a sum over the whole batch, whichever rank holds it
            loss.backward()
            total += loss.detach().float().cpu()
        if phase.sharded:
            self.dist.sum_([p.grad for p in optimizer.param_groups[0]["params"]] + [total])
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        return float(total)
