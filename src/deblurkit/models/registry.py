"""Model registry: names -> network factories plus a descriptor of each network.

A network module registers its factory (class or function) under a name with a
:class:`ModelDescriptor`::

    @register_model("mimo_unet", ModelDescriptor(name="mimo_unet", ...))
    class MIMOUNet(nn.Module): ...

and users build it configured as the official release::

    >>> import deblurkit.models as M
    >>> net = M.build("mimo_unet")                    # official MIMO-UNet (num_res=8)
    >>> small = M.build("mimo_unet", base_channel=16)  # constructor override
    >>> M.get_descriptor("mimo_unet").size_multiple
    4

Style after timm's / BasicSR's registries; the descriptor after spandrel's model descriptors.
"""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

from torch import Tensor, nn

__all__ = [
    "OfficialSource",
    "ModelDescriptor",
    "register_model",
    "build",
    "list_models",
    "get_descriptor",
    "get_factory",
]

F = TypeVar("F", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class OfficialSource:
    """Where the official implementation lives.

    Attributes:
        repo: GitHub ``owner/name``.
        file: path of the module inside the repository.
        cls: class (or factory) name in that file.
        commit: the commit the re-implementation was checked against ("" if none).
        note: free text, e.g. other repositories holding a copy.
    """

    repo: str
    file: str
    cls: str
    commit: str = ""
    note: str = ""

    def __str__(self) -> str:
        at = f"@{self.commit[:7]}" if self.commit else ""
        return f"{self.repo}{at}:{self.file}:{self.cls}"


def _default_primary(out: Any) -> Tensor:
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (list, tuple)) and out:
        return _default_primary(out[-1])
    raise TypeError(
        f"cannot pick the primary output from a {type(out).__name__}; "
        "give the descriptor a 'primary' callable"
    )


@dataclass(frozen=True)
class ModelDescriptor:
    """What a user (CLI, inference, training) needs to know about a registered network.

    Attributes:
        name: registry name (``build(name)``).
        system: the deblurkit system it belongs to (``"blur2blur"``, ``"rsst"``, ...).
        paper: short citation of the paper the network comes from.
        official: :class:`OfficialSource` of the code followed.
        input_kinds: what ``forward`` takes, in order, e.g. ``("rgb",)``; ``"rgb"`` is a
            float32 (N, 3, H, W) image batch.
        value_range: range of image inputs and image outputs, ``(0.0, 1.0)`` at the API boundary.
        size_multiple: H and W of the input must be multiples of this (pad otherwise).
        outputs: human-readable description of what ``forward`` returns.
        defaults: constructor keyword arguments of the official configuration; ``build`` passes
            them, updated by the caller's overrides.
        primary: optional callable ``out -> Tensor`` picking the full-resolution restored image
            from the forward's output; the default returns a tensor output unchanged and the last
            element of a list/tuple output (recursively).
        infer_config: optional callable ``state_dict -> dict`` guessing constructor keyword
            arguments from a checkpoint's key names and shapes (used by
            :func:`deblurkit.models.detect_architecture`); return ``{}`` when it cannot tell.
        notes: free text (quirks, clamping, official-compatibility modes).
    """

    name: str
    system: str
    paper: str
    official: OfficialSource
    input_kinds: tuple[str, ...] = ("rgb",)
    value_range: tuple[float, float] = (0.0, 1.0)
    size_multiple: int = 1
    outputs: str = "tensor (N, 3, H, W)"
    defaults: dict[str, Any] = field(default_factory=dict, hash=False)
    primary: Callable[[Any], Tensor] | None = field(default=None, hash=False, compare=False, repr=False)
    infer_config: Callable[[Mapping[str, Any]], dict[str, Any]] | None = field(
        default=None, hash=False, compare=False, repr=False
    )
    notes: str = ""

    def primary_output(self, out: Any) -> Tensor:
        """The full-resolution restored image (N, C, H, W) from ``forward``'s output ``out``.

        Raises:
            TypeError: ``out`` has no tensor to pick.
        """
        if self.primary is not None:
            return self.primary(out)
        return _default_primary(out)


_REGISTRY: dict[str, tuple[ModelDescriptor, Callable[..., nn.Module]]] = {}


def register_model(
    name: str,
    descriptor: ModelDescriptor,
    factory: Callable[..., nn.Module] | None = None,
    *,
    replace: bool = False,
):
    """Register ``factory`` (a class or function returning an ``nn.Module``) under ``name``.

    Used as a decorator (``@register_model(name, descriptor)``) or called directly with
    ``factory``. Returns the factory unchanged (decorator form) or ``None``.

    Raises:
        ValueError: ``descriptor.name != name``, a default is not a parameter of the factory,
            or ``name`` is already registered with another factory (pass ``replace=True``).
    """
    if descriptor.name != name:
        raise ValueError(f"descriptor name {descriptor.name!r} differs from registry name {name!r}")

    def _register(fn: F) -> F:
        params = _accepted_kwargs(fn)
        if params is not None:
            bad = sorted(set(descriptor.defaults) - params)
            if bad:
                raise ValueError(f"{name}: defaults {bad} are not parameters of {fn.__qualname__}")
        old = _REGISTRY.get(name)
        if old is not None and old[1] is not fn and not replace:
            raise ValueError(f"model {name!r} is already registered ({old[1].__qualname__})")
        _REGISTRY[name] = (descriptor, fn)
        return fn

    if factory is not None:
        _register(factory)
        return None
    return _register


def _accepted_kwargs(fn: Callable[..., Any]) -> set[str] | None:
    """Keyword names ``fn`` accepts, or None if it takes ``**kwargs`` / has no signature."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    names = set()
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
    return names


def _entry(name: str) -> tuple[ModelDescriptor, Callable[..., nn.Module]]:
    try:
        return _REGISTRY[name]
    except KeyError:
        avail = list_models()
        close = difflib.get_close_matches(name, avail, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise KeyError(
            f"unknown model {name!r}{hint}; available: {', '.join(avail) or '(none)'}"
        ) from None


def list_models() -> list[str]:
    """Sorted names of all registered networks."""
    return sorted(_REGISTRY)


def get_descriptor(name: str) -> ModelDescriptor:
    """The :class:`ModelDescriptor` of ``name``.

    Raises:
        KeyError: unknown name (the message lists the available names).
    """
    return _entry(name)[0]


def get_factory(name: str) -> Callable[..., nn.Module]:
    """The registered class/function of ``name`` (``KeyError`` if unknown)."""
    return _entry(name)[1]


def build(name: str, **overrides: Any) -> nn.Module:
    """Build network ``name`` configured as its official release.

    ``overrides`` replace entries of ``descriptor.defaults`` and are passed to the factory as
    keyword arguments. With no overrides, ``state_dict()`` has exactly the official keys and
    shapes. The module is returned in training mode on the CPU, like a freshly built
    ``nn.Module``; call ``.eval()`` for inference.

    Raises:
        KeyError: unknown ``name`` (the message lists the available names).
        TypeError: an override is not a parameter of the network's constructor.
    """
    descriptor, factory = _entry(name)
    accepted = _accepted_kwargs(factory)
    if accepted is not None:
        bad = sorted(set(overrides) - accepted)
        if bad:
            raise TypeError(
                f"{name}: unknown option(s) {bad}; accepted: {', '.join(sorted(accepted))}"
            )
    kwargs = {**descriptor.defaults, **overrides}
    return factory(**kwargs)
