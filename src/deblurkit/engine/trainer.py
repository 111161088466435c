"""The training loop shared by the supervised recipes.

:class:`Trainer` runs a :class:`~deblurkit.engine.config.TrainConfig`: Adam/AdamW, linear warm-up
then cosine, global-norm gradient clipping, bf16 autocast, EMA of weights, TensorBoard logging,
periodic validation with the best checkpoint kept, and atomic checkpoints from which a killed run
resumes exactly (same parameters as an uninterrupted run: model, optimiser, EMA, RNG states and the
position inside the epoch's data order are all restored).

Under ``torchrun`` the same loop runs data-parallel (:mod:`deblurkit.engine.distributed`): the
process group is joined (NCCL on GPUs, gloo on the CPU), every trainable network in
``self.fwd`` is wrapped in DistributedDataParallel, ``data.batch_size`` is the **global** batch
(each of the ``W`` processes takes a contiguous ``batch_size / W`` slice of every batch, in the
same deterministic order as a one-process run, so resume stays exact), validation is sharded over
the processes and gathered, and rank 0 alone writes checkpoints, TensorBoard logs (losses
averaged over the processes) and the exported weights. See ``docs/distributed.md``.

Layout of a run folder (``train.out_dir``)::

    config.yaml          the validated config as run
    ckpt/last.pt         latest full training state (resume point)
    ckpt/best.pt         full state at the best validation PSNR
    weights.safetensors  final weights for inference (EMA when enabled) + weights.json
    tb/                  TensorBoard event files
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
import yaml
from torch import nn

from ..io.atomic import write_text_atomic
from ..losses import WeightedLoss
from ..models import build, get_descriptor, load_checkpoint
from . import distributed as ddp
from .checkpoint import (atomic_torch_save, capture_rng_state, load_resume_checkpoint, load_training_checkpoint,
                         restore_rng_state, save_with_previous)
from .config import TrainConfig
from .schedule import EMA, lr_at


class DeviceUnavailableError(RuntimeError, ValueError):
    """The device asked for (``--device``) does not exist on this computer."""


class RunExistsError(RuntimeError):
    """The run folder already holds a checkpoint and resume was not asked for."""


def build_dataset(spec: dict, where: str = "data"):
    """Instantiate a dataset from ``{"type": name, **kwargs}``.

    Types are the entries of :data:`deblurkit.data.DATASETS` (``paired``: GoPro layout,
    ``synthetic``: blur synthesised on the fly, and those the system modules register with
    :func:`deblurkit.data.register_dataset`).

    Raises:
        ValueError: unknown type or bad arguments, naming ``where``.
    """
    from ..data import DATASETS as registry

    spec = dict(spec)
    kind = spec.pop("type")
    if kind not in registry:
        raise ValueError(f"{where}.type: unknown dataset {kind!r}; known: {sorted(registry)}")
    try:
        return registry[kind](**spec)
    except TypeError as e:
        raise ValueError(f"{where}: bad arguments for dataset {kind!r}: {e}") from None


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"`` / ``"cuda[:i]"`` as given.

    Raises:
        DeviceUnavailableError: CUDA asked for but not available (a RuntimeError and a ValueError).
        ValueError: any other device type.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(f"--device {device}: CUDA is not available on this computer; use --device cpu "
                                     "or --device auto")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu, cuda, cuda:N or auto, got {str(device)!r}")
    return dev


def _batches(n: int, batch_size: int, seed: int, epoch: int, start: int) -> Iterator[list[int]]:
    """Index batches of one epoch: a permutation seeded by (seed, epoch), dropping the last
    partial batch, starting at batch ``start`` (for exact resume)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    for b in range(start, n // batch_size):
        yield perm[b * batch_size:(b + 1) * batch_size]


def _collate(items: list[dict]) -> dict:
    """Stack tensor fields of equal shape into a batch; anything else becomes a list."""
    out = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        if isinstance(vals[0], torch.Tensor) and all(v.shape == vals[0].shape for v in vals):
            out[k] = torch.stack(vals)
        else:
            out[k] = vals
    return out


RECIPES: dict[str, type] = {}


def register_recipe(name: str):
    """Class decorator: register a :class:`Trainer` subclass as training recipe ``name``.

    A config selects it with ``recipe: {type: name, **args}``; the subclass reads its arguments
    from ``self.recipe_args`` in :meth:`Trainer.setup` and overrides :meth:`Trainer.train_step`
    (and :meth:`Trainer.restore` when validation needs more than the main network).
    """
    def deco(cls):
        RECIPES[name] = cls
        cls.recipe_name = name
        return cls
    return deco


def make_trainer(cfg: TrainConfig, **kwargs) -> "Trainer":
    """The :class:`Trainer` (sub)class named by ``cfg.recipe["type"]``, constructed on ``cfg``.

    Raises:
        ValueError: unknown recipe, listing the known ones.
    """
    from .. import models  # noqa: F401 - system modules register their recipes on import
    from . import recipes  # noqa: F401

    kind = cfg.recipe.get("type", "supervised")
    if kind not in RECIPES:
        raise ValueError(f"{cfg.name}: recipe.type {kind!r} unknown; known: {sorted(RECIPES)}")
    return RECIPES[kind](cfg, **kwargs)


@register_recipe("supervised")
class Trainer:
    """Run a training config; the base class is the ``supervised`` recipe (loss on the main
    network's outputs against the sharp target).

    Recipes (GAN, frozen auxiliary networks, several inputs) subclass it: :meth:`setup` adds
    auxiliary networks with :meth:`add_aux` (trainable ones get their own optimiser, frozen ones
    are put in eval mode with gradients off), :meth:`train_step` does one iteration. Everything
    added with :meth:`add_aux` is saved in the checkpoints and restored on resume; the learning
    rate schedule scales every optimiser. Trainable networks are called through ``self.fwd[name]``
    (``"net"`` for the main one) so that distributed wrappers can be swapped in.

    Args:
        cfg: validated config (:func:`deblurkit.engine.load_config`).
        resume: continue from ``<out_dir>/ckpt/last.pt``. Without it, an existing checkpoint in
            the run folder raises :class:`RunExistsError` (nothing written is overwritten).
        progress: show a tqdm bar.
        on_step: optional callback ``(step, logs)`` after each optimiser step (tests use it).
        trust_pickle: on resume, also read a ``last.pt`` that needs full unpickling (written
            before the tensor-only format); unpickling can run code stored in the file.

    Distributed (``torchrun``): the constructor joins the process group and wraps the trainable
    networks after :meth:`setup` (and after loading a resumed state); ``self.fwd[name]`` then
    holds the wrappers while ``self.net`` / ``self.aux[name]`` stay the plain modules (save,
    EMA, export and validation use those). A wrapped network called with autograd off, or with
    all its parameters' ``requires_grad`` off (a GAN's frozen discriminator in the generator
    step), runs as the plain module. Class attribute ``find_unused_parameters`` (default True)
    is passed to DistributedDataParallel; a recipe whose every iteration uses every parameter
    may set it False for speed. On CUDA, BatchNorm layers of the trainable networks become
    SyncBatchNorm (class attribute ``sync_batchnorm``; MSDI-Net's official code synchronises its
    BatchNorm too); gloo has no SyncBatchNorm, so on the CPU their statistics stay per process.

    Raises:
        RunExistsError, ConfigError-like ValueError for bad dataset specs (or a global batch
        not divisible by the number of processes), KeyError for unknown models.
    """

    find_unused_parameters: bool = True
    sync_batchnorm: bool = True

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True,
                 on_step: Optional[Callable[[int, dict], None]] = None, trust_pickle: bool = False):
        self.cfg = cfg
        self.trust_pickle = trust_pickle
        self.out_dir = Path(cfg.train.out_dir)
        self.ckpt_dir = self.out_dir / "ckpt"
        self.progress = progress
        self.on_step = on_step
        last = self.ckpt_dir / "last.pt"
        if (last.exists() or last.with_name("previous.pt").exists()) and not resume:
            raise RunExistsError(f"{last if last.exists() else last.with_name('previous.pt')} exists: pass --resume to continue that run, or choose "
                                 f"another train.out_dir (--set train.out_dir=...)")
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.dist, device = ddp.init_from_env(cfg.train.device)
        if cfg.data.batch_size % self.dist.world_size:
            raise ValueError(f"{cfg.name}: data.batch_size {cfg.data.batch_size} is the global batch and "
                             f"must be divisible by the {self.dist.world_size} processes")
        self.device = resolve_device(device)
        torch.manual_seed(cfg.seed)
        self.descriptor = get_descriptor(cfg.model.name)
        self.net = build(cfg.model.name, **cfg.model.overrides)
        if cfg.model.init:
            from ..models import init_weights

            init_weights(self.net, cfg.model.init)
        if cfg.model.weights:
            load_checkpoint(self.net, cfg.model.weights)
        self.net.to(self.device)
        self.train_set = build_dataset(cfg.data.train, "data.train")
        if len(self.train_set) < cfg.data.batch_size:
            raise ValueError(f"data.train has {len(self.train_set)} items, fewer than one batch "
                             f"({cfg.data.batch_size})")
        self.val_set = build_dataset(cfg.data.val, "data.val") if cfg.data.val else None
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = self.make_optimizer(params)
        self.ema = EMA(self.net, cfg.train.ema_decay) if cfg.train.ema_decay else None
        self.criterion = WeightedLoss(cfg.loss)
        self.recipe_args = {k: v for k, v in cfg.recipe.items() if k != "type"}
        self.aux: dict[str, nn.Module] = {}
        self.aux_optimizers: dict[str, torch.optim.Optimizer] = {}
        self.fwd: dict[str, nn.Module] = {"net": self.net}
        self.step = 0
        self.best_psnr = -math.inf
        self._resumed_rng = False
        self.setup()
        if resume and (last.exists() or last.with_name("previous.pt").exists()):
            self._load(last)
        self._wrap_distributed()
        ddp.barrier()  # every rank has checked the run folder before rank 0 writes into it

    def _wrap_distributed(self) -> None:
        """Replace the trainable entries of ``self.fwd`` by DistributedDataParallel wrappers and
        give ranks > 0 their own random stream (rank 0 keeps the one-process stream)."""
        if not self.dist.active:
            return
        for name, module in list(self.fwd.items()):
            if self.sync_batchnorm and self.device.type == "cuda":
                module = ddp.convert_sync_batchnorm(module)
                if name == "net":
                    self.net = module
                else:
                    self.aux[name] = module
            self.fwd[name] = ddp.wrap(module, self.device, self.find_unused_parameters)
        if self.dist.rank > 0 and not self._resumed_rng:
            torch.manual_seed(self.cfg.seed * 1_000_003 + self.dist.rank)

    # ------------------------------------------------------------------ recipe hooks
    def setup(self) -> None:
        """Build auxiliary networks / losses from ``self.recipe_args`` (subclasses)."""
        if self.recipe_args:
            raise ValueError(f"{self.cfg.name}: recipe 'supervised' takes no arguments, got "
                             f"{sorted(self.recipe_args)}")

    def make_optimizer(self, params, *, lr: float | None = None, betas: tuple | None = None,
                       **overrides) -> torch.optim.Optimizer:
        """Adam or AdamW (``optim.type``) over ``params`` with the ``optim`` section's settings;
        ``lr``, ``betas`` and any of ``weight_decay`` / ``eps`` / ``amsgrad`` override them."""
        o = self.cfg.optim
        opt_cls = torch.optim.AdamW if o.type == "adamw" else torch.optim.Adam
        kw = {"weight_decay": o.weight_decay, "eps": o.eps, "amsgrad": o.amsgrad, **overrides}
        return opt_cls(params, lr=o.lr if lr is None else lr,
                       betas=tuple(o.betas if betas is None else betas), **kw)

    def add_aux(self, name: str, module: nn.Module, *, trainable: bool, lr: float | None = None,
                betas: tuple | None = None, **optim_kwargs) -> nn.Module:
        """Register an auxiliary network (moved to the device, saved in checkpoints).

        ``trainable=True`` gives it an optimiser of ``optim.type`` with ``lr`` (default
        ``optim.lr``) and ``betas`` (default ``optim.betas``); ``trainable=False`` freezes it for
        real: eval mode and ``requires_grad=False`` on every parameter.
        """
        module = module.to(self.device)
        self.aux[name] = module
        if trainable:
            self.aux_optimizers[name] = self.make_optimizer(module.parameters(), lr=lr, betas=betas,
                                                            **optim_kwargs)
            for g in self.aux_optimizers[name].param_groups:
                g.setdefault("initial_lr", g["lr"])
            self.fwd[name] = module
        else:
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)
        return module

    def apply_lr(self) -> float:
        """Set the scheduled learning rate of this step on every optimiser (auxiliary ones are
        scaled by their own base lr relative to ``optim.lr``); returns the main one."""
        cfg = self.cfg
        lr = lr_at(self.step, base_lr=cfg.optim.lr, total_steps=cfg.train.total_steps,
                   warmup_steps=cfg.schedule.warmup_steps, min_lr=cfg.schedule.min_lr,
                   kind=cfg.schedule.type, decay_steps=cfg.schedule.decay_steps)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        scale = lr / cfg.optim.lr if cfg.optim.lr else 1.0
        for opt in self.aux_optimizers.values():
            for g in opt.param_groups:
                g["lr"] = g["initial_lr"] * scale
        return lr

    def check_finite(self, loss: torch.Tensor, parts: dict) -> None:
        """Raise FloatingPointError (with the loss terms) when ``loss`` is NaN or infinite."""
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {self.step}: loss is {loss.item()} (parts {parts}); "
                                     f"lower optim.lr or enable train.grad_clip")

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """Validation restorer: (1, C, H, W) blurry in [0, 1] -> (1, C, H, W) restored.
        Recipes whose inference needs auxiliary networks override it."""
        return self.descriptor.primary_output(self.eval_net(x))

    def val_score(self, val: dict) -> float:
        """The validation number ``ckpt/best.pt`` maximises (kept as ``best_psnr``); default the
        mean PSNR, recipes may override (RSS-T: ``(PSNR + SSIM) / 2``)."""
        return val["psnr"]

    def autocast(self):
        """bf16 autocast on the training device when ``train.precision == "bf16"``, else a no-op
        context."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.cfg.train.precision == "bf16")

    # ------------------------------------------------------------------ state
    def state(self) -> dict:
        """The full training state saved in ``ckpt/*.pt``: step, model, optimizer, ema, aux,
        aux_optimizers, best_psnr, rng (+ every rank's under torchrun), world_size, config."""
        return {
            "step": self.step,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "aux": {k: m.state_dict() for k, m in self.aux.items()},
            "aux_optimizers": {k: o.state_dict() for k, o in self.aux_optimizers.items()},
            "best_psnr": self.best_psnr,
            "rng": capture_rng_state(),
            "rng_ranks": ddp.all_gather_objects(capture_rng_state()) if self.dist.active else None,
            "world_size": self.dist.world_size,
            "config": self.cfg.to_dict(),
        }

    def _load(self, path: Path) -> None:
        st, path = load_resume_checkpoint(path, trust_pickle=self.trust_pickle)
        saved_aux, built_aux = set(st.get("aux", {})), set(self.aux)
        if saved_aux != built_aux:
            raise ValueError(f"{path}: the checkpoint has auxiliary networks {sorted(saved_aux)} but this "
                             f"recipe builds {sorted(built_aux)}; resume with the config the run started with")
        try:
            self.net.load_state_dict(st["model"])
            self.optimizer.load_state_dict(st["optimizer"])
            if self.ema and st.get("ema") is not None:
                self.ema.load_state_dict(st["ema"])
            for k, sd in st.get("aux", {}).items():
                self.aux[k].load_state_dict(sd)
            for k, sd in st.get("aux_optimizers", {}).items():
                self.aux_optimizers[k].load_state_dict(sd)
        except (RuntimeError, ValueError, KeyError) as e:
            raise ValueError(f"{path}: does not match the network/optimiser of this config ({e}); "
                             f"resume with the config the run started with") from None
        self.step = int(st["step"])
        self.best_psnr = float(st.get("best_psnr", -math.inf))
        ranks = st.get("rng_ranks")
        if ranks and len(ranks) == self.dist.world_size:
            restore_rng_state(ranks[self.dist.rank])
            self._resumed_rng = True
        else:  # same process count as the saved run, or restarted on another count
            restore_rng_state(st["rng"])

    def save(self, name: str = "last.pt") -> Path:
        """Write the training state to ``ckpt/<name>`` (rank 0 writes; every rank must call it,
        the random states of all ranks are gathered)."""
        st = self.state()
        path = self.ckpt_dir / name
        if self.dist.main:
            (save_with_previous if name == "last.pt" else atomic_torch_save)(st, path)
        return path

    @property
    def eval_net(self) -> nn.Module:
        """The network validated and exported: the EMA copy when ``train.ema_decay`` is set, else
        the live one."""
        return self.ema.module if self.ema else self.net

    # ------------------------------------------------------------------ loop
    def _data(self) -> Iterator[dict]:
        bs = self.cfg.data.batch_size
        spe = len(self.train_set) // bs
        epoch, start = divmod(self.step, spe)
        loader_kw = dict(num_workers=self.cfg.data.num_workers, collate_fn=_collate,
                         pin_memory=self.device.type == "cuda")
        while True:
            if hasattr(self.train_set, "set_epoch"):
                self.train_set.set_epoch(epoch)
            batches = list(_batches(len(self.train_set), bs, self.cfg.seed, epoch, start))
            if self.dist.active:
                batches = [ddp.shard_batch(b, self.dist.rank, self.dist.world_size) for b in batches]
            yield from torch.utils.data.DataLoader(self.train_set, batch_sampler=batches, **loader_kw)
            epoch, start = epoch + 1, 0

    def train_step(self, batch: dict) -> dict:
        """One supervised iteration: ``loss(net(lq), gt)``; subclasses replace it."""
        lr = self.apply_lr()
        lq = batch["lq"].to(self.device, non_blocking=True)
        gt = batch["gt"].to(self.device, non_blocking=True)
        self.net.train()
        with self.autocast():
            out = self.fwd["net"](lq)
        loss, parts = self.criterion(out, gt)
        return self.optimise(loss, parts, lr)

    def optimise(self, loss: torch.Tensor, parts: dict, lr: float, *, clip: Optional[float] = None,
                 loss_scale: float = 1.0, finish: bool = True) -> dict:
        """The main network's update: NaN/inf check, zero grad, backward, global-norm clipping
        (``clip``, default ``train.grad_clip``), ``optimizer.step()``; with ``finish`` also the
        EMA update and ``self.step += 1`` (:meth:`finish_step`). Returns the logs ``{"loss"
        (times ``loss_scale``), "lr", **parts, "grad_norm"}``."""
        self.check_finite(loss, parts)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        logs = {"loss": float(loss.detach()) * loss_scale, "lr": lr, **parts}
        clip = self.cfg.train.grad_clip if clip is None else clip
        if clip:
            logs["grad_norm"] = float(nn.utils.clip_grad_norm_(self.net.parameters(), clip))
        self.optimizer.step()
        if finish:
            self.finish_step()
        return logs

    def finish_step(self) -> None:
        """End of an iteration: EMA update of the main network, ``self.step += 1``."""
        if self.ema:
            self.ema.update(self.net)
        self.step += 1

    def val_count(self) -> int:
        """How many ``data.val`` items a validation scores: all, or ``eval.max_images``."""
        n = len(self.val_set)
        return min(n, self.cfg.eval.max_images) if self.cfg.eval.max_images else n

    @torch.no_grad()
    def validate(self) -> dict:
        """Mean PSNR / SSIM (``eval.protocol``) of the EMA (or live) network on ``data.val``,
        images centre-cropped to the model's size multiple. Distributed: the images are split
        over the processes and the rows gathered (every rank returns the same means, equal to
        a one-process validation); every rank must call it."""
        from .evaluator import evaluate_indexed

        net = self.eval_net
        net.eval()
        m = self.descriptor.size_multiple
        n = self.val_count()

        def pair(i):
            it = self.val_set[i]
            h, w = it["lq"].shape[-2:]
            hh, ww = h - h % m, w - w % m
            t, l = (h - hh) // 2, (w - ww) // 2
            return it["name"], it["lq"][:, t:t + hh, l:l + ww], it["gt"][:, t:t + hh, l:l + ww]

        def restore(x):
            with self.autocast():
                return self.restore(x.to(self.device)).float()

        res = evaluate_indexed(restore, pair, n, self.cfg.eval.protocol, progress=False)
        return res.mean

    def fit(self) -> dict:
        """Train until ``train.total_steps``; returns the last logs (and validation means).
        Distributed: logged values are averaged over the processes at each logging step."""
        cfg = self.cfg
        main = self.dist.main
        writer = bar = None
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.out_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=self.step or None)
        if self.progress and main:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.train.total_steps, initial=self.step, desc=cfg.name, unit="step")
        logs: dict = {}
        t0 = time.time()
        data = self._data()
        try:
            while self.step < cfg.train.total_steps:
                logs = self.train_step(next(data))
                if self.step % cfg.train.log_every == 0 or self.step == cfg.train.total_steps:
                    logs = ddp.mean_across_ranks(logs, self.device)
                    if writer is not None:
                        for k, v in logs.items():
                            writer.add_scalar(f"train/{k}", v, self.step)
                if self.val_set is not None and (self.step % cfg.train.val_every == 0
                                                 or self.step == cfg.train.total_steps):
                    val = self.validate()
                    logs.update({f"val_{k}": v for k, v in val.items()})
                    if writer is not None:
                        for k, v in val.items():
                            writer.add_scalar(f"val/{k}", v, self.step)
                    score = self.val_score(val)
                    if score > self.best_psnr:
                        self.best_psnr = score
                        self.save("best.pt")
                if self.step % cfg.train.ckpt_every == 0 or self.step == cfg.train.total_steps:
                    self.save("last.pt")
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "lr", "val_psnr")})
                if self.on_step is not None:
                    self.on_step(self.step, logs)
        finally:
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        logs["elapsed_s"] = time.time() - t0
        if main:
            self.export(self.out_dir / "weights.safetensors")
        ddp.barrier()  # the exported weights exist for every rank when fit returns
        return logs

    def export(self, path: str | Path) -> Path:
        """Write inference weights (EMA when enabled) as safetensors plus a JSON sidecar
        ``{"model", "overrides", "step"}`` that :class:`deblurkit.inference.Deblurrer` reads."""
        return export_weights(self.eval_net.state_dict(), path, self.cfg.model.name,
                              self.cfg.model.overrides, {"step": self.step, "config": self.cfg.name})


def export_weights(state_dict: dict, path: str | Path, model: str, overrides: dict, extra: dict | None = None) -> Path:
    """Save ``state_dict`` as safetensors at ``path`` and ``<path>.json`` describing the network.

    The JSON sidecar has ``model`` (registry name), ``overrides`` (constructor kwargs) and
    ``weights`` (the safetensors file name), so the pair is self-describing.
    """
    from ..models import save_safetensors

    path = Path(path)
    save_safetensors({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, path)
    meta = {"model": model, "overrides": dict(overrides), "weights": path.name, **(extra or {})}
    write_text_atomic(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return path


def export_from_checkpoint(ckpt: str | Path, out: str | Path, use_ema: bool = True, *,
                           trust_pickle: bool = False) -> Path:
    """Export inference weights from a training checkpoint (``ckpt/last.pt`` or ``best.pt``).

    The checkpoint is read with ``torch.load(weights_only=True)``; ``trust_pickle`` also reads a
    file that needs full unpickling (which can run code stored in it). Raises the errors of
    :func:`deblurkit.engine.checkpoint.load_training_checkpoint`."""
    st = load_training_checkpoint(ckpt, trust_pickle=trust_pickle)
    cfg = st["config"]
    sd = st["ema"] if use_ema and st.get("ema") is not None else st["model"]
    sd = {k: v for k, v in sd.items() if not k.startswith("__ema")}
    return export_weights(sd, out, cfg["model"]["name"], cfg["model"].get("overrides", {}),
                          {"step": st["step"], "config": cfg["name"]})


