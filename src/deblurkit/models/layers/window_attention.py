"""Window self-attention building blocks (Uformer / Swin style), pure PyTorch.

Used by RSS-T (:mod:`deblurkit.models.rsst`). Follows the attention, feed-forward and window
helpers of jixiang2016/RSS-T ``model/layers.py`` (commit 30d88d8b), which derive from Uformer
(ZhendongWang6/Uformer ``model.py``): ``WindowAttention``, ``LinearProjection``,
``LinearProjection_Concat_kv``, ``LeFF``, ``Mlp``, ``window_partition(_new)`` /
``window_reverse(_new)`` and the mask construction of the transformer blocks. Attribute names
(``relative_position_bias_table``, ``qkv.to_q``, ``qkv.to_kv``, ``qkv.to_qkv``, ``proj``,
``linear1.0``, ``dwconv.0``, ``linear2.0``, ``fc1``, ``fc2``) are the official ones, so state-dict
keys match released checkpoints. timm's ``DropPath`` and einops' ``repeat``/``rearrange`` are
re-expressed with plain torch operations.

Windows are rectangular ``(wh, ww)``; tokens inside a window are ordered row-major, windows are
ordered row-major over the ``(H / wh, W / ww)`` grid, batch-major outside (``b, i, j``).

Nothing here assumes a value range: all tensors are float feature maps or token sequences.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

__all__ = [
    "MASK_VALUE",
    "DropPath",
    "window_partition",
    "window_reverse",
    "relative_position_index",
    "padding_attention_mask",
    "shift_attention_mask",
    "LinearProjection",
    "LinearProjectionConcatKV",
    "WindowAttention",
    "Mlp",
    "LeFF",
]

#: Additive attention-logit penalty the official code uses for masked token pairs.
MASK_VALUE = -100.0


class DropPath(nn.Module):
    """Stochastic depth per sample (timm ``DropPath``, ``scale_by_keep=True``).

    In training mode each sample of the batch (dim 0) is zeroed with probability ``drop_prob``
    and the kept ones are divided by ``1 - drop_prob``; in eval mode (or ``drop_prob == 0``) the
    input is returned unchanged. Parameter-free; any shape (N, ...).

    Raises:
        ValueError: ``drop_prob`` outside [0, 1).
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= float(drop_prob) < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob!r}")
        self.drop_prob = float(drop_prob)

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def _pair(win: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(win, int):
        return (win, win)
    h, w = win
    return (int(h), int(w))


def window_partition(x: Tensor, win: int | tuple[int, int]) -> Tensor:
    """Split (B, H, W, C) into non-overlapping windows (B * H/wh * W/ww, wh, ww, C).

    Official ``window_partition_new`` (rectangular) / ``window_partition`` (square,
    ``dilation_rate=1``).

    Raises:
        ValueError: H or W not divisible by the window.
    """
    wh, ww = _pair(win)
    B, H, W, C = x.shape
    if H % wh or W % ww:
        raise ValueError(f"feature map {H}x{W} is not divisible into {wh}x{ww} windows")
    x = x.reshape(B, H // wh, wh, W // ww, ww, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, wh, ww, C)


def window_reverse(windows: Tensor, win: int | tuple[int, int], H: int, W: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, wh, ww, C) -> (B, H, W, C).

    Official ``window_reverse_new`` / ``window_reverse`` (``dilation_rate=1``).
    """
    wh, ww = _pair(win)
    C = windows.shape[-1]
    B = windows.shape[0] // ((H // wh) * (W // ww))
    x = windows.reshape(B, H // wh, W // ww, wh, ww, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)


@lru_cache(maxsize=64)
def _relative_position_index(wh: int, ww: int, th: int, tw: int) -> Tensor:
    coords = torch.stack(
        torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
    ).flatten(1)  # 2, wh*ww
    rel = coords[:, :, None] - coords[:, None, :]  # 2, N, N
    return (rel[0] + th - 1) * (2 * tw - 1) + (rel[1] + tw - 1)  # N, N (long)


def relative_position_index(
    win: int | tuple[int, int], table_win: int | tuple[int, int] | None = None
) -> Tensor:
    """Index (N, N), N = wh * ww, of each token pair's relative-position bias in a table of
    ``(2 th - 1) * (2 tw - 1)`` rows built for a ``table_win = (th, tw)`` window.

    Entry ``[p, q] = (dh + th - 1) * (2 tw - 1) + (dw + tw - 1)`` with ``(dh, dw)`` the offset of
    token ``p`` from token ``q``. ``table_win=None`` uses ``win`` itself: that is the official
    ``WindowAttention.forward`` formula, which for a window smaller than the table's reads rows
    that belong to other offsets (see :class:`WindowAttention`). Returns a cached CPU long tensor;
    do not modify it in place.

    Raises:
        ValueError: ``win`` larger than ``table_win``.
    """
    wh, ww = _pair(win)
    th, tw = _pair(table_win) if table_win is not None else (wh, ww)
    if wh > th or ww > tw:
        raise ValueError(f"window {wh}x{ww} is larger than the bias table's {th}x{tw}")
    return _relative_position_index(wh, ww, th, tw)


def padding_attention_mask(pad_mask: Tensor, win: int | tuple[int, int]) -> Tensor:
    """Additive attention mask from a padding mask, the official rule.

    Args:
        pad_mask: (B, H, W, 1) float, non-zero on padded pixels (already resized to the feature
            map and, where wanted, rolled like the features).
        win: window ``(wh, ww)``.

    Returns:
        (B, nW, N, N) float: ``MASK_VALUE`` (-100) where BOTH tokens of a pair are non-zero in
        ``pad_mask`` (``m_p * m_q != 0``), 0 elsewhere — exactly the official
        ``attn_mask.unsqueeze(2) * attn_mask.unsqueeze(1)`` then ``masked_fill``.
    """
    wh, ww = _pair(win)
    B = pad_mask.shape[0]
    m = window_partition(pad_mask, (wh, ww)).reshape(B, -1, wh * ww)  # B, nW, N
    pair = m.unsqueeze(3) * m.unsqueeze(2)
    return torch.zeros_like(pair).masked_fill(pair != 0, MASK_VALUE)


def shift_attention_mask(
    H: int, W: int, win: int | tuple[int, int], shift: int | tuple[int, int],
    *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Additive mask (nW, N, N) of shifted-window attention (Swin SW-MSA), official construction.

    Pixels of the cyclically shifted (by ``-shift``) map are labelled by the region they came
    from (three bands per shifted axis: ``[0, -w)``, ``[-w, -s)``, ``[-s, end)``; one band on an
    unshifted axis); a pair of tokens in one window from different regions gets ``MASK_VALUE``.
    """
    wh, ww = _pair(win)
    sh, sw = _pair(shift)
    img = torch.zeros((1, H, W, 1), device=device, dtype=dtype)
    hs = (slice(0, -wh), slice(-wh, -sh), slice(-sh, None)) if sh > 0 else (slice(0, None),)
    ws = (slice(0, -ww), slice(-ww, -sw), slice(-sw, None)) if sw > 0 else (slice(0, None),)
    cnt = 0
    for h in hs:
        for w in ws:
            img[:, h, w, :] = cnt
            cnt += 1
    m = window_partition(img, (wh, ww)).reshape(-1, wh * ww)  # nW, N
    diff = m.unsqueeze(1) - m.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, MASK_VALUE)


class LinearProjection(nn.Module):
    """Query from ``x``, key/value from ``attn_kv`` (default ``x``): official ``LinearProjection``.

    Keys: ``to_q.*`` (dim -> heads*dim_head), ``to_kv.*`` (dim -> 2*heads*dim_head).
    Shapes: x (B_, N, C) -> q, k, v each (B_, heads, N, C // heads).
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, bias: bool = True) -> None:
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=bias)
        self.to_kv = nn.Linear(dim, inner * 2, bias=bias)

    def forward(self, x: Tensor, attn_kv: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        B_, N, C = x.shape
        attn_kv = x if attn_kv is None else attn_kv
        q = self.to_q(x).reshape(B_, N, self.heads, C // self.heads).permute(0, 2, 1, 3)
        kv = self.to_kv(attn_kv).reshape(B_, N, 2, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        return q, kv[0], kv[1]


class LinearProjectionConcatKV(nn.Module):
    """Official ``LinearProjection_Concat_kv``: q, k_d, v_d from ``to_qkv(x)``; k_e, v_e from
    ``to_kv(attn_kv)``; keys/values are the concatenation along tokens (2N of them).

    Keys: ``to_qkv.*``, ``to_kv.*``. Shapes: q (B_, heads, N, C//heads), k, v (B_, heads, 2N, C//heads).
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, bias: bool = True) -> None:
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.to_qkv = nn.Linear(dim, inner * 3, bias=bias)
        self.to_kv = nn.Linear(dim, inner * 2, bias=bias)

    def forward(self, x: Tensor, attn_kv: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        B_, N, C = x.shape
        attn_kv = x if attn_kv is None else attn_kv
        qkv = self.to_qkv(x).reshape(B_, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        kv = self.to_kv(attn_kv).reshape(B_, N, 2, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        return qkv[0], torch.cat((qkv[1], kv[0]), dim=2), torch.cat((qkv[2], kv[1]), dim=2)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learned relative-position bias.

    Follows ``WindowAttention`` of RSS-T ``model/layers.py``: ``q = to_q(x) * scale``,
    ``attn = softmax(q k^T + bias [+ mask])``, ``proj(attn v)``. The bias table has
    ``(2 wh - 1) * (2 ww - 1)`` rows (``wh, ww`` = ``win_size``) and ``num_heads`` columns
    (initialised truncated-normal, std 0.02). When keys outnumber queries (``linear_concat``:
    ``ratio = 2``) each bias / mask column is repeated ``ratio`` times in place
    (einops ``'... (c d)'``), as official.

    Args:
        dim: token width C (divisible by ``num_heads``).
        win_size: ``(wh, ww)`` of the bias table (the block's configured window).
        num_heads: attention heads.
        token_projection: ``"linear"`` (``qkv.to_q``/``qkv.to_kv``) or ``"linear_concat"``
            (``qkv.to_qkv``/``qkv.to_kv``). The official code silently treats every other value
            as ``"linear"``; here it raises.
        qkv_bias: biases of the projections.
        qk_scale: logit scale (default ``(dim // num_heads) ** -0.5``).
        attn_drop, proj_drop: dropout probabilities (official 0).

    Forward ``(x, attn_kv=None, mask=None, win_size=None, official_index=False)``:
        x: (B * nW, N, C) window tokens, N = wh' * ww' for the window ``win_size`` actually
            used (default: the table's).
        mask: None, (nW, N, N) shared by the batch, or (B', nW, N, N) with B' in {1, B}: added
            to the logits.
        official_index: for a window smaller than the table's, True indexes the table with the
            official formula (computed from the small window itself, so offsets read rows meant
            for other offsets); False (fixed) indexes it with the table's geometry, so an offset
            always reads its own row. Identical when the window equals the table's.
        returns: (B * nW, N, C).

    Raises:
        ValueError: bad arguments; ``win_size`` larger than the table's; N != wh' * ww'.
    """

    def __init__(
        self,
        dim: int,
        win_size: int | tuple[int, int],
        num_heads: int,
        token_projection: str = "linear",
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.dim = dim
        self.win_size = _pair(win_size)
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = qk_scale or head_dim ** -0.5
        wh, ww = self.win_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        if token_projection == "linear":
            self.qkv: nn.Module = LinearProjection(dim, num_heads, head_dim, bias=qkv_bias)
        elif token_projection == "linear_concat":
            self.qkv = LinearProjectionConcatKV(dim, num_heads, head_dim, bias=qkv_bias)
        else:
            raise ValueError(
                f"token_projection must be 'linear' or 'linear_concat', got {token_projection!r}"
            )
        self.token_projection = token_projection
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._index_cache: dict[tuple, Tensor] = {}  # not state: indices are recomputed, as official

    def relative_position_bias(self, win_size: tuple[int, int], official_index: bool) -> Tensor:
        """(num_heads, N, N) bias for a ``win_size`` window (see ``official_index``)."""
        wh, ww = win_size
        table = self.relative_position_bias_table
        key = (wh, ww, bool(official_index), table.device)
        idx = self._index_cache.get(key)
        if idx is None:  # per device, so a GPU model copies each index once
            idx = relative_position_index((wh, ww), None if official_index else self.win_size)
            idx = self._index_cache[key] = idx.reshape(-1).to(table.device)
        n = wh * ww
        bias = table[idx].reshape(n, n, -1)
        return bias.permute(2, 0, 1).contiguous()

    def forward(
        self,
        x: Tensor,
        attn_kv: Tensor | None = None,
        mask: Tensor | None = None,
        win_size: tuple[int, int] | None = None,
        official_index: bool = False,
    ) -> Tensor:
        B_, N, C = x.shape
        win = self.win_size if win_size is None else _pair(win_size)
        if win[0] * win[1] != N:
            raise ValueError(f"{N} tokens per window, but the window is {win[0]}x{win[1]}")
        q, k, v = self.qkv(x, attn_kv)
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)  # B_, heads, N, N * ratio
        bias = self.relative_position_bias(win, official_index)
        ratio = attn.shape[-1] // bias.shape[-1]
        if ratio != 1:
            bias = bias.repeat_interleave(ratio, dim=-1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            if ratio != 1:
                mask = mask.repeat_interleave(ratio, dim=-1)
            if mask.dim() == 3:
                mask = mask.unsqueeze(0)
            nW = mask.shape[1]
            attn = attn.reshape(-1, nW, self.num_heads, N, N * ratio) + mask.unsqueeze(2)
            attn = attn.reshape(-1, self.num_heads, N, N * ratio)
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(B_, N, C)
        return self.proj_drop(self.proj(x))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, win_size={self.win_size}, num_heads={self.num_heads}"


class Mlp(nn.Module):
    """Token MLP ``fc2(drop(act(fc1(x))))`` then dropout (official ``Mlp``, ``token_mlp='ffn'``).

    Keys: ``fc1.*``, ``fc2.*``. Shapes: (..., in_features) -> (..., out_features).
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class LeFF(nn.Module):
    """Locally-enhanced feed-forward (Uformer LeFF, official ``LeFF``, ``token_mlp='leff'``):
    Linear + GELU, depthwise 3x3 conv + GELU on the token grid, Linear. ``drop`` is accepted
    and unused, as official.

    Keys: ``linear1.0.*``, ``dwconv.0.*``, ``linear2.0.*``.
    Shapes: (B, H, W, dim) -> (B, H, W, dim).
    """

    def __init__(
        self, dim: int = 32, hidden_dim: int = 128, act_layer: type[nn.Module] = nn.GELU, drop: float = 0.0
    ) -> None:
        super().__init__()
        self.linear1 = nn.Sequential(nn.Linear(dim, hidden_dim), act_layer())
        self.dwconv = nn.Sequential(
            nn.Conv2d(hidden_dim, hidden_dim, groups=hidden_dim, kernel_size=3, stride=1, padding=1),
            act_layer(),
        )
        self.linear2 = nn.Sequential(nn.Linear(hidden_dim, dim))
        self.dim, self.hidden_dim = dim, hidden_dim

    def forward(self, x: Tensor) -> Tensor:
        B, H, W, C = x.shape
        y = self.linear1(x.reshape(B, H * W, C))  # B, HW, hidden
        y = y.transpose(1, 2).reshape(B, self.hidden_dim, H, W)
        y = self.dwconv(y).flatten(2).transpose(1, 2)  # B, HW, hidden
        return self.linear2(y).reshape(B, H, W, C)
