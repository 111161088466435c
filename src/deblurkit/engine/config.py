"""Training / evaluation configs: YAML files validated on load, with ``key=value`` overrides.

A config is data. :func:`load_config` reads the YAML, applies ``--set`` style overrides
(``optim.lr=2e-4``, ``loss.0.weight=0.5``, values parsed as YAML scalars), then validates the
result against the dataclass schema below: unknown keys, missing required keys and wrong types
raise :class:`ConfigError` naming the file and the dotted key.

Paths. A relative path written in a config file is relative to **the folder of that file**, so
``deblurkit train configs/x.yaml`` works from any folder: ``photos: ../../shared/data/photos``
in ``configs/`` names ``<repo>/../shared/data/photos``. This holds for the keys of
:data:`PATH_KEYS` under ``data.train`` / ``data.val``, ``model.weights``, ``recipe`` and
``train.out_dir``. Paths given with ``--set`` are relative to the current folder, as on any
command line, and so is the default ``train.out_dir`` (``runs/<name>``) when the file sets none.
"""
from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml


class ConfigError(ValueError):
    """A config file is unreadable, or a key is unknown, missing or of the wrong type."""


@dataclass
class ModelSection:
    """``model:``: a registered network (``deblurkit.models.list_models()``) and constructor overrides."""

    name: str
    overrides: dict = field(default_factory=dict)
    init: Optional[str] = None  # e.g. "normal" for N(0, 0.02) (Blur2Blur's init_net)
    weights: Optional[str] = None  # start from these weights (fine-tuning)


@dataclass
class DataSection:
    """``data:``: ``train`` / ``val`` are ``{"type": <dataset>, **kwargs}``; see ``deblurkit.data``."""

    train: dict
    val: Optional[dict] = None
    batch_size: int = 8
    num_workers: int = 0


@dataclass
class OptimSection:
    """``optim:``: Adam or AdamW (``amsgrad``: the AMSGrad variant)."""

    type: str = "adam"
    lr: float = 1e-4
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    eps: float = 1e-8
    amsgrad: bool = False


@dataclass
class ScheduleSection:
    """``schedule:``: linear warm-up then ``cosine`` (to ``min_lr``), ``constant``, or ``linear``
    (constant, then linear decay to ``min_lr`` over the last ``decay_steps``; pix2pix's policy)."""

    type: str = "cosine"
    warmup_steps: int = 0
    min_lr: float = 1e-7
    decay_steps: Optional[int] = None  # ``linear`` only; None = 2/3 of train.total_steps


@dataclass
class TrainSection:
    """``train:``: loop length, precision, EMA, clipping, logging and checkpoint cadence."""

    total_steps: int
    out_dir: str = "runs/${name}"
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    grad_clip: Optional[float] = None  # max global L2 norm
    ema_decay: Optional[float] = None
    log_every: int = 50
    val_every: int = 1000
    ckpt_every: int = 500
    threads: Optional[int] = None  # torch.set_num_threads on CPU


@dataclass
class EvalSection:
    """``eval:``: protocol used for validation during training."""

    protocol: str = "standard"
    max_images: Optional[int] = None


