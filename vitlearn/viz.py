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
