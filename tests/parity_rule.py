"""The parity weight rule ``deblurkit-parity-v1`` and a generic parity-fixture runner.

Implements ``../shared/parity/README.md`` (the authoritative text):

- :func:`rule_seed` / :func:`rule_tensor`: the deterministic value of one state-dict entry
  from its key, shape and dtype;
- :func:`rebuild_state_dict`: the whole state dict from a fixture's ``spec`` (spectral-norm
  ``weight_u`` / ``weight_v`` from the top singular pair of the matching ``weight_orig``);
- :func:`run_fixture`: rebuild, load with ``strict=True`` into ``deblurkit.models.build(system)``,
  run the recorded call(s) in ``eval()`` under ``no_grad`` and compare every output within the
  recorded tolerance ``|ours - ref| <= atol + rtol * |ref|``.

Usable by every parity test: ``report = run_fixture(path); assert report.passed, report.summary()``
(or ``run_fixture(path, check=True)`` which raises ``AssertionError`` with the report).
"""
from __future__ import annotations

import ast
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

RULE = "deblurkit-parity-v1"

_INT_DTYPES = {"int8", "int16", "int32", "int64", "uint8", "bool", "long", "int"}


# ---------------------------------------------------------------------------------- the rule
def rule_seed(key: str, salt: str = "") -> int:
    """``int.from_bytes(sha256((salt + key).encode()).digest()[:8], 'little') & (2**63 - 1)``."""
    digest = hashlib.sha256((salt + key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def rule_z(key: str, shape: Sequence[int], salt: str = "") -> Tensor:
    """Standard-normal draw ``z`` (float32) for ``key``, from a generator seeded by :func:`rule_seed`."""
    gen = torch.Generator().manual_seed(rule_seed(key, salt))
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float32)


def _dtype(name: Any) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    s = str(name).replace("torch.", "")
    return getattr(torch, s)


def _is_integer(dtype_name: Any) -> bool:
    dt = _dtype(dtype_name)
    return not (dt.is_floating_point or dt.is_complex)


def rule_tensor(key: str, shape: Sequence[int], dtype: Any = "float32", salt: str = "") -> Tensor:
    """Value of one (non spectral-norm-vector) entry under ``deblurkit-parity-v1``.

    Integer dtypes -> zeros; else, with ``z`` from :func:`rule_z` and ``leaf`` the text after the
    key's last ``.``: ``running_var`` -> ``1 + 0.1|z|``; ``running_mean`` -> ``0.1 z``; 2+ dims ->
    ``z / sqrt(prod(shape[1:]))``; 1-dim ``...weight`` -> ``1 + 0.1 z``; 1-dim ``...bias`` ->
    ``0.01 z``; anything else -> ``0.02 z``. The result is cast to ``dtype``.
    """
    shape = tuple(int(s) for s in shape)
    dt = _dtype(dtype)
    if _is_integer(dt):
        return torch.zeros(shape, dtype=dt)
    z = rule_z(key, shape, salt)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        t = 1 + 0.1 * z.abs()
    elif leaf == "running_mean":
        t = 0.1 * z
    elif len(shape) >= 2:
        t = z / math.sqrt(math.prod(shape[1:]))
    elif len(shape) == 1 and leaf.endswith("weight"):
        t = 1 + 0.1 * z
    elif len(shape) == 1 and leaf.endswith("bias"):
        t = 0.01 * z
    else:
        t = 0.02 * z
    return t.to(dt)


def _top_eigvec(gram: Tensor) -> Tensor:
    """Unit eigenvector of the largest eigenvalue of a symmetric PSD float64 matrix."""
    n = gram.shape[0]
    if n > 512:
        # LOBPCG finds the top pair to float64 precision several times faster than a full eigh
        # on the 1024..2048-wide Gram matrices of MSDI-Net's spectral-norm convs.
        try:
            x0 = torch.ones(n, 1, dtype=gram.dtype)
            _, vecs = torch.lobpcg(gram, k=1, X=x0, largest=True, tol=1e-13, niter=5000)
            vec = vecs[:, 0]
            if torch.isfinite(vec).all():
                return vec / vec.norm()
        except Exception:  # fall back to the dense solver
            pass
    _, vecs = torch.linalg.eigh(gram)
    return vecs[:, -1]


def top_singular_pair(weight_orig: Tensor) -> tuple[Tensor, Tensor]:
    """``(u, v)`` (float32) of the largest singular value of ``W = weight_orig.reshape(out, -1)``.

    Computed in float64 from the top eigenvector of the smaller Gram matrix (``W W^T`` or
    ``W^T W``); ``v`` is negated if its largest-magnitude entry is negative, then
    ``u = W v / |W v|``, as the rule prescribes (the pair of the first SVD row of ``Vh``).
    """
    w = weight_orig.detach().double().reshape(weight_orig.shape[0], -1)
    rows, cols = w.shape
    if rows <= cols:
        v = w.T @ _top_eigvec(w @ w.T)
    else:
        v = _top_eigvec(w.T @ w)
    v = v / v.norm()
    if v[v.abs().argmax()] < 0:
        v = -v
    wv = w @ v
    u = wv / wv.norm()
    return u.float(), v.float()


_PAIR_CACHE: dict[tuple[str, str, tuple[int, ...]], tuple[Tensor, Tensor]] = {}


def rebuild_state_dict(spec: Sequence[Sequence[Any]], salt: str = "") -> dict[str, Tensor]:
    """The state dict a fixture's ``spec`` (list of ``(key, shape, dtype)``) describes, in order."""
    values: dict[str, Tensor] = {}
    for key, shape, dtype in spec:
        leaf = key.rsplit(".", 1)[-1]
        if leaf in ("weight_u", "weight_v"):
            continue
        values[key] = rule_tensor(key, shape, dtype, salt)
    out: dict[str, Tensor] = {}
    for key, shape, dtype in spec:
        prefix, _, leaf = key.rpartition(".")
        if leaf in ("weight_u", "weight_v"):
            orig_key = f"{prefix}.weight_orig" if prefix else "weight_orig"
            if orig_key not in values:
                raise KeyError(f"spectral-norm vector {key} has no {orig_key} in the spec")
            ident = (salt, orig_key, tuple(values[orig_key].shape))
            if ident not in _PAIR_CACHE:  # same key + salt -> same weights in every fixture
                _PAIR_CACHE[ident] = top_singular_pair(values[orig_key])
            u, v = _PAIR_CACHE[ident]
            t = u if leaf == "weight_u" else v
            if tuple(t.shape) != tuple(shape):
                raise ValueError(f"{key}: rule gives shape {tuple(t.shape)}, spec says {tuple(shape)}")
            out[key] = t.to(_dtype(dtype))
        else:
            out[key] = values[key]
    return out


# ---------------------------------------------------------------------------------- calls
@dataclass(frozen=True)
class CallForm:
    """A parsed recorded call: ``net(args)`` or ``net.method(args)``."""

    method: str | None
    args: tuple[Any, ...]  # ast nodes, resolved against the inputs by :meth:`resolve`
    kwargs: tuple[tuple[str, Any], ...]
    text: str

    def resolve(self, inputs: Mapping[str, Tensor]) -> tuple[list[Any], dict[str, Any]]:
        return [_value(a, inputs, self.text) for a in self.args], {
            k: _value(v, inputs, self.text) for k, v in self.kwargs
        }


def _value(node: ast.AST, inputs: Mapping[str, Tensor], text: str) -> Any:
    if isinstance(node, ast.Name):
        if node.id not in inputs:
            raise KeyError(f"call {text!r} names {node.id!r}, not among inputs {list(inputs)}")
        return inputs[node.id]
    if isinstance(node, ast.List):
        return [_value(e, inputs, text) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(e, inputs, text) for e in node.elts)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value
    raise ValueError(f"unsupported argument {ast.dump(node)} in call {text!r}")


def parse_call(text: str) -> CallForm:
    """Parse ``net(x)``, ``net(a, b)``, ``net([x])``, ``net.method(a, b)`` (also keyword
    arguments and constants); an assignment prefix (``a, b = net(x)``) is ignored."""
    src = text.strip()
    if "=" in src.split("(", 1)[0]:
        src = src.split("=", 1)[1].strip()
    try:
        node = ast.parse(src, mode="eval").body
    except SyntaxError as e:
        raise ValueError(f"cannot parse call {text!r}: {e}") from e
    if not isinstance(node, ast.Call):
        raise ValueError(f"call {text!r} is not a function call")
    func = node.func
    if isinstance(func, ast.Name) and func.id == "net":
        method = None
    elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "net":
        method = func.attr
    else:
        raise ValueError(f"call {text!r} must be net(...) or net.<method>(...)")
    return CallForm(method, tuple(node.args), tuple((k.arg, k.value) for k in node.keywords), text)


def flatten_outputs(out: Any) -> dict[str, Tensor]:
    """Name outputs as the fixtures do: a tensor -> ``out``; a (nested) list/tuple -> ``out0``,
    ``out1``, ... in depth-first order; a dict -> its keys."""
    if isinstance(out, Tensor):
        return {"out": out}
    if isinstance(out, Mapping):
        return {str(k): v for k, v in out.items()}
    flat: list[Tensor] = []

    def walk(o: Any) -> None:
        if isinstance(o, (list, tuple)):
            for e in o:
                walk(e)
        elif isinstance(o, Tensor):
            flat.append(o)
        else:
            raise TypeError(f"output contains a {type(o).__name__}, not a tensor")

    walk(out)
    return {f"out{i}": t for i, t in enumerate(flat)}


# ---------------------------------------------------------------------------------- runner
@dataclass
class OutputCheck:
    name: str
    shape: tuple[int, ...]
    max_abs_err: float
    max_ref: float
    worst_ratio: float  # max of |ours - ref| / (atol + rtol |ref|); pass when <= 1
    passed: bool
    problem: str = ""


@dataclass
class ParityReport:
    path: str
    system: str
    atol: float
    rtol: float
    checks: list[OutputCheck] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors and bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def max_abs_err(self) -> float:
        return max((c.max_abs_err for c in self.checks), default=float("nan"))

    @property
    def worst_ratio(self) -> float:
        return max((c.worst_ratio for c in self.checks), default=float("inf"))

    def summary(self) -> str:
        lines = [
            f"parity {self.system} ({self.path}): {'PASS' if self.passed else 'FAIL'}; "
            f"tolerance atol={self.atol:.3g} rtol={self.rtol:.3g}; max |err|={self.max_abs_err:.3g}; "
            f"worst err/tol={self.worst_ratio:.3g}"
        ]
        for c in self.checks:
            lines.append(
                f"  {c.name} {list(c.shape)}: max|err|={c.max_abs_err:.3g} (max|ref|={c.max_ref:.3g}), "
                f"err/tol={c.worst_ratio:.3g} {'ok' if c.passed else 'FAIL'} {c.problem}".rstrip()
            )
        lines += [f"  error: {e}" for e in self.errors]
        return "\n".join(lines)


def compare(name: str, ours: Tensor, ref: Tensor, atol: float, rtol: float) -> OutputCheck:
    """Check ``|ours - ref| <= atol + rtol |ref|`` everywhere (float64 arithmetic)."""
    ref_shape = tuple(ref.shape)
    if tuple(ours.shape) != ref_shape:
        return OutputCheck(name, ref_shape, float("inf"), float("nan"), float("inf"), False,
                           f"shape {tuple(ours.shape)} != reference {ref_shape}")
    o, r = ours.detach().double().cpu(), ref.detach().double().cpu()
    err = (o - r).abs()
    tol = atol + rtol * r.abs()
    finite = bool(torch.isfinite(o).all())
    max_err = float(err.max()) if err.numel() else 0.0
    ratio = float((err / tol).max()) if err.numel() else 0.0
    passed = finite and bool((err <= tol).all())
    return OutputCheck(name, ref_shape, max_err, float(r.abs().max()) if r.numel() else 0.0,
                       ratio, passed, "" if finite else "non-finite values")


def load_fixture(path: str | Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with a check of the rule name."""
    fx = torch.load(Path(path), weights_only=True, map_location="cpu")
    if fx.get("rule") != RULE:
        raise ValueError(f"{path}: rule {fx.get('rule')!r}, this runner implements {RULE!r}")
    return fx


def _default_build(system: str) -> nn.Module:
    from deblurkit.models import build

    return build(system)


def run_fixture(
    path: str | Path,
    build_fn: Callable[[str], nn.Module] | None = None,
    *,
    check: bool = False,
) -> ParityReport:
    """Run one parity fixture and compare every recorded output.

    Args:
        path: fixture ``.pt`` file.
        build_fn: ``system -> nn.Module``; default ``deblurkit.models.build(system)``. Pass one
            to test a layer the fixture's notes name instead of a registered network.
        check: raise ``AssertionError`` with :meth:`ParityReport.summary` on failure.

    The state dict from :func:`rebuild_state_dict` is loaded with ``strict=True`` (a key or shape
    mismatch raises). Single-call fixtures run ``official['call']``; multi-call fixtures run each
    entry of ``calls`` with its own inputs/outputs (``<call>.<name>``, prefix stripped).
    """
    fx = load_fixture(path)
    system = fx["system"]
    tol = fx["tolerance"]
    atol, rtol = float(tol["atol"]), float(tol["rtol"])
    report = ParityReport(str(path), system, atol, rtol)

    net = (build_fn or _default_build)(system)
    sd = rebuild_state_dict(fx["spec"], fx.get("salt", ""))
    net.load_state_dict(sd, strict=True)
    net.eval()

    if "calls" in fx:
        calls = dict(fx["calls"])
    else:
        calls = {"": fx["official"]["call"]}

    with torch.no_grad():
        for call_name, call_text in calls.items():
            pre = f"{call_name}." if call_name else ""
            inputs = {k[len(pre):]: v for k, v in fx["inputs"].items() if k.startswith(pre)}
            refs = {k[len(pre):]: v for k, v in fx["outputs"].items() if k.startswith(pre)}
            form = parse_call(call_text)
            args, kwargs = form.resolve({k: v.clone() for k, v in inputs.items()})
            target = net if form.method is None else getattr(net, form.method)
            ours = flatten_outputs(target(*args, **kwargs))
            if set(ours) != set(refs):
                report.errors.append(
                    f"call {call_text!r}: outputs {sorted(ours)} but the fixture records {sorted(refs)}"
                )
            for name in refs:
                if name in ours:
                    report.checks.append(compare(pre + name, ours[name], refs[name], atol, rtol))
    if check and not report.passed:
        raise AssertionError(report.summary())
    return report
