"""Reading, checking and writing network weights; recognising a checkpoint's architecture.

Official releases wrap their state dicts in different ways; :func:`read_state_dict` undoes all of
them:

- ``{'params': sd}`` / ``{'params_ema': sd}`` (BasicSR; when both exist ``params`` is taken,
  as BasicSR's own ``param_key='params'`` default does; pass ``key='params_ema'`` for the EMA
  weights),
- ``{'state_dict': sd}``, ``{'model_state_dict': sd}``, ``{'model': sd}`` (chosj95/MIMO-UNet),
  ``{'deblurring_state_dict': sd}`` (MSDI-Net), ``{'net_g': sd}``; wrappers may nest and may hold
  other entries (optimizer, epoch) beside the weights,
- ``module.`` (``DataParallel``) and ``_orig_mod.`` (``torch.compile``) prefixes on every key,
- ``.safetensors`` files (recognised by content, whatever the suffix).

``.pth`` / ``.pt`` files are read with ``torch.load(weights_only=True)``; a file that needs full
unpickling (it executes code from the file) is refused unless ``allow_pickle=True`` is passed for
a trusted file (the commands' ``--trust-pickle`` option).
"""
from __future__ import annotations

import contextlib

import inspect
import json
import os
import pickle
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..io.atomic import atomic_path
from .registry import _entry, build, list_models

__all__ = [
    "WRAPPER_KEYS",
    "CheckpointReadError",
    "CheckpointMismatchError",
    "StateDictDiff",
    "read_state_dict",
    "unwrap_state_dict",
    "diff_state_dicts",
    "load_checkpoint",
    "save_safetensors",
    "detect_architecture",
    "describe_checkpoint",
]

#: Wrapper keys unwrapped by :func:`unwrap_state_dict`, in order of preference.
WRAPPER_KEYS: tuple[str, ...] = (
    "params",
    "params_ema",
    "state_dict",
    "model_state_dict",
    "model",
    "deblurring_state_dict",
    "blurring_state_dict",  # ASPDC ReBlurringNet.pth
    "net_g",
)
_PREFIXES = ("module.", "_orig_mod.")
_MAX_LISTED = 50
_ORDER_KEY = "deblurkit.key_order"  # safetensors metadata entry: JSON list of keys in state-dict order


class CheckpointReadError(ValueError):
    """A checkpoint file cannot be read or holds no state dict; the message names the file."""


class CheckpointMismatchError(RuntimeError):
    """A state dict does not fit a network.

    Attributes: ``path`` (file or None), ``missing`` (keys of the network absent from the file),
    ``unexpected`` (keys of the file absent from the network), ``wrong_shape`` (list of
    ``(key, expected_shape, got_shape)``). The message lists all three and names the file.
    """

    def __init__(self, message: str, *, path=None, missing=(), unexpected=(), wrong_shape=()):
        super().__init__(message)
        self.path = path
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.wrong_shape = list(wrong_shape)


@dataclass
class StateDictDiff:
    """Differences between an expected (network) and a given (file) state dict."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong_shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    matched: int = 0

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_shape)

    @property
    def score(self) -> float:
        """Keys present in both with equal shape / keys in either (1.0 = exact)."""
        union = self.matched + len(self.wrong_shape) + len(self.missing) + len(self.unexpected)
        return self.matched / union if union else 0.0


def _shape(v: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in (v.shape if hasattr(v, "shape") else v))


def diff_state_dicts(expected: Mapping[str, Any], got: Mapping[str, Any]) -> StateDictDiff:
    """Compare key sets and shapes. Values are tensors or shapes. Lists keep each dict's order."""
    d = StateDictDiff()
    for k, v in expected.items():
        if k not in got:
            d.missing.append(k)
        elif _shape(v) != _shape(got[k]):
            d.wrong_shape.append((k, _shape(v), _shape(got[k])))
        else:
            d.matched += 1
    d.unexpected = [k for k in got if k not in expected]
    return d


