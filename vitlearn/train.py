"""Training: a :class:`Trainer` (and its shortcut :func:`fit`) for any ``torch.utils.data.Dataset``, and
the book's small in-memory loop :func:`train_classifier`.

:class:`Trainer` is meant to be used for coursework unchanged::

    from torchvision import datasets, transforms
    from vitlearn.train import fit
    train_ds = datasets.ImageFolder("data/train", transforms.ToTensor())
    val_ds = datasets.ImageFolder("data/val", transforms.ToTensor())
    trainer = fit(model, train_ds, val_ds, epochs=30, batch_size=128, lr=5e-4, out_dir="runs/vit")
    trainer.history[-1]        # {'epoch': 30, 'train_loss': ..., 'val_acc': ..., 'lr': ...}

It runs AdamW (no weight decay on biases, norms, position embeddings and tables: :func:`param_groups`)
with a linear warm-up and a cosine decay, optional bf16/fp16 autocast (a gradient scaler for fp16),
gradient clipping, evaluation, a per-epoch log (``log.csv`` and ``log.json``) and checkpoints that
resume exactly: a run stopped after epoch K and resumed from its checkpoint computes the same losses
and ends with the same weights as an uninterrupted run. Resumption is at epoch boundaries; the
checkpoint holds the model, optimizer, scheduler and scaler states, the epoch, the log, and every
process's Python, NumPy and torch (CPU and CUDA) random states. The order of the examples needs no
saved state: epoch ``e`` is shuffled by a generator seeded with ``seed + e`` (``DistributedSampler``'s rule).

Under ``torchrun`` (``torch.distributed`` initialised before the trainer is built) the same code trains
with ``DistributedDataParallel``: each process reads its own shard of every epoch's permutation
(``DistributedSampler``, ``set_epoch``), ``batch_size`` is per process (the global batch is
``batch_size × world_size``), losses and accuracies are reduced over all processes, and only rank 0
writes the log and the checkpoint and shows the progress bar. ``scripts/train.py`` is the command line.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .utils import get_device

# Parameters that are not weights of a linear or conv map: decaying them towards 0 is not a
# regulariser but a bias (e.g. it pulls ViT-LSLA's dynamic scale, a temperature, towards 0).
_NO_DECAY_NAME_PARTS = ("pos_embed", "cls_token", "dist_token", "_table", "gamma")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Splits ``model``'s trainable parameters into an AdamW group with ``weight_decay`` and one without.

    No decay for: biases and every other 1-D parameter (norm weights, LayerScale γ), position
    embeddings and class tokens, relative-position and scale tables (names ending in ``_table``), and
    any name listed by the model's own ``no_weight_decay()`` (the timm convention).
    """
    extra = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim <= 1 or name in extra or any(part in name for part in _NO_DECAY_NAME_PARTS)
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(total_steps: int, warmup_steps: int, min_lr_ratio: float = 0.0) -> Callable[[int], float]:
    """The learning-rate factor at optimizer step ``s`` (for ``LambdaLR``): linear from ``1/warmup_steps``
    to 1 over ``warmup_steps`` steps, then a cosine from 1 down to ``min_lr_ratio`` at ``total_steps``."""
    def factor(s: int) -> float:
        if s < warmup_steps:
            return (s + 1) / warmup_steps
        t = min(1.0, (s - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    return factor


def _distributed() -> tuple[int, int]:
    """(rank, world size); (0, 1) when ``torch.distributed`` is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _Shard(Sampler):
    """Indices ``rank, rank + world, ...`` in order, without the padding ``DistributedSampler`` adds:
    evaluation then counts every example exactly once."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Trains a classifier ``model`` on ``train_ds`` (a ``Dataset`` of ``(image, label)`` pairs).

    Args:
        model: any ``nn.Module`` mapping images (B, C, H, W) to logits (B, num_classes). Moved to
            ``device``; under ``torch.distributed`` wrapped in ``DistributedDataParallel``.
        train_ds, val_ds: datasets of ``(image tensor, int label)``, e.g. torchvision's ``ImageFolder``
            with a ``ToTensor`` transform or a ``TensorDataset``. ``val_ds`` is evaluated after every epoch.
        epochs: length of the run (the schedule is laid out over all of it).
        batch_size: examples per step and process.
        lr, weight_decay: AdamW's peak learning rate and decoupled weight decay (:func:`param_groups`).
        warmup: linear warm-up length in epochs (may be fractional); then a cosine decay to
            ``min_lr_ratio × lr`` at the last step.
        label_smoothing: of the cross-entropy.
        amp: ``None``, ``"bf16"`` or ``"fp16"``: autocast dtype (fp16 adds a gradient scaler).
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
        seed: seeds Python, NumPy and torch at the start of the run (``seed + rank`` on each process,
            so dropout differs between processes) and, with ``seed + epoch``, the order of each epoch.
        out_dir: if given, ``checkpoint.pt`` (after every epoch), ``log.csv`` and ``log.json`` go here.
        resume: a checkpoint path, or ``True`` for ``out_dir/checkpoint.pt`` if it exists.
        progress: show a tqdm progress bar (``tqdm.auto``: a widget in notebooks, text elsewhere).
        num_workers, drop_last, eval_batch_size: passed on to the ``DataLoader`` objects.
        compile: ``torch.compile`` the model for training and evaluation.
        loss_fn: ``loss_fn(logits, labels)``; default cross-entropy with ``label_smoothing``.
        device: default :func:`vitlearn.get_device` (under torchrun with CUDA: ``cuda:LOCAL_RANK``).

    Attributes: ``history`` (one dict per finished epoch), ``epoch`` (epochs finished), ``model``,
    ``optimizer``, ``scheduler``, ``scaler``.
    """

    def __init__(self, model: nn.Module, train_ds: Dataset, val_ds: Dataset | None = None, *,
                 epochs: int, batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.05,
                 warmup: float = 0.0, min_lr_ratio: float = 0.0, label_smoothing: float = 0.0,
                 amp: str | None = None, grad_clip: float | None = None, seed: int = 0,
                 out_dir: str | os.PathLike | None = None, resume: bool | str | os.PathLike = False,
                 progress: bool = True, num_workers: int = 0, drop_last: bool = False,
                 eval_batch_size: int | None = None, compile: bool = False,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 device: torch.device | str | None = None):
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
        if amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
        self.rank, self.world_size = _distributed()
        if device is None:
            device = get_device()
            if device.type == "cuda" and self.world_size > 1:
                device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        self.device = torch.device(device)
        self.epochs, self.batch_size, self.seed = epochs, batch_size, seed
        self.grad_clip, self.progress = grad_clip, progress
        self.amp_dtype = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        self.loss_fn = loss_fn or (lambda logits, y: F.cross_entropy(logits, y, label_smoothing=label_smoothing))
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.config = dict(epochs=epochs, batch_size=batch_size, world_size=self.world_size, lr=lr,
                           weight_decay=weight_decay, warmup=warmup, min_lr_ratio=min_lr_ratio,
                           label_smoothing=label_smoothing, amp=amp, grad_clip=grad_clip, seed=seed)

        self.model = model.to(self.device)
        self._train_model = self.model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if compile:
            self._train_model = torch.compile(self._train_model)
        self._eval_model = torch.compile(self.model) if compile else self.model

        pin = self.device.type == "cuda"
        self.sampler = DistributedSampler(train_ds, num_replicas=self.world_size, rank=self.rank,
                                          shuffle=True, seed=seed, drop_last=drop_last)
        self._loader_gen = torch.Generator()     # seeds the workers' RNGs: reseeded every epoch
        self.train_loader = DataLoader(train_ds, batch_size=batch_size, sampler=self.sampler,
                                       num_workers=num_workers, drop_last=drop_last, pin_memory=pin,
                                       generator=self._loader_gen)
        self.val_loader = None
        if val_ds is not None:   # its own generator: evaluating leaves the global RNG alone
            self.val_loader = DataLoader(val_ds, batch_size=eval_batch_size or 2 * batch_size,
                                         sampler=_Shard(len(val_ds), self.rank, self.world_size),
                                         num_workers=num_workers, pin_memory=pin,
                                         generator=torch.Generator().manual_seed(seed))
        if len(self.train_loader) == 0:
            raise ValueError(f"no training step per epoch: {len(train_ds)} examples, batch_size {batch_size}, "
                             f"{self.world_size} processes, drop_last={drop_last}")

        self.optimizer = torch.optim.AdamW(param_groups(self.model, weight_decay), lr=lr)
        steps = epochs * len(self.train_loader)
        warmup_steps = round(warmup * len(self.train_loader))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(steps, warmup_steps, min_lr_ratio))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        self.epoch = 0
        self.history: list[dict] = []
        self._seeded = False
        self._pending_rng: dict | None = None

        if resume:
            path = Path(resume) if not isinstance(resume, bool) else (
                self.out_dir / "checkpoint.pt" if self.out_dir is not None else None)
            if path is None:
                raise ValueError("resume=True needs out_dir (or pass a checkpoint path)")
            if not isinstance(resume, bool) and not path.exists():
                raise FileNotFoundError(f"no checkpoint at {path}")
            if path.exists():
                self.load_checkpoint(path)

    # --- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed run needs (the random states are this process's only; see save_checkpoint)."""
        return dict(model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                    scheduler=self.scheduler.state_dict(), scaler=self.scaler.state_dict(),
                    epoch=self.epoch, history=self.history, config=self.config, rng=[_rng_state()])

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Writes :meth:`state_dict` with every process's random states; collective under
        torch.distributed (call it on all ranks), only rank 0 writes. Atomic: a crash mid-write
        leaves the previous checkpoint."""
        state = self.state_dict()
        if self.world_size > 1:
            rngs = [None] * self.world_size
            dist.all_gather_object(rngs, state["rng"][0])
            state["rng"] = rngs
        if self.rank == 0:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            torch.save(state, tmp)
            os.replace(tmp, path)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restores a checkpoint written by :meth:`save_checkpoint`; :meth:`fit` then continues at
        the epoch after the saved one."""
        state = torch.load(path, map_location=self.device, weights_only=False)
        for key in ("epochs", "batch_size", "world_size"):
            if state["config"][key] != self.config[key]:
                raise ValueError(f"checkpoint {path} was written with {key}={state['config'][key]}, this "
                                 f"trainer has {key}={self.config[key]}; exact resumption needs the same value")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.history = state["epoch"], state["history"]
        rng = state["rng"][self.rank]
        rng["torch"] = rng["torch"].cpu()
        if "cuda" in rng:
            rng["cuda"] = [s.cpu() for s in rng["cuda"]]
        self._pending_rng = rng      # applied when training starts, so code run in between cannot shift it

    # --- training ----------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _bar(self, iterable, desc: str):
        if not self.progress or self.rank != 0:
            return iterable
        from tqdm.auto import tqdm
        return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True)

    def _reduce(self, *values: float) -> list[float]:
        if self.world_size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64,
                         device=self.device if dist.get_backend() == "nccl" else "cpu")
        dist.all_reduce(t)
        return t.tolist()

    def _prepare_rng(self) -> None:
        if self._pending_rng is not None:
            _set_rng_state(self._pending_rng)
            self._pending_rng, self._seeded = None, True
        elif not self._seeded:
            random.seed(self.seed + self.rank)
            np.random.seed(self.seed + self.rank)
            torch.manual_seed(self.seed + self.rank)
            self._seeded = True

    def train_epoch(self) -> dict:
        """One epoch over the training set (epoch ``self.epoch + 1``); returns its log entry
        without evaluation."""
        self._prepare_rng()
        e = self.epoch
        self.sampler.set_epoch(e)
        self._loader_gen.manual_seed(self.seed + e)
        self._train_model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen, start = 0, time.perf_counter()
        bar = self._bar(self.train_loader, f"epoch {e + 1}/{self.epochs}")
        for x, y in bar:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            with self._autocast():
                logits = self._train_model(x)
                loss = self.loss_fn(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.detach().argmax(-1) == y).sum()
            seen += len(y)
            if bar is not self.train_loader and seen % (20 * self.batch_size) < self.batch_size:
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}")   # a sync, so only now and then
        loss_total, correct_total, seen_total = self._reduce(loss_sum.item(), correct.item(), seen)
        elapsed = time.perf_counter() - start
        return dict(epoch=e + 1, train_loss=loss_total / seen_total, train_acc=correct_total / seen_total,
                    lr=self.optimizer.param_groups[0]["lr"], time_s=elapsed, img_s=seen_total / elapsed)

    @torch.no_grad()
    def evaluate(self, loader: DataLoader | None = None) -> dict:
        """Mean loss and top-1 accuracy on ``loader`` (default the validation set), over all processes."""
        loader = loader or self.val_loader
        if loader is None:
            raise ValueError("no validation set: pass val_ds to the Trainer or a loader here")
        self.model.eval()
        loss_sum, correct, seen = 0.0, 0, 0
        for x, y in self._bar(loader, "eval"):
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with self._autocast():
                logits = self._eval_model(x)
            loss_sum += self.loss_fn(logits.float(), y).item() * len(y)
            correct += (logits.argmax(-1) == y).sum().item()
            seen += len(y)
        loss_sum, correct, seen = self._reduce(loss_sum, correct, seen)
        return dict(val_loss=loss_sum / seen, val_acc=correct / seen)

    def fit(self, stop_after: int | None = None) -> list[dict]:
        """Trains from ``self.epoch`` to ``epochs`` (or only up to epoch ``stop_after``, e.g. to fit a
        time slot: a later trainer with ``resume`` continues exactly); returns ``history``."""
        self._prepare_rng()
        last = self.epochs if stop_after is None else min(stop_after, self.epochs)
        while self.epoch < last:
            entry = self.train_epoch()
            if self.val_loader is not None:
                entry.update(self.evaluate())
            self.epoch += 1
            self.history.append(entry)
            if self.out_dir is not None:
                self.save_checkpoint(self.out_dir / "checkpoint.pt")
                if self.rank == 0:
                    self._write_log()
            if self.rank == 0 and self.progress:
                print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()),
                      flush=True)
        self.model.eval()
        return self.history

    def _write_log(self) -> None:
        (self.out_dir / "log.json").write_text(json.dumps(self.history, indent=1) + "\n")
        keys = list(dict.fromkeys(k for entry in self.history for k in entry))
        with open(self.out_dir / "log.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)


def fit(model: nn.Module, train_ds: Dataset, val_ds: Dataset | None = None, **kwargs) -> Trainer:
    """Builds a :class:`Trainer` with ``kwargs`` (``epochs`` is required), trains, and returns the
    trainer (its ``history``, ``model`` and checkpoints)."""
    trainer = Trainer(model, train_ds, val_ds, **kwargs)
    trainer.fit()
    return trainer


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on images ``x`` (n, C, H, W) with labels ``y`` (n,)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(y), batch_size):
        logits = model(x[i:i + batch_size].to(device))
        correct += (logits.argmax(-1).cpu() == y[i:i + batch_size]).sum().item()
    model.train(was_training)
    return correct / len(y)


