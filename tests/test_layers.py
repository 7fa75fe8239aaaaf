import pytest
import torch
import torch.nn.functional as F

from vitlearn.layers import Attention, DropPath, Mlp, PatchEmbed, attend
from vitlearn import explicit_attention, record_attention


def naive_mhsa(x, attn: Attention):
    """Multi-head self-attention written with loops over heads, from the weights of ``attn``."""
    B, N, C = x.shape
    h, d = attn.num_heads, attn.head_dim
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias
    q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
    heads = []
    for i in range(h):
        s = slice(i * d, (i + 1) * d)
        a = torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / d**0.5, dim=-1)
        heads.append(a @ v[..., s])
    return torch.cat(heads, -1) @ attn.proj.weight.T + attn.proj.bias


def test_attention_matches_loop_over_heads_and_paths_agree():
    attn = Attention(32, num_heads=4).eval()
    x = torch.randn(2, 10, 32)
    ref = naive_mhsa(x, attn)
    fused = attn(x)
    with explicit_attention(attn):
        explicit = attn(x)
    assert attn.fused  # restored after the context
    torch.testing.assert_close(fused, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(explicit, ref, atol=1e-5, rtol=1e-5)


def test_attend_with_bias_paths_agree():
    q, k, v = torch.randn(3, 2, 4, 7, 8).unbind(0)
    bias = torch.randn(4, 7, 7)
    fused = attend(q, k, v, scale=0.3, bias=bias)
    explicit = torch.softmax(0.3 * q @ k.transpose(-1, -2) + bias, -1) @ v
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
    # a tensor scale (e.g. a learned one) takes the explicit path and gives the same result
    torch.testing.assert_close(attend(q, k, v, scale=torch.tensor(0.3), bias=bias), explicit, atol=1e-5, rtol=1e-5)


def test_record_attention_rows_are_distributions_and_recorder_detaches():
    attn = Attention(16, num_heads=2)
    x = torch.randn(3, 5, 16)
    with record_attention(attn) as maps:
        out = attn(x)
    assert list(maps) == [""]
    a = maps[""]
    assert a.shape == (3, 2, 5, 5)
    torch.testing.assert_close(a.sum(-1), torch.ones(3, 2, 5))
    assert attn.recorder is None
    torch.testing.assert_close(out, attn(x))


def test_attention_permutation_equivariant():
    attn = Attention(24, num_heads=3).eval()
    x = torch.randn(1, 9, 24)
    perm = torch.randperm(9)
    torch.testing.assert_close(attn(x)[:, perm], attn(x[:, perm]), atol=1e-5, rtol=1e-5)


def test_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        Attention(30, num_heads=4)


def test_patch_embed_is_a_reshape_then_linear_map():
    pe = PatchEmbed(img_size=8, patch_size=4, in_chans=3, embed_dim=5)
    x = torch.randn(2, 3, 8, 8)
    patches = x.reshape(2, 3, 2, 4, 2, 4).permute(0, 2, 4, 1, 3, 5).reshape(2, 4, 48)
    ref = patches @ pe.proj.weight.reshape(5, 48).T + pe.proj.bias
    torch.testing.assert_close(pe(x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "x, err, match",
    [
        (torch.randn(1, 1, 8, 8), ValueError, "expects 3 input channels"),
        (torch.randn(1, 3, 10, 10), ValueError, "expects 8x8 images"),
        (torch.randint(0, 255, (1, 3, 8, 8)), TypeError, "floating-point"),
        (torch.randn(3, 8, 8), ValueError, r"\(B, C, H, W\)"),
    ],
)
def test_patch_embed_bad_input(x, err, match):
    pe = PatchEmbed(img_size=8, patch_size=4, in_chans=3, embed_dim=5)
    with pytest.raises(err, match=match):
        pe(x)


def test_patch_size_must_divide_image():
    with pytest.raises(ValueError, match="not divisible by the patch size 16"):
        PatchEmbed(img_size=100, patch_size=16)
    pe = PatchEmbed(img_size=32, patch_size=16, strict_img_size=False)
    with pytest.raises(ValueError, match="not divisible by the patch size 16"):
        pe(torch.randn(1, 3, 40, 40))


def test_drop_path_keeps_expectation_and_drops_whole_samples():
    dp = DropPath(0.25).train()
    x = torch.ones(20000, 3)
    y = dp(x)
    kept = (y[:, 0] != 0).float()
    assert abs(kept.mean().item() - 0.75) < 0.02
    assert torch.all((y == 0).all(1) | (y == 1 / 0.75).all(1))  # whole rows dropped or scaled
    assert abs(y.mean().item() - 1.0) < 0.03
    assert torch.equal(dp.eval()(x), x)


def test_mlp_shapes_and_gelu():
    mlp = Mlp(8, 32, 4)
    x = torch.randn(2, 3, 8)
    ref = F.gelu(x @ mlp.fc1.weight.T + mlp.fc1.bias) @ mlp.fc2.weight.T + mlp.fc2.bias
    torch.testing.assert_close(mlp(x), ref)