@dataclass
class TrainConfig:
    """A whole training recipe. ``loss`` is a list of ``{"type", "weight", **kwargs}`` terms
    (``deblurkit.losses.LOSSES``), applied to every output of multi-scale networks. ``recipe`` is
    ``{"type": name, **args}`` naming the training procedure (``supervised`` by default; GAN and
    consistency recipes are registered by the systems, see ``deblurkit.engine.RECIPES``)."""

    name: str
    model: ModelSection
    data: DataSection
    train: TrainSection
    loss: list = field(default_factory=lambda: [{"type": "l1", "weight": 1.0}])
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    eval: EvalSection = field(default_factory=EvalSection)
    recipe: dict = field(default_factory=lambda: {"type": "supervised"})
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_CHOICES = {
    ("optim", "type"): {"adam", "adamw"},
    ("schedule", "type"): {"cosine", "constant", "linear"},
    ("train", "precision"): {"fp32", "bf16"},
}


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``"a.b.c=value"`` into (["a", "b", "c"], parsed YAML value).

    Raises:
        ConfigError: no ``=`` or an empty key.
    """
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. optim.lr=2e-4)")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Return a copy of ``raw`` with each ``key=value`` override set (creating dict levels;
    integer parts index lists)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        parts, value = parse_override(item)
        node: Any = out
        for i, p in enumerate(parts[:-1]):
            if isinstance(node, list):
                node = node[int(p)]
            else:
                node = node.setdefault(p, {})
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[: i + 1])} is not a mapping")
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return out


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _from_dict(hint, value, where)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # YAML reads 1e-4 as a string: accept numeric strings.
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if hint in (dict, list) or origin in (dict, list):
        base = origin or hint
        if not isinstance(value, base):
            raise ConfigError(f"{where}: expected a {base.__name__}, got {type(value).__name__}")
        return value
    return value


def _from_dict(cls: type, data: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: required key missing")
            continue
        kwargs[f.name] = _check_type(data[f.name], hints[f.name], key)
        choices = _CHOICES.get((where.split(".")[-1] if where else "", f.name))
        if choices is not None and kwargs[f.name] not in choices:
            raise ConfigError(f"{key}: {kwargs[f.name]!r} is not one of {sorted(choices)}")
    return cls(**kwargs)


def validate_config(raw: dict, source: str = "<config>") -> TrainConfig:
    """Validate a raw mapping into a :class:`TrainConfig`.

    Raises:
        ConfigError: naming ``source`` and the dotted key of the first problem.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        cfg = _from_dict(TrainConfig, raw, "")
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    for i, term in enumerate(cfg.loss):
        if not isinstance(term, dict) or "type" not in term:
            raise ConfigError(f"{source}: loss.{i} must be a mapping with a 'type'")
    for split in ("train", "val"):
        sec = getattr(cfg.data, split)
        if sec is not None and "type" not in sec:
            raise ConfigError(f"{source}: data.{split} needs a 'type' (dataset name)")
    if cfg.train.total_steps <= 0:
        raise ConfigError(f"{source}: train.total_steps must be > 0")
    if "type" not in cfg.recipe:
        cfg.recipe = {"type": "supervised", **cfg.recipe}
    cfg.train.out_dir = cfg.train.out_dir.replace("${name}", cfg.name)
    return cfg


#: Keys whose (relative) string values in a config file are paths, resolved against its folder.
PATH_KEYS = frozenset({
    "root", "path", "photos", "weights", "levin_path", "reblur_weights", "vgg_weights", "vgg19_weights",
    "encoder", "prior", "feature_encoder", "kernel_wizard", "out_dir",
})


def resolve_config_paths(raw: dict, folder: Path) -> dict:
    """A copy of the config ``raw`` whose relative paths (keys in :data:`PATH_KEYS`, in the
    sections named in the module docstring; strings or lists of strings) are joined to
    ``folder`` (the config file's folder). Absolute paths, ``~`` paths and ``${...}``
    templates are kept as written."""

    def fix(value: Any) -> Any:
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, str) and value and not value.startswith(("~", "/", "${")) \
                and not Path(value).is_absolute():
            return str(folder / value)
        return value

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: fix(v) if k in PATH_KEYS and not isinstance(v, dict) else walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out = copy.deepcopy(raw)
    data = out.get("data")
    if isinstance(data, dict):
        for split in ("train", "val"):
            if isinstance(data.get(split), dict):
                data[split] = walk(data[split])
    if isinstance(out.get("model"), dict) and "weights" in out["model"]:
        out["model"]["weights"] = fix(out["model"]["weights"])
    if isinstance(out.get("recipe"), dict):
        out["recipe"] = walk(out["recipe"])
    if isinstance(out.get("train"), dict) and "out_dir" in out["train"]:
        out["train"]["out_dir"] = fix(out["train"]["out_dir"])
    return out


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML training config, apply overrides, validate.

    Args:
        path: YAML file (``configs/<system>_<stage>_<dataset>.yaml``); relative paths in it are
            relative to its folder (see the module docstring).
        overrides: ``key=value`` strings (``--set`` on the CLI); paths in them are relative to
            the current folder.

    Raises:
        ConfigError: unreadable file, invalid YAML, or a schema problem (naming file and key).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML config (not UTF-8 text); give a configs/*.yaml file") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if raw is None:
        raise ConfigError(f"{path}: config file is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    raw = resolve_config_paths(raw, path.parent)
    return validate_config(apply_overrides(raw, list(overrides)), str(path))