def train_classifier(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    label_smoothing: float = 0.1,
    seed: int = 0,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, list[float]]:
    """Trains ``model`` in place on tensors already in memory; returns the per-epoch history
    ``{"loss": [...], "test_acc": [...]}``. Shuffling uses its own seeded generator, so a run is
    repeatable on a given machine. ``amp_dtype`` (e.g. ``torch.bfloat16``) enables autocast.
    Weight decay applies to linear and conv weights only (:func:`param_groups`).

    The book's chapters use this minimal loop (its stored outputs depend on its exact arithmetic:
    warm-up over the first 5% of the steps, label smoothing 0.1, no checkpoints). For datasets,
    checkpoints, resumption, mixed precision or several GPUs use :class:`Trainer` / :func:`fit`."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
    steps_per_epoch = math.ceil(len(y_train) / batch_size)
    total = epochs * steps_per_epoch
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    history: dict[str, list[float]] = {"loss": [], "test_acc": []}
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y_train), generator=g)
        running = 0.0
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x_train[idx].to(device), y_train[idx].to(device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = F.cross_entropy(model(xb), yb, label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item() * len(idx)
        history["loss"].append(running / len(y_train))
        if x_test is not None:
            history["test_acc"].append(evaluate(model, x_test, y_test))
    model.eval()
    return history
