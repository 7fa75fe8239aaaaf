"""Local window attention: the machinery of Swin, shared by the models that attend inside windows.

A feature map (B, H, W, C) is cut into non-overlapping M×M windows; attention runs inside each
window independently, so its cost grows with H·W·M² instead of (H·W)². The pieces here are
independent of Swin's block layout, so that other windowed models can reuse them:

- :func:`window_partition` / :func:`window_reverse`: map <-> batch of windows of tokens.
- :func:`block_partition` / :func:`grid_partition` and their reverses: MaxViT's two partitions, a
  block of contiguous P×P windows (the windows above) and a G×G grid of tokens spaced H/G apart.
- :func:`relative_position_index` and :class:`RelativePositionBias`: a learned bias per head for
  each relative offset (Δrow, Δcol) between a query and a key of the same window (query − key as
  in Swin, or key − query as in MaxViT);
  :func:`add_relative_position_table` registers further tables of that structure (ViT-LSLA).
- :func:`cyclic_shift` / :func:`reverse_cyclic_shift` and :func:`shifted_window_mask`: Swin's
  shifted windows, which let information cross window borders at the cost of a roll and a mask.
- :class:`WindowAttention`: multi-head attention inside windows with the bias (and mask).
- :class:`PatchMerging`: 2×2 neighbourhood -> one token with twice the channels (halves H and W).

Window sizes are an int M or a pair (Mh, Mw); everything is written for rectangular windows.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange, repeat

from .attention import Attention
from .helpers import to_2tuple

# Swin adds -100 (not -inf) between tokens of different regions: exp(-100) ≈ 4e-44 is negligible in
# float32 (a subnormal) and 0 in bfloat16, and a finite value can never turn a fully masked row into NaN.
MASK_VALUE = -100.0


def _check_tiles(h: int, w: int, window: tuple[int, int], who: str) -> None:
    if h % window[0] or w % window[1]:
        raise ValueError(
            f"{who}: a {h}x{w} feature map cannot be cut into {window[0]}x{window[1]} windows or grids; "
            f"both sides must be multiples of the window (grid) size"
        )


def window_partition(x: torch.Tensor, window: int | tuple[int, int]) -> torch.Tensor:
    """Cuts a channels-last map into non-overlapping windows, each flattened row by row.

    Shapes: (B, H, W, C) -> (B · nW, Mh · Mw, C) with nW = (H/Mh)(W/Mw); windows are ordered by
    image, then window row, then window column (the order :func:`shifted_window_mask` uses).
    """
    mh, mw = to_2tuple(window)
    _check_tiles(x.shape[1], x.shape[2], (mh, mw), "window_partition")
    return rearrange(x, "b (nh mh) (nw mw) c -> (b nh nw) (mh mw) c", mh=mh, mw=mw)


def window_reverse(windows: torch.Tensor, window: int | tuple[int, int], H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`. Shapes: (B · nW, Mh · Mw, C) -> (B, H, W, C)."""
    mh, mw = to_2tuple(window)
    _check_tiles(H, W, (mh, mw), "window_reverse")
    return rearrange(windows, "(b nh nw) (mh mw) c -> b (nh mh) (nw mw) c", nh=H // mh, nw=W // mw, mh=mh, mw=mw)


def block_partition(x: torch.Tensor, block: int | tuple[int, int]) -> torch.Tensor:
    """MaxViT's block partition: contiguous P×P windows, exactly :func:`window_partition`.

    Shapes: (B, H, W, C) -> (B · (H/Ph)(W/Pw), Ph · Pw, C).
    """
    return window_partition(x, block)


def block_reverse(blocks: torch.Tensor, block: int | tuple[int, int], H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`block_partition`. Shapes: (B · nW, Ph · Pw, C) -> (B, H, W, C)."""
    return window_reverse(blocks, block, H, W)


# Where the token at position (ph, pw) of partition (nh, nw) sits in the map, as einops axes: in a
# block the rows are nh·Ph + ph (contiguous windows), in a grid ph·(H/Gh) + nh (tokens H/G apart).
PARTITION_LAYOUTS = {"block": "b (nh ph) (nw pw)", "grid": "b (ph nh) (pw nw)"}


def grid_partition(x: torch.Tensor, grid: int | tuple[int, int]) -> torch.Tensor:
    """MaxViT's grid partition: G×G groups of tokens spaced (H/G, W/G) apart, i.e. a dilated window.

    Token (i, j) goes to group (i mod H/G, j mod W/G), at position (i div H/G, j div W/G) inside it,
    so each group is a coarse G×G sampling of the whole map. Groups are ordered by image, then group
    row, then group column, and each is flattened row by row, as in :func:`window_partition`.

    Shapes: (B, H, W, C) -> (B · (H/Gh)(W/Gw), Gh · Gw, C).
    """
    gh, gw = to_2tuple(grid)
    _check_tiles(x.shape[1], x.shape[2], (gh, gw), "grid_partition")
    return rearrange(x, f"{PARTITION_LAYOUTS['grid']} c -> (b nh nw) (ph pw) c", ph=gh, pw=gw)


def grid_reverse(groups: torch.Tensor, grid: int | tuple[int, int], H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`grid_partition`. Shapes: (B · nG, Gh · Gw, C) -> (B, H, W, C)."""
    gh, gw = to_2tuple(grid)
    _check_tiles(H, W, (gh, gw), "grid_reverse")
    return rearrange(groups, f"(b nh nw) (ph pw) c -> {PARTITION_LAYOUTS['grid']} c", nh=H // gh, nw=W // gw,
                     ph=gh, pw=gw)


OFFSETS = ("query-key", "key-query")


def relative_position_index(window: int | tuple[int, int], device=None, offset: str = "query-key") -> torch.Tensor:
    """Index into a table of (2Mh−1)(2Mw−1) relative offsets, for every (query, key) pair of a window.

    With Δ = query − key (row and column, each in [−(M−1), M−1]) the index is
    (Δrow + Mh − 1)(2Mw − 1) + (Δcol + Mw − 1): offsets are shifted to start at 0 and read row-major.
    Pairs with the same offset share an entry, which is what makes the bias translation invariant.
    ``offset="key-query"`` uses Δ = key − query instead (MaxViT's convention); the two tables hold
    the same information, one the other flipped along both offset axes.

    Shape: (Mh · Mw, Mh · Mw), dtype long; tokens are numbered row by row, as in :func:`window_partition`.
    """
    if offset not in OFFSETS:
        raise ValueError(f"relative_position_index: offset must be one of {OFFSETS}, got {offset!r}")
    mh, mw = to_2tuple(window)
    rows, cols = torch.meshgrid(
        torch.arange(mh, device=device), torch.arange(mw, device=device), indexing="ij"
    )
    rows, cols = rows.flatten(), cols.flatten()
    d_row = rows[:, None] - rows[None, :]  # (query, key)
    d_col = cols[:, None] - cols[None, :]
    if offset == "key-query":
        d_row, d_col = -d_row, -d_col
    return (d_row + mh - 1) * (2 * mw - 1) + (d_col + mw - 1)


def add_relative_position_table(
    module: nn.Module, name: str, window: int | tuple[int, int], num_heads: int, fill: float | None = None,
    offset: str = "query-key",
) -> None:
    """Registers on ``module`` a learned table ``name`` ((2Mh−1)(2Mw−1), heads), one entry per relative
    offset and head, and, if not there yet, the non-persistent buffer ``relative_position_index``
    that every table of the module shares (read them with :func:`relative_position_bias`).

    The table is trunc-normal with std 0.02 (Swin's bias init) when ``fill`` is None, else the
    constant ``fill``. The index follows from the window size, so it is not saved in checkpoints but
    is still moved by ``.to()``. ``offset`` is the convention of the index (see
    :func:`relative_position_index`).
    """
    mh, mw = to_2tuple(window)
    table = nn.Parameter(torch.zeros((2 * mh - 1) * (2 * mw - 1), num_heads))
    if fill is None:
        nn.init.trunc_normal_(table, std=0.02)
    else:
        nn.init.constant_(table, fill)
    module.register_parameter(name, table)
    index = getattr(module, "relative_position_index", None)
    if index is None:
        index = relative_position_index((mh, mw), offset=offset)
        module.register_buffer("relative_position_index", index, persistent=False)
    elif index.shape != (mh * mw, mh * mw):
        raise ValueError(f"add_relative_position_table: {name} is for {mh}x{mw} windows, but the module's "
                         f"relative_position_index is for {index.shape[0]} tokens")


def add_relative_position_bias(module: nn.Module, window: int | tuple[int, int], num_heads: int,
                               offset: str = "query-key") -> None:
    """Registers on ``module`` the learned table ``relative_position_bias_table`` ((2Mh−1)(2Mw−1), heads),
    trunc-normal with std 0.02, and the non-persistent buffer ``relative_position_index``
    (see :func:`add_relative_position_table`).

    Registering on the caller (not on a child module) keeps Swin's checkpoint key names,
    ``...attn.relative_position_bias_table``.
    """
    add_relative_position_table(module, "relative_position_bias_table", window, num_heads, offset=offset)


def repeat_over_images(t: torch.Tensor, batch_windows: int) -> torch.Tensor:
    """Repeats a per-window tensor (nW, ...) for every image of a batch of windows: (B · nW, ...).

    Windows of one image are consecutive in the batch (:func:`window_partition`), so the per-window
    tensor (a shifted-window mask, or anything built from it) repeats image by image.
    """
    num_windows = t.shape[0]
    if batch_windows % num_windows:
        raise ValueError(f"repeat_over_images: a batch of {batch_windows} windows is not a whole number of "
                         f"images of {num_windows} windows each")
    return repeat(t, "w ... -> (b w) ...", b=batch_windows // num_windows)


def relative_position_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Looks up B[h, q, k] = table[index[q, k], h]. Shapes: table (offsets, heads), index (N, N) -> (heads, N, N)."""
    return rearrange(table[index], "q k h -> h q k")


class RelativePositionBias(nn.Module):
    """Learned bias B[h, q, k] = table[index(q − k), h], to be added to the attention logits.

    Holds ``relative_position_bias_table`` ((2Mh−1)(2Mw−1), heads) and the non-persistent
    ``relative_position_index`` (see :func:`add_relative_position_bias`). Equal offsets share an
    entry, which makes the bias translation invariant within the window.

    Shape of the output: (heads, Mh · Mw, Mh · Mw).
    """

    def __init__(self, window: int | tuple[int, int], num_heads: int, offset: str = "query-key"):
        super().__init__()
        self.window = to_2tuple(window)
        self.num_heads = num_heads
        self.offset = offset
        add_relative_position_bias(self, self.window, num_heads, offset=offset)

    def forward(self) -> torch.Tensor:
        return relative_position_bias(self.relative_position_bias_table, self.relative_position_index)

    def extra_repr(self) -> str:
        return f"window={self.window}, num_heads={self.num_heads}, offset={self.offset!r}"


def cyclic_shift(x: torch.Tensor, shift: int | tuple[int, int]) -> torch.Tensor:
    """Rolls a (B, H, W, C) map up and left by ``shift``, so the windows of the next partition straddle
    the previous window borders. Undone by :func:`reverse_cyclic_shift`."""
    sh, sw = to_2tuple(shift)
    return torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))


def reverse_cyclic_shift(x: torch.Tensor, shift: int | tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`cyclic_shift`: rolls a (B, H, W, C) map down and right by ``shift``."""
    sh, sw = to_2tuple(shift)
    return torch.roll(x, shifts=(sh, sw), dims=(1, 2))


def shifted_window_mask(
    H: int, W: int, window: int | tuple[int, int], shift: int | tuple[int, int], device=None
) -> torch.Tensor:
    """Additive mask for attention inside the windows of a cyclically shifted map.

    After :func:`cyclic_shift` by s, the last window row and column hold tokens from opposite edges
    of the image, which are not neighbours. Label the shifted map with up to 9 regions, the products
    of the row slices [0 : H−M), [H−M : H−s), [H−s : H) and the same column slices (i.e. the slices
    [0:−M), [−M:−s), [−s:) of the original Swin code); a query may only attend to keys with its own
    label. Windows away from the last row and column lie in one region and are left unmasked.

    Shape: (nW, Mh · Mw, Mh · Mw), float32: ``MASK_VALUE`` (−100) between different regions, 0 within
    one; windows in :func:`window_partition` order.
    """
    mh, mw = to_2tuple(window)
    sh, sw = to_2tuple(shift)
    _check_tiles(H, W, (mh, mw), "shifted_window_mask")
    labels = torch.zeros(H, W, dtype=torch.long, device=device)
    # A zero shift on one axis leaves its third slice empty, so that axis has one region fewer.
    row_slices = (slice(0, H - mh), slice(H - mh, H - sh), slice(H - sh, H))
    col_slices = (slice(0, W - mw), slice(W - mw, W - sw), slice(W - sw, W))
    for i, rows in enumerate(row_slices):
        for j, cols in enumerate(col_slices):
            labels[rows, cols] = 3 * i + j
    labels = window_partition(labels[None, :, :, None], (mh, mw)).squeeze(-1)  # (nW, M²)
    different = labels[:, :, None] != labels[:, None, :]
    return torch.zeros(different.shape, device=device).masked_fill(different, MASK_VALUE)


class WindowAttention(Attention):
    """Multi-head self-attention inside windows, with a relative position bias and an optional mask.

    softmax(q kᵀ / √d + B + mask) v per window and head: :class:`~vitlearn.layers.Attention` with an
    additive term. B is the relative position bias (the table and index of
    :func:`add_relative_position_bias`, registered on this module as in Swin), the mask (nW, N, N) is
    :func:`shifted_window_mask` for shifted windows. Bias and mask are summed into one additive term
    so that :func:`attend` can hand them to the fused kernel. ``offset`` selects the convention of
    the bias index (:func:`relative_position_index`).

    Shapes: x (B · nW, N, dim) with N = Mh · Mw, mask (nW, N, N) or None -> (B · nW, N, dim).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window: int | tuple[int, int],
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        fused: bool = True,
        offset: str = "query-key",
    ):
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop, fused)
        self.window = to_2tuple(window)
        add_relative_position_bias(self, self.window, num_heads, offset=offset)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # (heads, N, N), the same for every window
        bias = relative_position_bias(self.relative_position_bias_table, self.relative_position_index)
        if mask is not None:
            bias = repeat_over_images(bias[None] + mask[:, None], x.shape[0])  # (B · nW, heads, N, N)
        return super().forward(x, attn_bias=bias)


class PatchMerging(nn.Module):
    """Downsampling between stages: each 2×2 neighbourhood becomes one token.

    The four neighbours are concatenated in the order (row, col) = (0,0), (1,0), (0,1), (1,1)
    (Swin's x0, x1, x2, x3, which pretrained weights depend on), normalised over the 4C channels and
    linearly reduced to ``out_dim`` (2C by default) without bias.

    Shapes: (B, H, W, C) -> (B, H/2, W/2, out_dim); H and W must be even.
    """

    def __init__(self, dim: int, out_dim: int | None = None, norm_eps: float = 1e-5):
        super().__init__()
        self.dim = dim
        self.out_dim = out_dim or 2 * dim
        self.norm = nn.LayerNorm(4 * dim, eps=norm_eps)
        self.reduction = nn.Linear(4 * dim, self.out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[1], x.shape[2]
        if H % 2 or W % 2:
            raise ValueError(
                f"PatchMerging: merges 2x2 neighbours, so the feature map's sides must be even; got {H}x{W}"
            )
        # Column offset outer, row offset inner: (0,0), (1,0), (0,1), (1,1) as (row, col).
        x = rearrange(x, "b (h dh) (w dw) c -> b h w (dw dh c)", dh=2, dw=2)
        return self.reduction(self.norm(x))
