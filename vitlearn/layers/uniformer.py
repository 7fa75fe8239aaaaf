"""UniFormer's building blocks (Li et al., 2022), for images (2D) and clips (3D) from the same code.

Every UniFormer block has the same three residual steps; only the relation aggregator (MHRA) and
the norms differ between the shallow *local* blocks and the deep *global* ones::

    x = x + DPE(x)                          # dynamic position embedding: depthwise 3×3(×3) conv
    x = x + DropPath(γ₁ · MHRA(Norm₁(x)))   # local: 1×1 conv -> depthwise 5×5(×5) conv -> 1×1 conv
    x = x + DropPath(γ₂ · FFN(Norm₂(x)))    # global: multi-head self-attention over all tokens

The DPE sits outside the normalised branches and has neither LayerScale nor DropPath. Local blocks
work on channels-first maps with BatchNorm and 1×1-conv FFNs; global blocks flatten the map into
tokens, with LayerNorm (eps 1e-6) and a linear FFN. Module and parameter names follow the official
code (Sense-X/UniFormer), so its checkpoints load with ``load_state_dict(strict=True)``; that is why
LayerScale is a pair of plain parameters ``gamma_1``/``gamma_2`` here, shaped (1, C, 1, 1) in local
blocks as in the released checkpoints, rather than :class:`vitlearn.layers.LayerScale` (γ of shape (C,)
under another name).

The local MHRA is a learned, input-independent affinity: its depthwise kernel is an N×N matrix
acting on the N tokens of each channel, :func:`local_affinity` builds it.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from .attention import Attention
from .drop_path import DropPath
from .mlp import Mlp

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_BATCH_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_TO_TOKENS = {2: "b c h w -> b (h w) c", 3: "b c t h w -> b (t h w) c"}
_CHANNELS_LAST = {2: "b c h w -> b h w c", 3: "b c t h w -> b t h w c"}
_CHANNELS_FIRST = {2: "b h w c -> b c h w", 3: "b t h w c -> b c t h w"}


def _check_spatial_dims(spatial_dims: int, who: str) -> None:
    if spatial_dims not in (2, 3):
        raise ValueError(f"{who}: spatial_dims must be 2 (images) or 3 (clips), got {spatial_dims}")


def _scaled(x: torch.Tensor, gamma: torch.Tensor | None) -> torch.Tensor:
    return x if gamma is None else gamma * x


class ConvMlp(nn.Module):
    """The FFN of the local blocks: 1×1 conv -> GELU -> dropout -> 1×1 conv -> dropout.

    The same map as :class:`vitlearn.layers.Mlp` applied at every position, kept as convolutions so
    that the weights have the official (C_out, C_in, 1, 1) shapes.

    Shapes: (B, C, H, W) or (B, C, T, H, W) -> same, with ``out_features`` channels.
    """

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None,
                 drop: float = 0.0, spatial_dims: int = 2):
        super().__init__()
        _check_spatial_dims(spatial_dims, "ConvMlp")
        conv = _CONV[spatial_dims]
        self.fc1 = conv(in_features, hidden_features, 1)
        self.act = nn.GELU()
        self.fc2 = conv(hidden_features, out_features or in_features, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class LocalMHRABlock(nn.Module):
    """UniFormer's local block (stages 1–2, the official ``CBlock``), on channels-first maps.

    Local MHRA = ``conv2(attn(conv1(x)))``: 1×1 conv, depthwise k×k(×k) conv (``attn``, k = 5), 1×1
    conv, with no activation or norm in between. Norms are BatchNorm; the FFN is :class:`ConvMlp`.

    Args:
        dim: channels C.
        layer_scale: None (the default) or the initial value of γ₁, γ₂, each shaped (1, C, 1, 1[, 1]).
        spatial_dims: 2 for images (B, C, H, W), 3 for clips (B, C, T, H, W).

    Shapes: (B, C, *spatial) -> (B, C, *spatial).
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0,
                 layer_scale: float | None = None, spatial_dims: int = 2, kernel_size: int = 5):
        super().__init__()
        _check_spatial_dims(spatial_dims, "LocalMHRABlock")
        conv, norm = _CONV[spatial_dims], _BATCH_NORM[spatial_dims]
        self.pos_embed = conv(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = norm(dim)
        self.conv1 = conv(dim, dim, 1)
        self.attn = conv(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.conv2 = conv(dim, dim, 1)
        self.drop_path = DropPath(drop_path)
        self.norm2 = norm(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), drop=drop, spatial_dims=spatial_dims)
        self.gamma_1 = self.gamma_2 = None
        if layer_scale is not None:
            shape = (1, dim) + (1,) * spatial_dims
            self.gamma_1 = nn.Parameter(torch.full(shape, float(layer_scale)))
            self.gamma_2 = nn.Parameter(torch.full(shape, float(layer_scale)))

    def mhra(self, x: torch.Tensor) -> torch.Tensor:
        """The local relation aggregator alone (applied to the normalised input)."""
        return self.conv2(self.attn(self.conv1(x)))

    def affinity(self, size: tuple[int, ...]) -> torch.Tensor:
        """The per-channel N×N affinity of the depthwise conv on a map of ``size`` (see :func:`local_affinity`):
        shape (C, N, N), N = prod(size)."""
        return local_affinity(self.attn.weight[:, 0], size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.drop_path(_scaled(self.mhra(self.norm1(x)), self.gamma_1))
        return x + self.drop_path(_scaled(self.mlp(self.norm2(x)), self.gamma_2))


class GlobalMHRABlock(nn.Module):
    """UniFormer's global block (stages 3–4, the official ``SABlock``).

    The DPE runs on the channels-first map; the map is then flattened to N tokens (N = H·W, or
    T·H·W for clips: joint space-time attention), passed through pre-norm multi-head self-attention
    (:class:`vitlearn.layers.Attention`, so SDPA and :func:`vitlearn.record_attention` apply) and a
    linear FFN, each with LayerNorm (eps 1e-6), and folded back.

    Args:
        dim: channels C; ``num_heads`` = C / head_dim.
        layer_scale: None or the initial value of γ₁, γ₂, each shaped (C,).
        spatial_dims: 2 for images, 3 for clips.

    Shapes: (B, C, *spatial) -> (B, C, *spatial).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, layer_scale: float | None = None,
                 spatial_dims: int = 2, norm_eps: float = 1e-6):
        super().__init__()
        _check_spatial_dims(spatial_dims, "GlobalMHRABlock")
        self.spatial_dims = spatial_dims
        self.pos_embed = _CONV[spatial_dims](dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.gamma_1 = self.gamma_2 = None
        if layer_scale is not None:
            self.gamma_1 = nn.Parameter(torch.full((dim,), float(layer_scale)))
            self.gamma_2 = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        shape = x.shape
        t = rearrange(x, _TO_TOKENS[self.spatial_dims])
        t = t + self.drop_path(_scaled(self.attn(self.norm1(t)), self.gamma_1))
        t = t + self.drop_path(_scaled(self.mlp(self.norm2(t)), self.gamma_2))
        return t.transpose(1, 2).reshape(shape)


class ConvPatchEmbed(nn.Module):
    """Strided convolution, then LayerNorm over channels (eps 1e-5, applied channels-last).

    UniFormer's stem (4×4, stride 4) and its downsampling between stages (2×2, stride 2); for clips
    the stem is (3, 4, 4) with stride (2, 4, 4) and temporal padding 1, the others (1, 2, 2).

    Shapes: (B, C_in, *spatial) -> (B, C_out, *spatial / stride).
    """

    def __init__(self, in_chans: int, embed_dim: int, kernel_size, stride, padding=0, spatial_dims: int = 2):
        super().__init__()
        _check_spatial_dims(spatial_dims, "ConvPatchEmbed")
        self.spatial_dims = spatial_dims
        self.proj = _CONV[spatial_dims](in_chans, embed_dim, kernel_size, stride, padding)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(rearrange(self.proj(x), _CHANNELS_LAST[self.spatial_dims]))
        return rearrange(x, _CHANNELS_FIRST[self.spatial_dims])


class ConvBNEmbed(nn.Module):
    """UniFormer-S†'s overlapping embeddings, 2D only: 3×3 stride-2 convolutions with BatchNorm.

    ``stem=True``: conv (C_in -> C/2) -> BN -> GELU -> conv (-> C) -> BN, a stride of 4; otherwise
    conv -> BN, a stride of 2. Both are ``self.proj`` (an ``nn.Sequential``), as in the official code.

    Shapes: (B, C_in, H, W) -> (B, C, H/4, W/4) (stem) or (B, C, H/2, W/2).
    """

    def __init__(self, in_chans: int, embed_dim: int, stem: bool = False):
        super().__init__()
        if stem:
            half = embed_dim // 2
            self.proj = nn.Sequential(
                nn.Conv2d(in_chans, half, 3, 2, 1), nn.BatchNorm2d(half), nn.GELU(),
                nn.Conv2d(half, embed_dim, 3, 2, 1), nn.BatchNorm2d(embed_dim))
        else:
            self.proj = nn.Sequential(nn.Conv2d(in_chans, embed_dim, 3, 2, 1), nn.BatchNorm2d(embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def local_affinity(kernel: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """The N×N matrix A that a depthwise convolution (zero padding k//2, stride 1) applies to the
    N = prod(size) positions of one channel: ``conv(x)[i] = Σ_j A[i, j] x[j]`` (plus the bias).

    A[i, j] = kernel[(j − i) + k//2] (a multi-index over the spatial axes) when every offset lies
    inside the kernel, else 0: the paper's local affinity a^{i−j}, input-independent and shared by
    every position (a Toeplitz matrix). Positions are ordered row-major, as ``x.flatten()``.

    Shapes: kernel (..., k_1, ..., k_d) with odd k and d = len(size) (e.g. a depthwise conv weight
    ``conv.weight[:, 0]``, (C, 5, 5)) -> (..., N, N).
    """
    d = len(size)
    ks = kernel.shape[-d:]
    if any(k % 2 == 0 for k in ks):
        raise ValueError(f"local_affinity: kernel sizes must be odd (centred), got {tuple(ks)}")
    grids = torch.meshgrid(*[torch.arange(s, device=kernel.device) for s in size], indexing="ij")
    coords = torch.stack([g.reshape(-1) for g in grids], dim=-1)  # (N, d)
    offset = coords[None, :, :] - coords[:, None, :] + torch.tensor([k // 2 for k in ks], device=kernel.device)
    inside = torch.ones(offset.shape[:2], dtype=torch.bool, device=kernel.device)
    for a, k in enumerate(ks):
        inside &= (offset[..., a] >= 0) & (offset[..., a] < k)
    index = offset.clamp(min=0)
    for a, k in enumerate(ks):
        index[..., a].clamp_(max=k - 1)
    values = kernel[(..., *[index[..., a] for a in range(d)])]  # (..., N, N)
    return values * inside.to(kernel.dtype)
