"""Plotting helpers for attention maps (matplotlib), and an ipywidgets explorer for live kernels."""
from __future__ import annotations

import torch


def to_image(img: torch.Tensor):
    """(3, H, W) tensor in [0, 1] -> (H, W, 3) numpy array for ``imshow``."""
    return img.detach().float().cpu().permute(1, 2, 0).clamp(0, 1).numpy()


def query_map(attn: torch.Tensor, query: int, grid: tuple[int, int], prefix_tokens: int = 1) -> torch.Tensor:
    """The attention row of token ``query`` over the patch tokens, as a (gh, gw) map.

    ``attn``: (heads, N, N) or (N, N) post-softmax weights of one image; prefix tokens (class token)
    are dropped from the keys, so the map shows where on the image the query looks.
    """
    row = attn[..., query, prefix_tokens:]
    return row.reshape(*row.shape[:-1], *grid)


def overlay(ax, img: torch.Tensor, heat: torch.Tensor, title: str | None = None, alpha: float = 0.6, marker=None):
    """Draws ``img`` (3, H, W) with the (gh, gw) map ``heat`` upsampled on top; ``marker`` = (row, col)
    of a patch to outline."""
    import matplotlib.patches as mpatches

    H, W = img.shape[-2:]
    gh, gw = heat.shape
    ax.imshow(to_image(img))
    ax.imshow(heat.detach().float().cpu().numpy(), cmap="inferno", alpha=alpha, extent=(0, W, H, 0),
              interpolation="nearest")
    if marker is not None:
        r, c = marker
        ph, pw = H / gh, W / gw
        ax.add_patch(mpatches.Rectangle((c * pw, r * ph), pw, ph, fill=False, ec="cyan", lw=2))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def attention_explorer(img: torch.Tensor, maps: dict[str, torch.Tensor], grid: tuple[int, int], prefix_tokens: int = 1):
    """An ipywidgets explorer: pick a layer, a head and a query patch (or the class token, query -1)
    and see where it attends. ``maps`` is what :func:`vitlearn.record_attention` recorded for one
    image batch; the first image is shown. Needs a live kernel (JupyterLab, Colab)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    names = list(maps)
    heads = maps[names[0]].shape[1]
    gh, gw = grid

    def show(layer, head, query_row, query_col, use_class_token):
        attn = maps[names[layer]][0]
        q = 0 if use_class_token and prefix_tokens else prefix_tokens + query_row * gw + query_col
        heat = query_map(attn[head], q, grid, prefix_tokens)
        fig, ax = plt.subplots(figsize=(4, 4))
        overlay(ax, img, heat, f"{names[layer]}, head {head}", marker=None if use_class_token else (query_row, query_col))
        plt.show()

    return widgets.interactive(
        show,
        layer=widgets.IntSlider(0, 0, len(names) - 1, description="layer"),
        head=widgets.IntSlider(0, 0, heads - 1, description="head"),
        query_row=widgets.IntSlider(gh // 2, 0, gh - 1, description="query row"),
        query_col=widgets.IntSlider(gw // 2, 0, gw - 1, description="query col"),
        use_class_token=widgets.Checkbox(False, description="class token as query"),
    )


def visible_keys(H: int, W: int, window: int, shift: int, row: int, col: int) -> torch.Tensor:
    """Which tokens of an H×W map the token at (row, col) may attend to under (shifted) window
    attention: a (H, W) bool map in image coordinates, computed with the library's own roll,
    partition and mask."""
    from .layers.window import reverse_cyclic_shift, shifted_window_mask, window_reverse

    n_win = (H // window) * (W // window)
    r, c = (row - shift) % H, (col - shift) % W                       # where the query lands after the roll
    w, t = (r // window) * (W // window) + c // window, (r % window) * window + c % window
    allowed = torch.zeros(n_win, window * window, 1)
    mask = shifted_window_mask(H, W, window, shift) if shift else torch.zeros(n_win, window**2, window**2)
    allowed[w, :, 0] = (mask[w, t] == 0).float()
    on_rolled = window_reverse(allowed, window, H, W)                 # (1, H, W, 1)
    return reverse_cyclic_shift(on_rolled, shift)[0, :, :, 0] > 0


def plot_visible_keys(ax, H: int, W: int, window: int, shift: int, row: int, col: int) -> None:
    """Draws :func:`visible_keys` with the window grid of the unshifted partition."""
    vis = visible_keys(H, W, window, shift, row, col)
    ax.imshow(vis.float().numpy(), cmap="Blues", vmin=0, vmax=1.4)
    ax.plot(col, row, "r*", ms=9)
    for k in range(window, max(H, W), window):
        ax.axhline(k - 0.5, color="gray", lw=0.8)
        ax.axvline(k - 0.5, color="gray", lw=0.8)
    ax.set_xticks([]); ax.set_yticks([])
    ax.set_title(f"query ({row}, {col}), shift {shift}: {int(vis.sum())} keys", fontsize=9)


def window_explorer(H: int = 14, W: int = 14, window: int = 7):
    """ipywidgets explorer of :func:`visible_keys`: choose the query and the shift. Needs a live kernel."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(row, col, shift):
        fig, ax = plt.subplots(figsize=(4, 4))
        plot_visible_keys(ax, H, W, window, shift, row, col)
        plt.show()

    return widgets.interactive(
        show,
        row=widgets.IntSlider(H // 2, 0, H - 1, description="query row"),
        col=widgets.IntSlider(W // 2, 0, W - 1, description="query col"),
        shift=widgets.IntSlider(window // 2, 0, window - 1, description="shift"),
    )
