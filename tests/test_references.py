"""Value references for the stems and attention layers, written independently of vitlearn's code:
convolutions as explicit sums over kernel offsets, norms and GELU from their formulas, window
attention token by token from the *meaning* of (shifted) windows rather than from masks and rolls.
Random weights (and BatchNorm running statistics), non-square inputs, float64."""
import math

import pytest
import torch

import vitlearn
from conftest import randomize_
from vitlearn.layers import PatchEmbed
from vitlearn.layers.lsla import LightSelfLimitedAttention
from vitlearn.models.swin import SwinTransformerBlock
from vitlearn.models.vit_lsla import ConvStem


def conv2d_ref(x, w, b, stride, pad):
    """Σ over kernel offsets (u, v) and input channels, written out; x (B, C, H, W), w (O, C, k, k)."""
    B, C, H, W = x.shape
    O, _, k, _ = w.shape
    xp = torch.zeros(B, C, H + 2 * pad, W + 2 * pad, dtype=x.dtype)
    xp[:, :, pad:pad + H, pad:pad + W] = x
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    out = torch.zeros(B, O, Ho, Wo, dtype=x.dtype)
    for u in range(k):
        for v in range(k):
            patch = xp[:, :, u:u + stride * (Ho - 1) + 1:stride, v:v + stride * (Wo - 1) + 1:stride]
            out += torch.einsum("oc,bcij->boij", w[:, :, u, v], patch)
    return out if b is None else out + b[None, :, None, None]


