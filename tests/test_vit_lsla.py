"""ViT-LSLA: the LSLA layer against a loop-over-heads reference, the MSA -> LSA fold, every ablation
switch, the recorder, the model's counts against the arithmetic from Swin-T, training and input checks."""
import functools

import pytest
import torch
import torch.nn.functional as F

import vitlearn
from conftest import randomize_, rel_err
from vitlearn.layers import LightSelfLimitedAttention, WindowAttention, attend, lsa_from_msa
from vitlearn.layers.window import relative_position_index, shifted_window_mask
from vitlearn.models.vit_lsla import ConvStem

# One layer configuration for the layer tests: 8x8 map, 4x4 windows (4 per image), shift 2.
DIM, HEADS, M, H = 16, 4, 4, 8  # head_dim 4: the fixed scale 1/2 is a power of two
MASK = shifted_window_mask(H, H, M, M // 2)
OFF = dict(dynamic_scale=False, outer_bias=False)


def lsla(**kwargs) -> LightSelfLimitedAttention:
    return LightSelfLimitedAttention(DIM, HEADS, M, **kwargs).eval()


def windows(batch=2, dtype=torch.float32):
    return torch.randn(batch * (H // M) ** 2, M * M, DIM, dtype=dtype)


def naive_lsla(x, m: LightSelfLimitedAttention, mask=None):
    """LSLA written head by head from the module's weights and tables."""
    idx = relative_position_index(m.window)
    d = m.head_dim
    q = m.q(x)
    k = m.k(x) if m.k is not None else x
    v = m.v(x) if m.v is not None else x
    mask = None if mask is None else mask.repeat(x.shape[0] // mask.shape[0], 1, 1)  # windows image by image
    identity = 0.0 if m.outer_bias_mode == "add" else 1.0
    heads = []
    for i in range(m.num_heads):
        s = slice(i * d, (i + 1) * d)
        logits = q[..., s] @ k[..., s].transpose(1, 2)  # head i: keys are x's i-th channel chunk
        logits = logits * (m.dynamic_scale_table[idx, i] if m.dynamic_scale else m.scale)
        if m.inner_bias:
            logits = logits + m.relative_position_bias_table[idx, i]
        if mask is not None:
            logits = logits + mask
        a = logits.softmax(-1)
        if m.outer_bias:
            outer = m.outer_bias_table[idx, i].expand_as(a)
            if mask is not None and not m.outer_bias_across_regions:
                outer = torch.where(mask < 0, identity, outer)
            a = a + outer if m.outer_bias_mode == "add" else a * outer
        heads.append(a @ v[..., s])
    return m.proj(torch.cat(heads, -1))


# ---------------------------------------------------------------- the layer


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"outer_bias_mode": "mul"},
        {"outer_bias_across_regions": True},
        {"outer_bias_mode": "mul", "outer_bias_across_regions": True},
        {"k_is_x": False, "v_is_x": False, "inner_bias": False},
        {"k_is_x": False, "dynamic_scale": False},
        {"v_is_x": False, "outer_bias": False},
    ],
)
@pytest.mark.parametrize("with_mask", [False, True])
def test_lsla_matches_loop_over_heads(kwargs, with_mask):
    m = randomize_(lsla(**kwargs).double(), std=0.3)  # every table far from its init
    x = windows(dtype=torch.double)
    mask = MASK.double() if with_mask else None
    with torch.no_grad():
        out = m(x, mask=mask)
        assert torch.allclose(out, naive_lsla(x, m, mask), atol=1e-12)


@pytest.mark.parametrize("std", [0.1, 0.3, 0.5])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("qkv_bias", [True, False])
def test_lsa_from_msa_equals_single_head_window_attention(std, with_mask, qkv_bias):
    msa = randomize_(WindowAttention(DIM, 1, M, qkv_bias=qkv_bias), std=std, seed=int(std * 10)).eval()
    lsa = lsa_from_msa(msa)
    assert not lsa.training and lsa.k is None and lsa.v is None
    assert not lsa.dynamic_scale and not lsa.outer_bias and lsa.inner_bias
    assert torch.equal(lsa.relative_position_bias_table, msa.relative_position_bias_table)
    # 2 C² + 2 C fewer parameters: W_k, W_v and their biases are folded away
    saved = 2 * (DIM * DIM + DIM * qkv_bias)
    assert vitlearn.count_parameters(msa) - vitlearn.count_parameters(lsa) == saved
    x = windows()
    mask = MASK if with_mask else None
    with torch.no_grad():
        ref, out = msa(x, mask=mask), lsa(x, mask=mask)
        with vitlearn.explicit_attention(lsa):
            explicit = lsa(x, mask=mask)
    err = max(rel_err(ref, out), rel_err(ref, explicit))
    print(f"fold error std={std} mask={with_mask} bias={qkv_bias}: {err:.2e}")
    assert err < 1e-5


def test_lsa_from_msa_is_exact_in_float64():
    msa = randomize_(WindowAttention(DIM, 1, M), std=0.5).double().eval()
    x = windows(dtype=torch.double)
    with torch.no_grad():
        assert rel_err(msa(x, mask=MASK.double()), lsa_from_msa(msa)(x, mask=MASK.double())) < 1e-13


def test_lsa_from_msa_refuses_multi_head():
    with pytest.raises(ValueError, match="single-head.*own channel slice.*not\\s+representable"):
        lsa_from_msa(WindowAttention(DIM, 2, M))


def _params(m):
    return {k: v.numel() for k, v in m.named_parameters()}


@pytest.mark.parametrize("name", ["k", "v"])
def test_learned_k_or_v_adds_exactly_one_linear(name):
    base = lsla()
    other = lsla(**{f"{name}_is_x": False})
    extra = set(_params(other)) - set(_params(base))
    assert extra == {f"{name}.weight", f"{name}.bias"} and set(_params(base)) <= set(_params(other))
    assert vitlearn.count_parameters(other) - vitlearn.count_parameters(base) == DIM * DIM + DIM
    other.load_state_dict(base.state_dict(), strict=False)  # everything shared is equal
    x = windows()
    with torch.no_grad():
        assert rel_err(base(x), other(x)) > 1e-2


def test_dynamic_scale_at_init_is_the_fixed_scale_exactly():
    ds, fixed = lsla(outer_bias=False), lsla(**OFF)
    assert torch.equal(ds.dynamic_scale_table, torch.full_like(ds.dynamic_scale_table, (DIM // HEADS) ** -0.5))
    assert _params(ds).keys() - _params(fixed).keys() == {"dynamic_scale_table"}
    assert _params(fixed).keys() <= _params(ds).keys()
    fixed.load_state_dict(ds.state_dict(), strict=False)
    x = windows()
    with torch.no_grad(), vitlearn.explicit_attention(fixed):
        # head_dim 4: scaling by 1/2 commutes with rounding, so the two orders agree bit for bit
        assert torch.equal(ds(x, mask=MASK), fixed(x, mask=MASK))
        ds.dynamic_scale_table.mul_(1.5)
        assert rel_err(ds(x, mask=MASK), fixed(x, mask=MASK)) > 1e-3


@pytest.mark.parametrize("mode", ["add", "mul"])
def test_outer_bias_at_init_is_no_outer_bias_exactly(mode):
    with_bo, without = lsla(outer_bias_mode=mode), lsla(outer_bias=False)
    assert _params(with_bo).keys() - _params(without).keys() == {"outer_bias_table"}
    assert _params(without).keys() <= _params(with_bo).keys()
    assert torch.equal(with_bo.outer_bias_table, torch.full_like(with_bo.outer_bias_table, float(mode == "mul")))
    without.load_state_dict(with_bo.state_dict(), strict=False)
    x = windows()
    with torch.no_grad():
        assert torch.equal(with_bo(x, mask=MASK), without(x, mask=MASK))


@pytest.mark.parametrize("mode", ["add", "mul"])
def test_nonzero_outer_bias_changes_only_the_weights_after_softmax(mode):
    m = randomize_(lsla(outer_bias_mode=mode), std=0.3)
    x = windows()
    outer = m.outer_bias_table.detach().clone()
    with torch.no_grad():
        m.outer_bias_table.fill_(float(mode == "mul"))  # the identity: plain softmax weights
        with vitlearn.record_attention(m) as maps:
            m(x)
        softmax = maps[""]
        m.outer_bias_table.copy_(outer)
        with vitlearn.record_attention(m) as maps:
            out = m(x)
        final = maps[""]
    assert torch.allclose(softmax.sum(-1), torch.ones(()))  # rows of the softmax sum to 1 ...
    b_o = outer[relative_position_index(M)].permute(2, 0, 1)  # (heads, N, N)
    assert torch.equal(final, softmax + b_o if mode == "add" else softmax * b_o)
    assert not torch.allclose(final.sum(-1), torch.ones(()))  # ... those of the final weights need not
    # the output is the final weights times X (per head chunk), then proj: the recorder saw what was used
    v = x.view(x.shape[0], M * M, HEADS, DIM // HEADS).transpose(1, 2)
    expected = m.proj((final @ v).transpose(1, 2).reshape(x.shape))
    assert torch.allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("mode", ["add", "mul"])
def test_outer_bias_is_not_applied_across_shifted_window_regions(mode):
    kept = randomize_(lsla(outer_bias_mode=mode), std=0.3)
    crossed = lsla(outer_bias_mode=mode, outer_bias_across_regions=True)
    plain = lsla(outer_bias_mode=mode)
    crossed.load_state_dict(kept.state_dict())
    plain.load_state_dict(kept.state_dict())
    with torch.no_grad():
        plain.outer_bias_table.fill_(float(mode == "mul"))  # the identity: the softmax weights
    x = windows(batch=1)
    maps = {}
    with torch.no_grad():
        for name, m in [("kept", kept), ("crossed", crossed), ("plain", plain)]:
            with vitlearn.record_attention(m) as recorded:
                m(x, mask=MASK)
            maps[name] = recorded[""]
    separated = (MASK < 0)[:, None].expand_as(maps["plain"])
    assert separated.any() and not separated.all()
    # between regions the weights stay the softmax's (≈ e^-100), within a region B_o acts
    assert torch.equal(maps["kept"][separated], maps["plain"][separated])
    assert maps["plain"][separated].abs().max() < 1e-30
    assert (maps["kept"][~separated] != maps["plain"][~separated]).all()
    assert torch.equal(maps["crossed"][~separated], maps["kept"][~separated])
    if mode == "add":  # applied anyway, an additive B_o would mix tokens that are not neighbours
        assert (maps["crossed"][separated].abs() > 1e-6).float().mean() > 0.9


def test_inner_bias_off_removes_the_table():
    with_bi, without = lsla(), lsla(inner_bias=False)
    assert _params(with_bi).keys() - _params(without).keys() == {"relative_position_bias_table"}
    assert _params(without).keys() <= _params(with_bi).keys()
    assert vitlearn.count_parameters(with_bi) - vitlearn.count_parameters(without) == (2 * M - 1) ** 2 * HEADS
    without.load_state_dict(with_bi.state_dict(), strict=False)
    x = windows()
    with torch.no_grad():
        with_bi.relative_position_bias_table.zero_()
        assert torch.equal(with_bi(x), without(x))
        with_bi.relative_position_bias_table.normal_(std=0.5)
        assert rel_err(with_bi(x), without(x)) > 1e-3


def test_bad_outer_bias_mode():
    with pytest.raises(ValueError, match="outer_bias_mode must be one of"):
        lsla(outer_bias_mode="sub")


def _count_sdpa(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    return calls


@pytest.mark.parametrize(
    "kwargs, fused",
    [(OFF, True), ({**OFF, "inner_bias": False}, True), ({"outer_bias": False}, False),
     ({"dynamic_scale": False}, False), ({}, False)],
)
def test_fused_kernel_exactly_when_no_ds_and_no_outer_bias(monkeypatch, kwargs, fused):
    m = randomize_(lsla(**kwargs), std=0.3)
    calls = _count_sdpa(monkeypatch)
    x = windows()
    with torch.no_grad():
        out = m(x, mask=MASK)
        assert len(calls) == int(fused)
        with vitlearn.explicit_attention(m):
            explicit = m(x, mask=MASK)
    assert len(calls) == int(fused)
    assert rel_err(explicit, out) < 1e-5


def test_attend_post_softmax_is_recorded_and_forces_the_explicit_path(monkeypatch):
    q, k, v = torch.randn(3, 2, 4, 7, 8).unbind(0)
    module = LightSelfLimitedAttention(8, 1, 1)  # any AttentionModule, fused
    calls = _count_sdpa(monkeypatch)
    seen = []
    module.recorder = seen.append
    out = attend(q, k, v, scale=0.3, module=module, post_softmax=lambda a: 2 * a)
    softmax = torch.softmax(0.3 * q @ k.transpose(-1, -2), -1)
    assert not calls
    torch.testing.assert_close(seen[0], 2 * softmax)
    torch.testing.assert_close(out, 2 * softmax @ v)
    # a tensor scale (per head, query and key) multiplies the logits
    scale = torch.rand(4, 7, 7)
    ref = torch.softmax(scale * (q @ k.transpose(-1, -2)), -1) @ v
    torch.testing.assert_close(attend(q, k, v, scale=scale), ref)


# ---------------------------------------------------------------- the model

SMALL = dict(img_size=32, embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=4, num_classes=5)


def test_state_dict_layout():
    with torch.device("meta"):
        keys = list(vitlearn.create_model("vit_lsla_tiny").state_dict())
    block = [k.removeprefix("layers.0.blocks.1.attn.") for k in keys if k.startswith("layers.0.blocks.1.attn.")]
    # the module's own tables first (as Swin's relative_position_bias_table), then its Linear layers; no k, v
    assert block == ["relative_position_bias_table", "dynamic_scale_table", "outer_bias_table",
                     "q.weight", "q.bias", "proj.weight", "proj.bias"]
    assert [k for k in keys if k.startswith("patch_embed.")] == [
        "patch_embed.conv1.weight", "patch_embed.bn1.weight", "patch_embed.bn1.bias", "patch_embed.bn1.running_mean",
        "patch_embed.bn1.running_var", "patch_embed.bn1.num_batches_tracked", "patch_embed.conv2.weight",
        "patch_embed.conv2.bias", "patch_embed.norm.weight", "patch_embed.norm.bias"]
    assert keys[-2:] == ["head.fc.weight", "head.fc.bias"]


def test_everything_off_is_swin():
    """K, V learned, no DS, no B_o, patch stem: Swin exactly, with qkv split into q, k, v."""
    swin = vitlearn.create_model("swin_tiny_patch4_window7_224", **SMALL).eval()
    with torch.no_grad():  # parameters only: the attn_mask buffers are geometry
        for p in swin.parameters():
            p.normal_(std=0.1)
    lsla_model = vitlearn.create_model("vit_lsla_tiny", k_is_x=False, v_is_x=False, conv_stem=False, **OFF,
                                       **SMALL).eval()
    state = {}
    for key, value in swin.state_dict().items():
        if ".attn.qkv." in key:
            for name, part in zip("qkv", value.chunk(3)):
                state[key.replace(".qkv.", f".{name}.")] = part
        else:
            state[key] = value
    lsla_model.load_state_dict(state)
    assert vitlearn.count_parameters(lsla_model) == vitlearn.count_parameters(swin)
    x = torch.randn(2, 3, 32, 32, dtype=torch.double)
    with torch.no_grad():
        assert rel_err(swin.double()(x), lsla_model.double()(x)) < 1e-12


def test_record_attention_gives_final_weights_of_every_block():
    model = vitlearn.create_model("vit_lsla_tiny", **SMALL).eval()
    with torch.no_grad():  # parameters only: the attn_mask buffers are geometry
        for p in model.parameters():
            p.normal_(std=0.05)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        with vitlearn.record_attention(model) as maps:
            recorded = model(x)
    assert torch.equal(plain, recorded)  # LSLA never takes the fused path with DS and B_o on
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "layers.0.blocks.0.attn": (8, 1, 16, 16), "layers.0.blocks.1.attn": (8, 1, 16, 16),
        "layers.1.blocks.0.attn": (2, 2, 16, 16), "layers.1.blocks.1.attn": (2, 2, 16, 16)}
    # an unshifted block: rows sum to 1 + the row sums of B_o
    attn = model.layers[0].blocks[0].attn
    b_o = attn.outer_bias_table[relative_position_index(attn.window)].permute(2, 0, 1)
    torch.testing.assert_close(maps["layers.0.blocks.0.attn"].sum(-1), (1 + b_o.sum(-1)).expand(8, 1, 16))


def test_trains_on_cpu():
    torch.manual_seed(0)
    model = vitlearn.create_model("vit_lsla_tiny", **SMALL).train()
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 5
    tables = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith(("scale_table", "outer_bias_table"))}
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print("losses:", " ".join(f"{v:.3f}" for v in losses))
    assert losses[-1] < 0.7 * losses[0]
    assert len(tables) == 8 and all(not torch.equal(p, tables[n]) for n, p in model.named_parameters() if n in tables)


@pytest.mark.parametrize("kwargs", [{}, {"outer_bias_mode": "mul", "k_is_x": False}])
def test_bf16_autocast_forward_finite(kwargs):
    model = vitlearn.create_model("vit_lsla_tiny", **SMALL, **kwargs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 3, 32, 32))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


# ---------------------------------------------------------------- counts against the arithmetic of Swin-T


def _meta(name, **kwargs):
    with torch.device("meta"):
        return vitlearn.create_model(name, **kwargs)


def _blocks(model):
    """(tokens of the map, width, heads, window) of every block."""
    return [(b.input_resolution[0] * b.input_resolution[1], b.norm1.normalized_shape[0], b.attn.num_heads,
             b.window_size) for stage in model.layers for b in stage.blocks]


@functools.cache
def _swin(num_classes):
    model = _meta("swin_tiny_patch4_window7_224", num_classes=num_classes)
    return model, vitlearn.count_parameters(model), vitlearn.count_macs(model)


def _counts(num_classes, **kwargs):
    model = _meta("vit_lsla_tiny", num_classes=num_classes, **kwargs)
    out = model(torch.empty(1, 3, 224, 224, device="meta"))  # a forward pass on the meta device
    assert out.shape == (1, num_classes) and out.device.type == "meta"
    return vitlearn.count_parameters(model), vitlearn.count_macs(model)


ABLATIONS = {
    # name: (kwargs, switched-on parts in the expected-count arithmetic)
    "Swin-T (everything off)": (dict(k_is_x=False, v_is_x=False, dynamic_scale=False, outer_bias=False,
                                     conv_stem=False), set()),
    "K = X": (dict(v_is_x=False, dynamic_scale=False, outer_bias=False, conv_stem=False), {"k"}),
    "K = V = X": (dict(dynamic_scale=False, outer_bias=False, conv_stem=False), {"k", "v"}),
    "K = V = X, no B_i": (dict(dynamic_scale=False, inner_bias=False, outer_bias=False, conv_stem=False),
                          {"k", "v", "-bi"}),
    "+ DS": (dict(outer_bias=False, conv_stem=False), {"k", "v", "ds"}),
    "+ DS + B_o": (dict(conv_stem=False), {"k", "v", "ds", "bo"}),
    "+ DS + B_o + conv stem (ViT-LSLA)": (dict(), {"k", "v", "ds", "bo", "stem"}),
}


def _expected(num_classes, parts):
    swin, params, macs = _swin(num_classes)
    for tokens, c, heads, window in _blocks(swin):
        table = (2 * window[0] - 1) * (2 * window[1] - 1) * heads
        for p in {"k", "v"} & parts:  # a C×C projection with bias, applied to every token
            params -= c * c + c
            macs -= tokens * c * c
        params += table * (("ds" in parts) + ("bo" in parts) - ("-bi" in parts))
    if "stem" in parts:
        c, (h, w) = 96, (224, 224)
        params -= 3 * 16 * c + c  # the 4x4 patch projection (its LayerNorm stays)
        macs -= (h // 4) * (w // 4) * c * 3 * 16
        params += 3 * 9 * (c // 2) + 2 * (c // 2) + (c // 2) * 9 * c + c  # conv1 (no bias), BN, conv2
        macs += (h // 2) * (w // 2) * (c // 2) * 3 * 9 + (h // 4) * (w // 4) * c * (c // 2) * 9
    return params, macs


@pytest.mark.parametrize("num_classes", [1000, 100])
def test_parameter_and_mac_counts_follow_from_swin_t(num_classes):
    _, swin_params, swin_macs = _swin(num_classes)
    print(f"\n{num_classes} classes (paper, 100/102 classes: ViT-LSLA 18.9M / 3.5G, Swin-T 27.6M / 4.5G)")
    print(f"  {'swin_tiny_patch4_window7_224':36s} {swin_params / 1e6:7.3f}M {swin_macs / 1e9:6.3f}G")
    for name, (kwargs, parts) in ABLATIONS.items():
        params, macs = _counts(num_classes, **kwargs)
        print(f"  {name:36s} {params / 1e6:7.3f}M {macs / 1e9:6.3f}G")
        assert (params, macs) == _expected(num_classes, parts), name
    if num_classes == 100:
        assert abs(swin_params / 27.60e6 - 1) < 0.01 and abs(swin_macs / 4.5e9 - 1) < 0.01
        # W_k and W_v removed: 4.32M fewer parameters and 0.69G fewer MACs, as computed in the reference note
        assert abs(_counts(100, **ABLATIONS["K = V = X"][0])[0] / 23.276e6 - 1) < 1e-3


# ---------------------------------------------------------------- input checks


def test_bad_image_sizes_and_inputs():
    with pytest.raises(ValueError, match=r"ViTLSLA: a 200x200 image .* each side one of 224, 448"):
        vitlearn.create_model("vit_lsla_tiny", img_size=200)
    with torch.device("meta"):
        model = vitlearn.create_model("vit_lsla_tiny")
        with pytest.raises(ValueError, match="create the model with img_size=448"):
            model(torch.randn(1, 3, 448, 448))
        with pytest.raises(ValueError, match="3 input channels"):
            model(torch.randn(1, 1, 224, 224))
        with pytest.raises(TypeError, match="floating-point"):
            model(torch.zeros(1, 3, 224, 224, dtype=torch.uint8))
        stem = ConvStem(64, 4, 3, 16)
        assert stem(torch.randn(2, 3, 64, 64)).shape == (2, 16, 16, 16)
        with pytest.raises(ValueError, match="expects 64x64 images, got 32x32"):
            stem(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="patch_size must be 4"):
        vitlearn.create_model("vit_lsla_tiny", patch_size=2)