# ----------------------------------------------------------------------------------------- read
def _strip_prefixes(sd: dict[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    stripped = ""
    changed = True
    while changed and sd:
        changed = False
        for p in _PREFIXES:
            if all(k.startswith(p) for k in sd):
                sd = OrderedDict((k[len(p):], v) for k, v in sd.items())
                stripped += p
                changed = True
    return sd, stripped


def _unwrap(obj: Any, key: str | None, source: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    info: dict[str, Any] = {"wrapper": [], "stripped_prefix": "", "dropped": []}
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
        info["wrapper"].append("<nn.Module>")
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            keys = list(obj) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointReadError(f"{source}: no entry {key!r} in the checkpoint (top level: {keys})")
        obj = obj[key]
        info["wrapper"].append(key)
    for _ in range(8):
        if not isinstance(obj, Mapping):
            raise CheckpointReadError(
                f"{source}: expected a dict of tensors, found {type(obj).__name__}"
            )
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            break
        inner = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            tensors = OrderedDict((k, v) for k, v in obj.items() if isinstance(v, Tensor))
            if not tensors:
                raise CheckpointReadError(
                    f"{source}: holds no tensors and none of the known wrappers "
                    f"{list(WRAPPER_KEYS)}; top-level keys: {list(obj)[:20]}"
                )
            info["dropped"] = [k for k in obj if not isinstance(obj[k], Tensor)]
            obj = tensors
            break
        obj = obj[inner]
        info["wrapper"].append(inner)
    else:
        raise CheckpointReadError(f"{source}: wrappers nested too deep: {info['wrapper']}")
    sd = OrderedDict((str(k), v) for k, v in obj.items())
    sd, info["stripped_prefix"] = _strip_prefixes(sd)
    return sd, info


def unwrap_state_dict(obj: Any, key: str | None = None) -> dict[str, Tensor]:
    """Extract the flat ``{key: Tensor}`` state dict from a loaded checkpoint object.

    Undoes the wrappers in :data:`WRAPPER_KEYS` (first one present wins, repeatedly), an
    ``nn.Module`` object, and ``module.`` / ``_orig_mod.`` prefixes shared by every key.
    Non-tensor entries beside tensors (no wrapper) are dropped. ``key`` picks a top-level
    entry explicitly (e.g. ``'params_ema'``).

    Raises:
        CheckpointReadError: no tensors found / ``key`` absent.
    """
    return _unwrap(obj, key, "<object>")[0]


def pickle_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (raised by ``torch.load(weights_only=True)``) means "this is a pickle that
    holds objects other than tensors and plain containers" (only full unpickling, which can run
    code, would read it), as opposed to "this is not a PyTorch file at all"."""
    text = str(exc)
    return isinstance(exc, pickle.UnpicklingError) and ("Unsupported global" in text or "can still be loaded" in text)


def _sniff_format(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    return "safetensors" if path.suffix.lower() == ".safetensors" else "torch"


def _load_safetensors(path: Path, map_location: Any) -> dict[str, Tensor]:
    """Load a safetensors file, restoring the key order :func:`save_safetensors` records."""
    from safetensors import safe_open

    device = "cpu" if map_location is None else str(map_location)
    with safe_open(str(path), framework="pt", device=device) as fh:
        keys = list(fh.keys())
        meta = fh.metadata() or {}
        order = keys
        try:
            recorded = json.loads(meta.get(_ORDER_KEY, "null"))
            if isinstance(recorded, list) and sorted(recorded) == sorted(keys):
                order = recorded
        except ValueError:
            pass
        return OrderedDict((k, fh.get_tensor(k)) for k in order)


def _read_checkpoint(
    path: str | os.PathLike,
    map_location: Any = "cpu",
    key: str | None = None,
    allow_pickle: bool = False,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if not p.is_file():
        raise CheckpointReadError(f"{p}: not a file")
    try:
        fmt = _sniff_format(p)
    except OSError as e:
        raise CheckpointReadError(f"{p}: cannot open ({e})") from e
    if fmt == "safetensors":
        try:
            obj: Any = _load_safetensors(p, map_location)
        except Exception as e:  # SafetensorError, OSError, ...
            raise CheckpointReadError(f"{p}: not a readable safetensors file ({e})") from e
    else:
        try:
            obj = torch.load(p, map_location=map_location, weights_only=not allow_pickle)
        except pickle.UnpicklingError as e:
            if pickle_refused(e):
                raise CheckpointReadError(
                    f"{p}: refused: besides tensors it holds Python objects, and unpickling them can "
                    "run code stored in the file; only if you trust the file, give --trust-pickle (offered by "
                    "deblurkit inspect, export, train and msdi split-parts)"
                ) from None
            raise CheckpointReadError(f"{p}: not a checkpoint (neither a PyTorch nor a safetensors file)") from None
        except Exception as e:  # corrupt files surface as many error types
            if p.stat().st_size == 0:
                raise CheckpointReadError(f"{p}: empty file, not a checkpoint") from None
            raise CheckpointReadError(f"{p}: not a readable PyTorch checkpoint, truncated or corrupt "
                                      f"({str(e)[:200]})") from None
    sd, info = _unwrap(obj, key, str(p))
    info["format"] = fmt
    info["path"] = str(p)
    return sd, info


def read_state_dict(
    path: str | os.PathLike,
    map_location: Any = "cpu",
    *,
    key: str | None = None,
    allow_pickle: bool = False,
) -> dict[str, Tensor]:
    """Read a ``.pth``/``.pt``/``.safetensors`` checkpoint and return its flat state dict.

    Unwrapping as in :func:`unwrap_state_dict` (see the module docstring for the wrappers).

    Args:
        path: checkpoint file.
        map_location: device for the tensors (``torch.load`` ``map_location``).
        key: take this top-level entry instead of guessing (e.g. ``'params_ema'``).
        allow_pickle: allow full unpickling for files ``weights_only`` refuses (trusted files only).

    Returns:
        ``OrderedDict`` key -> tensor, in file order.

    Raises:
        FileNotFoundError: no such file.
        CheckpointReadError: unreadable / corrupt / not a state dict (names the file).
    """
    return _read_checkpoint(path, map_location, key, allow_pickle)[0]


# ----------------------------------------------------------------------------------------- load
def _fmt_list(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f", ... and {more} more" if more > 0 else "")


def _mismatch_message(what: str, target: str, d: StateDictDiff, hint: str) -> str:
    lines = [
        f"{what} does not fit {target}: {len(d.missing)} missing, {len(d.unexpected)} unexpected, "
        f"{len(d.wrong_shape)} wrong-shape key(s)"
    ]
    if d.missing:
        lines.append(f"  missing (in the network, not in the file): {_fmt_list(d.missing)}")
    if d.unexpected:
        lines.append(f"  unexpected (in the file, not in the network): {_fmt_list(d.unexpected)}")
    if d.wrong_shape:
        lines.append("  wrong shape (key: expected by the network, got in the file):")
        for k, exp, got in d.wrong_shape[:_MAX_LISTED]:
            lines.append(f"    {k}: expected {exp}, got {got}")
        if len(d.wrong_shape) > _MAX_LISTED:
            lines.append(f"    ... and {len(d.wrong_shape) - _MAX_LISTED} more")
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def _architecture_hint(sd: Mapping[str, Tensor]) -> str:
    try:
        found = [(n, o) for n, o, d in _rank(sd, min_score=1.0) if d.exact]
    except Exception:  # a hint must never hide the real error
        return ""
    if not found:
        return ""
    return "  the file matches: " + "; ".join(_call_string(n, o) for n, o in found[:3])


def _call_string(name: str, overrides: Mapping[str, Any]) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    return f"build({name!r}{', ' if args else ''}{args})"


def load_checkpoint(
    net: nn.Module,
    path: str | os.PathLike,
    strict: bool = True,
    map_location: Any = "cpu",
    *,
    key: str | None = None,
    allow_pickle: bool = False,
) -> nn.Module:
    """Load the weights in ``path`` into ``net`` (in place) and return ``net``.

    The file is read by :func:`read_state_dict` (wrappers and ``module.`` prefixes undone) and
    compared with ``net.state_dict()`` before anything is copied, so a failed load leaves ``net``
    untouched. Tensors are cast to the network's dtype/device by ``load_state_dict``.

    Args:
        net: the network (e.g. ``build('mimo_unet')``).
        path: ``.pth`` / ``.pt`` / ``.safetensors`` file.
        strict: require identical key sets. With ``strict=False`` missing and unexpected keys
            are skipped with a warning; wrong shapes still raise.
        map_location, key, allow_pickle: as in :func:`read_state_dict`.

    Raises:
        FileNotFoundError, CheckpointReadError: see :func:`read_state_dict`.
        CheckpointMismatchError: missing/unexpected keys (strict) or wrong shapes; the message
            names the file, lists the keys with expected and found shapes, and names a registered
            architecture the file matches when there is one.
    """
    sd, _ = _read_checkpoint(path, map_location, key, allow_pickle)
    d = diff_state_dicts(net.state_dict(), sd)
    if d.wrong_shape or (strict and not d.exact):
        msg = _mismatch_message(
            f"checkpoint {str(path)!r}", type(net).__name__ + (" (strict)" if strict else ""), d,
            _architecture_hint(sd),
        )
        raise CheckpointMismatchError(
            msg, path=str(path), missing=d.missing, unexpected=d.unexpected, wrong_shape=d.wrong_shape
        )
    if strict:
        net.load_state_dict(sd, strict=True)
    else:
        if d.missing or d.unexpected:
            warnings.warn(
                f"{path}: loaded non-strictly; {len(d.missing)} missing "
                f"({_fmt_list(d.missing[:5])}), {len(d.unexpected)} unexpected "
                f"({_fmt_list(d.unexpected[:5])})",
                stacklevel=2,
            )
        net.load_state_dict({k: v for k, v in sd.items() if k not in set(d.unexpected)}, strict=False)
    return net


# ----------------------------------------------------------------------------------------- save
def save_safetensors(
    state_dict: Mapping[str, Tensor] | nn.Module,
    path: str | os.PathLike,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``state_dict`` (or a module's) to a ``.safetensors`` file atomically.

    Tensors are detached, moved to the CPU and made contiguous (shared storage is copied).
    The state-dict key order (safetensors sorts keys) is kept in the metadata entry
    ``deblurkit.key_order`` and restored by :func:`read_state_dict`; ``format`` is set to ``pt``.
    The file is written to a temporary name in the target folder and renamed over ``path``,
    so an existing file is never left half-written. Parent folders are created.

    Returns:
        ``Path(path)``.

    Raises:
        TypeError: a value is not a tensor, or a metadata value is not a string.
    """
    from safetensors.torch import save_file

    if isinstance(state_dict, nn.Module):
        state_dict = state_dict.state_dict()
    tensors: dict[str, Tensor] = {}
    for k, v in state_dict.items():
        if not isinstance(v, Tensor):
            raise TypeError(f"save_safetensors: {k!r} is a {type(v).__name__}, not a tensor")
        tensors[str(k)] = v.detach().to("cpu").contiguous().clone()
    meta: dict[str, str] | None = None
    if metadata is not None:
        bad = [k for k, v in metadata.items() if not isinstance(v, str)]
        if bad:
            raise TypeError(f"save_safetensors: metadata values must be strings: {bad}")
        meta = dict(metadata)
    meta = {"format": "pt", **(meta or {}), _ORDER_KEY: json.dumps(list(tensors))}
    out = Path(path)
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return out


# --------------------------------------------------------------------------------------- detect
_INIT_FUNCS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
               "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
               "orthogonal_", "sparse_")


@contextlib.contextmanager
def _skip_weight_init():
    """Make ``torch.nn.init`` functions no-ops while building shape-only (meta) networks.

    Random initialisation on the meta device computes nothing but, for some initialisers, pulls in
    heavy imports (``torch._dynamo``); only key names and shapes are needed here.
    """
    saved = {f: getattr(torch.nn.init, f) for f in _INIT_FUNCS if hasattr(torch.nn.init, f)}
    try:
        for f in saved:
            setattr(torch.nn.init, f, lambda tensor, *a, **k: tensor)
        yield
    finally:
        for f, fn in saved.items():
            setattr(torch.nn.init, f, fn)


def _expected_state(name: str, config: Mapping[str, Any]) -> nn.Module:
    """Build ``name`` without allocating weights (meta device), falling back to the CPU."""
    try:
        with torch.device("meta"), _skip_weight_init():
            return build(name, **config)
    except (TypeError, ValueError, KeyError):
        raise
    except Exception:
        return build(name, **config)


_SHAPE_CACHE: dict[tuple[str, int, str], dict[str, tuple[int, ...]]] = {}


def _expected_shapes(name: str, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of ``build(name, **config).state_dict()``, cached."""
    factory = _entry(name)[1]
    ident = (name, id(factory), repr(sorted(config.items())))
    if ident not in _SHAPE_CACHE:
        net = _expected_state(name, config)
        _SHAPE_CACHE[ident] = OrderedDict((k, _shape(v)) for k, v in net.state_dict().items())
    return _SHAPE_CACHE[ident]


def _full_defaults(name: str) -> dict[str, Any]:
    """Constructor defaults of ``name``: signature defaults updated by the descriptor's."""
    desc, factory = _entry(name)
    out: dict[str, Any] = {}
    try:
        for p in inspect.signature(factory).parameters.values():
            if p.default is not p.empty:
                out[p.name] = p.default
    except (TypeError, ValueError):
        pass
    out.update(desc.defaults)
    return out


def _rank(
    state_dict: Mapping[str, Any], min_score: float = 0.5
) -> list[tuple[str, dict[str, Any], StateDictDiff]]:
    sd: Mapping[str, Any] = state_dict
    if not (sd and all(isinstance(v, Tensor) for v in sd.values())):
        sd = _unwrap(state_dict, None, "<state dict>")[0]
    else:
        sd, _ = _strip_prefixes(OrderedDict(sd))
    results: list[tuple[str, dict[str, Any], StateDictDiff]] = []
    for name in list_models():
        desc = _entry(name)[0]
        defaults = _full_defaults(name)
        configs: list[dict[str, Any]] = [{}]
        if desc.infer_config is not None:
            try:
                guess = dict(desc.infer_config(sd) or {})
            except Exception:
                guess = {}
            missing = object()
            overrides = {k: v for k, v in guess.items() if defaults.get(k, missing) != v}
            if overrides:
                configs.append(overrides)
        for ov in configs:
            try:
                shapes = _expected_shapes(name, ov)
            except Exception:
                continue
            d = diff_state_dicts(shapes, sd)
            if d.exact or d.score >= min_score:
                results.append((name, ov, d))
    results.sort(key=lambda r: (not r[2].exact, -r[2].score, len(r[1]), r[0]))
    return results


def detect_architecture(
    state_dict: Mapping[str, Any], min_score: float = 0.5
) -> list[tuple[str, dict[str, Any]]]:
    """Registered networks (with constructor overrides) whose state dict fits ``state_dict``.

    Every registered network is built (on the meta device, no weights allocated) with its
    official defaults and with the configuration its descriptor's ``infer_config`` derives from
    the shapes (e.g. MIMO-UNet's ``base_channel`` and ``num_res``); key sets and shapes are
    compared. ``state_dict`` may still be wrapped (``{'model': ...}``, ``module.`` prefixes).

    Returns:
        ``[(name, overrides), ...]``: exact matches first (fewest overrides first), then partial
        matches with score (keys equal in name and shape / keys in either) >= ``min_score``,
        best first. Empty if nothing fits. ``build(name, **overrides)`` builds a match.
    """
    return [(n, ov) for n, ov, _ in _rank(state_dict, min_score)]


def describe_checkpoint(
    path: str | os.PathLike, *, key: str | None = None, allow_pickle: bool = False
) -> dict[str, Any]:
    """Summarise a checkpoint file (backs ``deblurkit inspect CKPT``).

    Returns a dict with: ``path``, ``format`` ("torch" / "safetensors"), ``file_bytes``,
    ``wrapper`` (wrapper keys undone, outermost first), ``stripped_prefix`` ("" or e.g.
    "module."), ``num_tensors``, ``num_elements`` (all tensors), ``num_parameters`` (learnable
    parameters: of the detected network when exact, else tensors other than BatchNorm running
    statistics / spectral-norm vectors / integer counters), ``dtypes`` ({dtype: count}),
    ``detected`` (best registry name or None), ``overrides`` (constructor overrides for it),
    ``exact`` (bool), ``score`` (0..1), ``build_call`` (e.g. ``"build('mimo_unet')"`` or None),
    ``candidates`` (list of {name, overrides, exact, score, missing, unexpected, wrong_shape}
    counts), ``key_summary`` ({top-level module: {"tensors", "elements"}} in file order) and
    ``first_keys`` (first 5 keys with shapes).

    Raises:
        FileNotFoundError, CheckpointReadError: see :func:`read_state_dict`.
    """
    sd, info = _read_checkpoint(path, "cpu", key, allow_pickle)
    ranked = _rank(sd, min_score=0.3)
    dtypes: dict[str, int] = {}
    summary: dict[str, dict[str, int]] = {}
    for k, v in sd.items():
        dt = str(v.dtype).replace("torch.", "")
        dtypes[dt] = dtypes.get(dt, 0) + 1
        top = k.split(".", 1)[0]
        s = summary.setdefault(top, {"tensors": 0, "elements": 0})
        s["tensors"] += 1
        s["elements"] += v.numel()
    best = ranked[0] if ranked else None
    if best is not None and best[2].exact:
        net = _expected_state(best[0], best[1])
        num_params = sum(p.numel() for p in net.parameters())
    else:
        skip = ("running_mean", "running_var", "num_batches_tracked", "weight_u", "weight_v")
        num_params = sum(
            v.numel() for k, v in sd.items()
            if v.is_floating_point() and k.rsplit(".", 1)[-1] not in skip
        )
    return {
        "path": info["path"],
        "format": info["format"],
        "file_bytes": Path(path).stat().st_size,
        "wrapper": info["wrapper"],
        "stripped_prefix": info["stripped_prefix"],
        "num_tensors": len(sd),
        "num_elements": int(sum(v.numel() for v in sd.values())),
        "num_parameters": int(num_params),
        "dtypes": dtypes,
        "detected": best[0] if best else None,
        "overrides": dict(best[1]) if best else {},
        "exact": bool(best and best[2].exact),
        "score": round(best[2].score, 4) if best else 0.0,
        "build_call": _call_string(best[0], best[1]) if best else None,
        "candidates": [
            {
                "name": n, "overrides": dict(ov), "exact": d.exact, "score": round(d.score, 4),
                "missing": len(d.missing), "unexpected": len(d.unexpected),
                "wrong_shape": len(d.wrong_shape),
            }
            for n, ov, d in ranked
        ],
        "key_summary": summary,
        "first_keys": [(k, list(v.shape)) for k, v in list(sd.items())[:5]],
    }