def gelu_ref(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def layer_norm_ref(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def channels_last_ref(x):
    """(B, D, H, W) -> (B, H, W, D), element by element."""
    B, D, H, W = x.shape
    out = torch.empty(B, H, W, D, dtype=x.dtype)
    for i in range(H):
        for j in range(W):
            out[:, i, j, :] = x[:, :, i, j]
    return out


def test_conv_stem_matches_reference_on_non_square_input():
    stem = randomize_(ConvStem(img_size=(32, 48), patch_size=4, in_chans=3, embed_dim=16)).eval().double()
    x = torch.randn(2, 3, 32, 48, dtype=torch.float64)
    bn = stem.bn1
    h = conv2d_ref(x, stem.conv1.weight, None, 2, 1)
    h = (h - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + bn.eps)
    h = h * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
    h = conv2d_ref(gelu_ref(h), stem.conv2.weight, stem.conv2.bias, 2, 1)
    ref = layer_norm_ref(channels_last_ref(h), stem.norm.weight, stem.norm.bias, stem.norm.eps)
    with torch.no_grad():
        out = stem(x)
    assert out.shape == (2, 8, 12, 16)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_patch_embed_matches_patch_by_patch_projection_on_non_square_input():
    pe = randomize_(PatchEmbed(img_size=(16, 24), patch_size=8, in_chans=3, embed_dim=5)).double()
    x = torch.randn(2, 3, 16, 24, dtype=torch.float64)
    w = pe.proj.weight.reshape(5, -1)
    tokens = [x[:, :, 8 * i:8 * i + 8, 8 * j:8 * j + 8].reshape(2, -1) @ w.T + pe.proj.bias
              for i in range(2) for j in range(3)]  # row-major order of patches
    torch.testing.assert_close(pe(x), torch.stack(tokens, 1), rtol=1e-10, atol=1e-10)


def window_attention_ref(x, attn, window, shift, q_fn=None):
    """Swin's (shifted) window attention, token by token, from what the windows *mean*.

    Roll the map up-left by ``shift``; a token at rolled position (r, c) lies in window
    (r // Mh, c // Mw). Two tokens attend to each other iff they share a window and the roll did not
    bring one of them across the image border on an axis where the other was not (the wrap flags
    r ≥ H − sh and c ≥ W − sw agree). Relative position bias by the rolled offset (query − key).
    x (B, H, W, C) -> (B, H, W, C).
    """
    B, H, W, C = x.shape
    (mh, mw), (sh, sw) = window, shift
    heads = attn.num_heads
    d = C // heads
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias
    q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
    table = attn.relative_position_bias_table
    out = torch.zeros_like(x)
    pos = [(i, j) for i in range(H) for j in range(W)]
    rolled = {p: ((p[0] - sh) % H, (p[1] - sw) % W) for p in pos}
    for p in pos:
        rp = rolled[p]
        keys = [k_ for k_ in pos
                if (rolled[k_][0] // mh, rolled[k_][1] // mw) == (rp[0] // mh, rp[1] // mw)
                and (rolled[k_][0] >= H - sh) == (rp[0] >= H - sh) and (rolled[k_][1] >= W - sw) == (rp[1] >= W - sw)]
        for h in range(heads):
            sl = slice(h * d, (h + 1) * d)
            logits = torch.stack([(q[:, p[0], p[1], sl] * k[:, kk[0], kk[1], sl]).sum(-1) * d**-0.5
                                  + table[(rp[0] % mh - rolled[kk][0] % mh + mh - 1) * (2 * mw - 1)
                                          + (rp[1] % mw - rolled[kk][1] % mw + mw - 1), h] for kk in keys], -1)
            a = logits.softmax(-1)
            out[:, p[0], p[1], sl] = sum(a[:, n, None] * v[:, kk[0], kk[1], sl] for n, kk in enumerate(keys))
    return out @ attn.proj.weight.T + attn.proj.bias


@pytest.mark.parametrize("shift", [(0, 0), (2, 1)])
def test_swin_window_attention_matches_token_by_token_reference(shift):
    # A non-square 8x6 map, 4x3 windows; with a shift, the block rolls, masks and rolls back.
    blk = randomize_(SwinTransformerBlock(8, 2, (8, 6), window_size=(4, 3), shift_size=shift), std=0.3).eval().double()
    x = torch.randn(2, 8, 6, 8, dtype=torch.float64)
    with torch.no_grad():
        out = blk._window_attention(x)
    ref = window_attention_ref(x, blk.attn, (4, 3), shift)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)


def test_lsla_block_matches_reference_with_and_without_its_terms():
    # The LSLA attention with K = V = X, dynamic scale, inner and outer bias, one window, two heads:
    # A = softmax(DS ⊙ (q kᵀ) + B_i) + B_o, out = proj(A X).
    m = randomize_(LightSelfLimitedAttention(8, 2, 3), std=0.3).double()
    x = torch.randn(2, 9, 8, dtype=torch.float64)
    idx = torch.tensor([[(qi // 3 - ki // 3 + 2) * 5 + (qi % 3 - ki % 3 + 2) for ki in range(9)] for qi in range(9)])
    q = (x @ m.q.weight.T + m.q.bias).view(2, 9, 2, 4).transpose(1, 2)
    kv = x.view(2, 9, 2, 4).transpose(1, 2)
    ds = m.dynamic_scale_table[idx].permute(2, 0, 1)
    bi = m.relative_position_bias_table[idx].permute(2, 0, 1)
    bo = m.outer_bias_table[idx].permute(2, 0, 1)
    a = (ds * (q @ kv.transpose(-2, -1)) + bi).softmax(-1) + bo
    ref = (a @ kv).transpose(1, 2).reshape(2, 9, 8) @ m.proj.weight.T + m.proj.bias
    torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)


def test_vit_lsla_runs_on_a_non_square_image_and_counts_tokens():
    model = vitlearn.create_model("vit_lsla_tiny", img_size=(32, 64), embed_dim=16, depths=(2, 2), num_heads=(1, 2),
                                  window_size=4, num_classes=5).eval()
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        out = model(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    assert feats.shape[-1] == 32 and feats.numel() // (2 * 32) == (32 // 8) * (64 // 8)
    # the transposed image is a different input: a model that mixed up H and W could not tell
    with pytest.raises(ValueError, match="32x64"):
        model(torch.randn(2, 3, 64, 32))
