"""Where a query may look under MaxViT's multi-axis attention: block (local windows) and grid (dilated
global groups), for plots and an ipywidgets explorer.

For an H×W map, block attention with window P groups token (i, j) with the tokens of its P×P window
(⌊i/P⌋, ⌊j/P⌋); grid attention with grid G groups it with the tokens of group (i mod H/G, j mod W/G),
G×G tokens spaced H/G rows and W/G columns apart. A block layer followed by a grid layer lets a query
reach every token that shares a window with one of its grid partners.
"""
from __future__ import annotations

import torch
from einops import rearrange

KINDS = ("block", "grid", "block then grid")


def _check(H: int, W: int, P: int, G: int) -> None:
    if H % P or W % P:
        raise ValueError(f"block attention: a {H}x{W} map cannot be cut into {P}x{P} windows; both sides must be multiples of P")
    if H % G or W % G:
        raise ValueError(f"grid attention: a {H}x{W} map cannot be cut into a {G}x{G} grid; both sides must be multiples of G")


def block_groups(H: int, W: int, P: int) -> torch.Tensor:
    """Window id of every token under block attention with P×P windows. Shape (H, W), long."""
    _check(H, W, P, 1)
    ids = torch.arange((H // P) * (W // P))
    return rearrange(ids[:, None].expand(-1, P * P), "(nh nw) (p1 p2) -> (nh p1) (nw p2)", nh=H // P, p1=P)


def grid_groups(H: int, W: int, G: int) -> torch.Tensor:
    """Group id of every token under grid attention with a G×G grid: (i mod H/G)·(W/G) + (j mod W/G).
    Shape (H, W), long."""
    _check(H, W, 1, G)
    ids = torch.arange((H // G) * (W // G))
    return rearrange(ids[:, None].expand(-1, G * G), "(sh sw) (g1 g2) -> (g1 sh) (g2 sw)", sh=H // G, g1=G)


def multiaxis_visible_keys(H: int, W: int, P: int, G: int, row: int, col: int, kind: str = "block") -> torch.Tensor:
    """Tokens of an H×W map that the query at (row, col) depends on after one block layer
    (``kind="block"``), one grid layer (``"grid"``), or a block layer followed by a grid layer
    (``"block then grid"``). Shape (H, W), bool."""
    _check(H, W, P, G)
    if not (0 <= row < H and 0 <= col < W):
        raise ValueError(f"query ({row}, {col}) lies outside the {H}x{W} map")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    blocks, grids = block_groups(H, W, P), grid_groups(H, W, G)
    if kind == "block":
        return blocks == blocks[row, col]
    partners = grids == grids[row, col]
    if kind == "grid":
        return partners
    return torch.isin(blocks, torch.unique(blocks[partners]))


def plot_multiaxis_keys(ax, H: int, W: int, P: int, G: int, row: int, col: int, kind: str = "block") -> None:
    """Draws :func:`multiaxis_visible_keys`, with the borders of the P×P windows in grey."""
    vis = multiaxis_visible_keys(H, W, P, G, row, col, kind)
    cmap = {"block": "Blues", "grid": "Oranges", "block then grid": "Greens"}[kind]
    ax.imshow(vis.float().numpy(), cmap=cmap, vmin=0, vmax=1.4)
    ax.plot(col, row, "r*", ms=8)
    for k in range(P, max(H, W), P):
        ax.axhline(k - 0.5, color="gray", lw=0.6)
        ax.axvline(k - 0.5, color="gray", lw=0.6)
    ax.set_xticks([]); ax.set_yticks([])
    ax.set_title(f"{kind}, P={P}, G={G}: {int(vis.sum())} keys", fontsize=8)


def multiaxis_explorer(H: int = 16, W: int = 16):
    """ipywidgets explorer of :func:`multiaxis_visible_keys`: choose the query, P and G (divisors of
    the map sides) and see block, grid and block-then-grid reach side by side. Needs a live kernel."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    sizes = [d for d in range(1, min(H, W) + 1) if H % d == 0 and W % d == 0]

    def show(row, col, P, G):
        fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
        for ax, kind in zip(axes, KINDS):
            plot_multiaxis_keys(ax, H, W, P, G, row, col, kind)
        plt.tight_layout()
        plt.show()

    default = sizes[len(sizes) // 2]
    return widgets.interactive(
        show,
        row=widgets.IntSlider(H // 2 - 1, 0, H - 1, description="query row"),
        col=widgets.IntSlider(W // 3, 0, W - 1, description="query col"),
        P=widgets.Dropdown(options=sizes, value=default, description="P (block)"),
        G=widgets.Dropdown(options=sizes, value=default, description="G (grid)"),
    )


def partition_query_map(attn: torch.Tensor, H: int, W: int, size: int, partition: str, row: int, col: int,
                        image: int = 0) -> torch.Tensor:
    """Places the recorded attention of the query at (row, col) back on the H×W map.

    ``attn`` is what :func:`vitlearn.record_attention` records for a
    :class:`~vitlearn.layers.PartitionAttention` layer, (B · groups, heads, S², S²) with S = ``size``
    (P for ``partition="block"``, G for ``"grid"``); the heads are averaged. Returns (H, W): the
    query's weights on the keys of its group, zero elsewhere (each row sums to 1).
    """
    from .layers.window import block_partition, block_reverse, grid_partition, grid_reverse

    split, merge = {"block": (block_partition, block_reverse), "grid": (grid_partition, grid_reverse)}[partition]
    _check(H, W, size if partition == "block" else 1, size if partition == "grid" else 1)
    groups = split(torch.arange(H * W).reshape(1, H, W, 1), size)[..., 0]     # (groups, S²) token indices
    n_groups, group_len = groups.shape
    if attn.shape[0] % n_groups or attn.shape[-1] != group_len:
        raise ValueError(f"partition_query_map: attention of shape {tuple(attn.shape)} does not fit {n_groups} "
                         f"{partition} groups of {group_len} tokens on a {H}x{W} map")
    g, pos = (groups == row * W + col).nonzero()[0].tolist()
    weights = attn[image * n_groups + g].float().mean(0)[pos]                 # (S²,)
    canvas = torch.zeros(n_groups, group_len, 1, dtype=weights.dtype, device=weights.device)
    canvas[g, :, 0] = weights
    return merge(canvas, size, H, W)[0, :, :, 0]
