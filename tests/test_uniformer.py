"""UniFormer: the official state-dict layout of every variant, counts against the papers, the
forward pass against one written here from plain torch ops on the state dict, the local MHRA as an
N×N affinity, image -> video inflation, attention recording, and input checks.

Parity with the official code itself (which vitlearn does not ship) is checked by
scripts/check_uniformer_official.py; tests/data/uniformer_official_keys.json is its key -> shape dump.
"""
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import vitlearn
from conftest import randomize_, rel_err
from vitlearn.convert import inflate_2d_to_3d
from vitlearn.layers import LocalMHRABlock, local_affinity

OFFICIAL_KEYS = json.loads((Path(__file__).parent / "data" / "uniformer_official_keys.json").read_text())
# label in the key file -> (vitlearn variant, keywords)
OFFICIAL = {
    "uniformer_small": ("uniformer_small", {}),
    "uniformer_small_plus": ("uniformer_small_plus", {}),
    "uniformer_base": ("uniformer_base", {}),
    "uniformer_base_ls": ("uniformer_base_ls", {}),
    "uniformer_large_ls": ("uniformer_large_ls", {}),
    "uniformer_small+TL": ("uniformer_small", dict(token_labeling=True, head_dim=32)),
    "uniformer_small_plus+TL": ("uniformer_small_plus", dict(token_labeling=True)),
    "uniformer_base+TL": ("uniformer_base", dict(token_labeling=True, head_dim=32)),
    "uniformer_small_video": ("uniformer_small_video", {}),
    "uniformer_base_video": ("uniformer_base_video", {}),
}
TOY = dict(depths=(1, 1, 1, 1), embed_dims=(16, 16, 32, 32), head_dim=16, num_classes=5)


def test_the_key_file_covers_every_variant():
    assert set(OFFICIAL) == set(OFFICIAL_KEYS)
    assert {name for name, _ in OFFICIAL.values()} == set(vitlearn.list_models("uniformer*"))


@pytest.mark.parametrize("label", sorted(OFFICIAL))
def test_state_dict_has_the_official_keys_and_shapes(label):
    name, kwargs = OFFICIAL[label]
    with torch.device("meta"):
        model = vitlearn.create_model(name, **kwargs)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == dict(OFFICIAL_KEYS[label])


# Parameters and MACs ("FLOPs") of the READMEs / fvcore on the released code (architectures.md §2),
# per single view for video. L: 100.10M with its aux head; the README's 12.6G does not match the
# released configuration, which fvcore and we both count at 19.7G.
COUNTS = {
    "uniformer_small": (21.55e6, 3.64e9), "uniformer_small_plus": (24.03e6, 4.21e9),
    "uniformer_base": (49.78e6, 8.27e9), "uniformer_base_ls": (49.78e6, 8.27e9),
    "uniformer_large_ls": (100.10e6, 19.76e9),
    "uniformer_small_video": (21.40e6, 17.6e9), "uniformer_base_video": (49.81e6, 40.2e9),
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_counts_match_the_papers(name):
    params, macs = COUNTS[name]
    with torch.device("meta"):
        model = vitlearn.create_model(name)
    assert abs(vitlearn.count_parameters(model) / params - 1) < 0.01
    assert abs(vitlearn.count_macs(model, model.default_input_size) / macs - 1) < 0.02


# ---------------------------------------------------------------------------------------------
# A forward pass from plain torch ops on the state dict, following the official code's order.

def _conv(x, sd, p, stride=1, padding=0, groups=1):
    conv = F.conv2d if x.ndim == 4 else F.conv3d
    return conv(x, sd[p + ".weight"], sd[p + ".bias"], stride, padding, 1, groups)


def _bn(x, sd, p, training):
    return F.batch_norm(x, sd[p + ".running_mean"].clone(), sd[p + ".running_var"].clone(), sd[p + ".weight"],
                        sd[p + ".bias"], training, 0.0, 1e-5)


def _ln(x, sd, p, eps):
    return F.layer_norm(x, x.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], eps)


def _linear(x, sd, p):
    return x @ sd[p + ".weight"].T + sd[p + ".bias"]


def _gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def _ls(x, sd, key):
    return x * sd[key] if key in sd else x


def scratch_forward(sd, x, head_dim, conv_stem=False, training=False):
    video = x.ndim == 5
    for i in range(1, 5):
        p = f"patch_embed{i}.proj"
        if conv_stem and i == 1:
            x = _gelu(_bn(_conv(x, sd, p + ".0", 2, 1), sd, p + ".1", training))
            x = _bn(_conv(x, sd, p + ".3", 2, 1), sd, p + ".4", training)
        elif conv_stem:
            x = _bn(_conv(x, sd, p + ".0", 2, 1), sd, p + ".1", training)
        else:
            if video:
                stride, padding = ((2, 4, 4), (1, 0, 0)) if i == 1 else ((1, 2, 2), 0)
            else:
                stride, padding = (4 if i == 1 else 2), 0
            x = _conv(x, sd, p, stride, padding)
            x = _ln(x.movedim(1, -1), sd, f"patch_embed{i}.norm", 1e-5).movedim(-1, 1)
        j = 0
        while f"blocks{i}.{j}.pos_embed.weight" in sd:
            b, C = f"blocks{i}.{j}", x.shape[1]
            x = x + _conv(x, sd, b + ".pos_embed", padding=1, groups=C)
            if i <= 2:
                y = _conv(_bn(x, sd, b + ".norm1", training), sd, b + ".conv1")
                y = _conv(_conv(y, sd, b + ".attn", padding=2, groups=C), sd, b + ".conv2")
                x = x + _ls(y, sd, b + ".gamma_1")
                y = _conv(_gelu(_conv(_bn(x, sd, b + ".norm2", training), sd, b + ".mlp.fc1")), sd, b + ".mlp.fc2")
                x = x + _ls(y, sd, b + ".gamma_2")
            else:
                shape, (B, H) = x.shape, (x.shape[0], C // head_dim)
                t = x.flatten(2).transpose(1, 2)
                q, k, v = _linear(_ln(t, sd, b + ".norm1", 1e-6), sd, b + ".attn.qkv").split(C, dim=-1)
                q, k, v = (z.reshape(B, -1, H, head_dim).transpose(1, 2) for z in (q, k, v))
                a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(head_dim), dim=-1)
                o = (a @ v).transpose(1, 2).reshape(B, -1, C)
                t = t + _ls(_linear(o, sd, b + ".attn.proj"), sd, b + ".gamma_1")
                y = _linear(_gelu(_linear(_ln(t, sd, b + ".norm2", 1e-6), sd, b + ".mlp.fc1")), sd, b + ".mlp.fc2")
                t = t + _ls(y, sd, b + ".gamma_2")
                x = t.transpose(1, 2).reshape(shape)
            j += 1
    tokens = _bn(x, sd, "norm", training).flatten(2).transpose(1, 2)
    logits = _linear(tokens.mean(1), sd, "head")
    if "aux_head.weight" not in sd:
        return logits
    aux = _linear(tokens, sd, "aux_head")
    return (logits, aux) if training else logits + 0.5 * aux.max(dim=1).values


# float64 depthwise convs take PyTorch's slow per-channel path on the CPU, so all but the first case
# use narrow widths; each keeps its variant's stem, LayerScale placement and token-labeling head.
NARROW = dict(embed_dims=(16, 32, 64, 64), head_dim=32)
SCRATCH = {
    "S real widths": ("uniformer_small", dict(depths=(1, 1, 1, 1)), (2, 3, 32, 64)),
    "S-dagger": ("uniformer_small_plus", dict(depths=(2, 2, 2, 1), **NARROW), (2, 3, 64, 64)),
    "B+LS": ("uniformer_base_ls", dict(depths=(1, 1, 2, 1), **NARROW), (2, 3, 64, 64)),
    "L+LS": ("uniformer_large_ls", dict(depths=(1, 2, 2, 1), **NARROW), (2, 3, 64, 64)),
    "S+TL non-square": ("uniformer_small", dict(token_labeling=True, depths=(1, 1, 2, 1), **NARROW), (2, 3, 64, 96)),
    "S video": ("uniformer_small_video", dict(depths=(1, 1, 2, 1), **NARROW), (2, 3, 4, 64, 64)),
    "B video odd T": ("uniformer_base_video", dict(depths=(1, 1, 1, 1), **NARROW), (2, 3, 3, 32, 64)),
}


@pytest.mark.parametrize("case", list(SCRATCH))
def test_matches_a_forward_written_from_scratch_in_float64(case):
    name, kwargs, shape = SCRATCH[case]
    model = randomize_(vitlearn.create_model(name, **kwargs)).double().eval()
    x = torch.randn(shape, dtype=torch.float64)
    sd = model.state_dict()
    with torch.no_grad():
        out = model(x)
        ref = scratch_forward(sd, x, model.head_dim, conv_stem="patch_embed1.proj.0.weight" in sd)
    assert out.shape == (2, model.num_classes)
    assert rel_err(ref, out) < 1e-10


def test_token_labeling_train_mode_returns_class_and_token_logits():
    model = randomize_(vitlearn.create_model("uniformer_large_ls", depths=(1, 1, 1, 1), num_classes=7, **NARROW))
    model = model.double().train()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        logits, aux = model(x)
        ref_logits, ref_aux = scratch_forward(sd, x, 32, training=True)
    assert logits.shape == (2, 7) and aux.shape == (2, 2 * 2, 7)  # 64/32 = 2: 4 final tokens
    assert rel_err(ref_logits, logits) < 1e-10 and rel_err(ref_aux, aux) < 1e-10


def test_head_dim_is_not_in_the_checkpoint_and_a_wrong_one_loads_silently():
    hd32 = randomize_(vitlearn.create_model("uniformer_small", head_dim=32, depths=(1, 1, 1, 1))).eval()
    hd64 = vitlearn.create_model("uniformer_small", depths=(1, 1, 1, 1)).eval()
    hd64.load_state_dict(hd32.state_dict(), strict=True)  # no error ...
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(hd32(x), hd64(x)) > 1e-3  # ... and another function


def test_drop_path_grows_linearly_over_all_blocks():
    with torch.device("meta"):
        model = vitlearn.create_model("uniformer_small", drop_path_rate=0.1)
    rates = [blk.drop_path.drop_prob for _, blocks in model.stages() for blk in blocks]
    assert len(rates) == 18
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.1, 18), rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_every_variant_trains_a_step_on_the_cpu(name):
    # each variant's stem, LayerScale and heads at narrow widths (real widths: the key and count tests)
    model = vitlearn.create_model(name, depths=(1, 1, 1, 1), num_classes=5, drop_path_rate=0.1, drop_rate=0.1, **NARROW)
    x = torch.randn((2, 3, 2, 32, 32) if model.video else (2, 3, 32, 32))
    out = model(x)
    outs = out if isinstance(out, tuple) else (out,)
    assert outs[0].shape == (2, 5) and isinstance(out, tuple) == (model.aux_head is not None)
    sum(o.logsumexp(-1).mean() for o in outs).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 5)
        feats = model.forward_features(x)
        assert feats.shape[:2] == (2, model.num_features) and feats.shape[-2:] == (1, 1)
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)


def test_video_bf16_autocast_is_finite_and_close():
    model = randomize_(vitlearn.create_model("uniformer_small_video", **TOY), std=0.05).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    assert rel_err(ref, out.float()) < 6e-2


# ---------------------------------------------------------------------------------------------
# The local MHRA as an affinity matrix.

def test_local_affinity_times_the_map_is_the_depthwise_conv():
    w = torch.randn(3, 5, 5, dtype=torch.float64)
    x = torch.randn(3, 6, 7, dtype=torch.float64)
    A = local_affinity(w, (6, 7))
    assert A.shape == (3, 42, 42)
    ref = F.conv2d(x[None], w[:, None], padding=2, groups=3)[0]
    torch.testing.assert_close((A @ x.reshape(3, 42, 1)).reshape(3, 6, 7), ref)
    # one kernel shared by every position (Toeplitz): an interior row is the kernel, zeros elsewhere
    centre = 3 * 7 + 3
    torch.testing.assert_close(A[:, centre].reshape(3, 6, 7)[:, 1:6, 1:6], w)
    assert A[:, centre].count_nonzero() == 3 * 25
    w3, x3 = torch.randn(2, 3, 3, 3, dtype=torch.float64), torch.randn(2, 4, 5, 6, dtype=torch.float64)
    ref3 = F.conv3d(x3[None], w3[:, None], padding=1, groups=2)[0]
    torch.testing.assert_close((local_affinity(w3, (4, 5, 6)) @ x3.reshape(2, -1, 1)).reshape(2, 4, 5, 6), ref3)
    with pytest.raises(ValueError, match="odd"):
        local_affinity(torch.randn(4, 4), (5, 5))


def test_block_affinity_reproduces_the_local_mhra():
    blk = randomize_(LocalMHRABlock(8)).double().eval()
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        y = blk.conv1(x).flatten(2)  # (B, C, N)
        mixed = torch.einsum("cij,bcj->bci", blk.affinity((5, 6)), y) + blk.attn.bias[:, None]
        ref = blk.conv2(mixed.reshape(2, 8, 5, 6))
        torch.testing.assert_close(blk.mhra(x), ref)


# ---------------------------------------------------------------------------------------------
# Image -> video inflation.

def _inflated_pair(**kwargs):
    image = randomize_(vitlearn.create_model("uniformer_small", **{**TOY, **kwargs})).double().eval()
    video = vitlearn.create_model("uniformer_small_video", **{**TOY, **kwargs}).double().eval()
    video.load_state_dict(inflate_2d_to_3d(image.state_dict(), video), strict=True)
    return image, video


def test_inflation_repeats_each_kernel_over_time_and_divides():
    image, video = _inflated_pair()
    sd2, sd3 = image.state_dict(), video.state_dict()
    k_t = {"patch_embed1.proj.weight": 3, "patch_embed2.proj.weight": 1, "blocks1.0.pos_embed.weight": 3,
           "blocks1.0.attn.weight": 5, "blocks1.0.conv1.weight": 1, "blocks2.0.mlp.fc1.weight": 1,
           "blocks3.0.pos_embed.weight": 3}
    for key, k in k_t.items():
        assert sd3[key].shape[2] == k
        for t in range(k):
            torch.testing.assert_close(sd3[key][:, :, t], sd2[key] / k, rtol=0, atol=0)
    torch.testing.assert_close(sd3["blocks3.0.attn.qkv.weight"], sd2["blocks3.0.attn.qkv.weight"], rtol=0, atol=0)
    # another class count: the head is left out, as in the official code
    video400 = vitlearn.create_model("uniformer_small_video", **{**TOY, "num_classes": 400})
    result = video400.load_state_dict(inflate_2d_to_3d(sd2, video400), strict=False)
    assert sorted(result.missing_keys) == ["head.bias", "head.weight"] and not result.unexpected_keys
    ls = vitlearn.create_model("uniformer_base_ls", **TOY)
    with pytest.raises(ValueError, match="gamma_1"):
        inflate_2d_to_3d(ls.state_dict(), video)


def test_inflated_model_on_a_still_clip_reproduces_2d_only_away_from_the_ends():
    image, video = _inflated_pair()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    T = 8
    clip = x[:, :, None].expand(-1, -1, T, -1, -1)
    with torch.no_grad():
        # stem (3, 4, 4), stride (2, 4, 4), padding 1: output t sees frames 2t-1 .. 2t+1, so only t = 0
        # reaches the zero padding (the last one, frames 5..7 of 8, is interior)
        s2, s3 = image.patch_embed1(x), video.patch_embed1(clip)
        assert s3.shape[2] == T // 2
        for t in range(1, T // 2):
            torch.testing.assert_close(s3[:, :, t], s2)
        assert rel_err(s2, s3[:, :, 0]) > 1e-2
        # every conv of a local block on a still map: positions whose temporal window lies inside match
        m2 = s2
        m3 = m2[:, :, None].expand(-1, -1, T, -1, -1)
        b2, b3 = image.blocks1[0], video.blocks1[0]
        for name, k in [("pos_embed", 3), ("attn", 5), ("conv1", 1), ("conv2", 1)]:
            o2, o3 = getattr(b2, name)(m2), getattr(b3, name)(m3)
            pad = k // 2
            for t in range(T):
                if pad <= t < T - pad:
                    torch.testing.assert_close(o3[:, :, t], o2)
                else:
                    assert rel_err(o2, o3[:, :, t]) > 1e-2, (name, t)
        # joint attention over T copies of every key: each weight is split T ways over equal values
        a2, a3 = image.blocks3[0].attn, video.blocks3[0].attn
        tokens = torch.randn(2, 16, 32, dtype=torch.float64)
        torch.testing.assert_close(a3(tokens.repeat(1, T, 1)), a2(tokens).repeat(1, T, 1))
        # end effects spread inwards block by block, and global attention mixes them into every token
        assert rel_err(image(x), video(clip)) > 1e-3


# ---------------------------------------------------------------------------------------------
# Attention recording and input checks.

def test_record_attention_sees_the_global_blocks():
    model = randomize_(vitlearn.create_model("uniformer_small", depths=(1, 1, 2, 1), num_classes=5)).eval()
    x = torch.randn(2, 3, 64, 64)
    inputs = {}
    model.blocks3[1].norm1.register_forward_hook(lambda m, a, out: inputs.setdefault("t", out))
    with torch.no_grad():
        fused = model(x)
        with vitlearn.record_attention(model) as maps:
            out = model(x)
    assert set(maps) == {"blocks3.0.attn", "blocks3.1.attn", "blocks4.0.attn"}
    assert maps["blocks3.0.attn"].shape == (2, 5, 16, 16) and maps["blocks4.0.attn"].shape == (2, 8, 4, 4)
    assert rel_err(fused, out) < 1e-5
    attn = model.blocks3[1].attn
    q, k, _ = (attn.qkv(inputs["t"]).reshape(2, 16, 3, 5, 64).permute(2, 0, 3, 1, 4))
    torch.testing.assert_close(maps["blocks3.1.attn"], (q @ k.transpose(-2, -1) / 8).softmax(-1))
    video = vitlearn.create_model("uniformer_small_video", **TOY).eval()
    with torch.no_grad(), vitlearn.record_attention(video) as maps:
        video(torch.randn(1, 3, 4, 64, 64))
    assert maps["blocks3.0.attn"].shape == (1, 2, 2 * 4 * 4, 2 * 4 * 4)  # joint over (T/2)·H/16·W/16


def test_bad_inputs_get_clear_errors():
    image = vitlearn.create_model("uniformer_small", **TOY)
    video = vitlearn.create_model("uniformer_small_video", **TOY)
    with pytest.raises(ValueError, match="3 input channels"):
        image(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="not divisible by the total stride"):
        image(torch.randn(1, 3, 64, 80))
    with pytest.raises(ValueError, match=r"images shaped \(B, C, H, W\)"):
        image(torch.randn(1, 3, 2, 64, 64))
    with pytest.raises(TypeError, match="floating-point"):
        image(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"clips shaped \(B, C, T, H, W\)"):
        video(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="at least 1 frame"):
        video(torch.randn(1, 3, 0, 64, 64))
    with pytest.raises(ValueError, match="not divisible by the total stride"):
        video(torch.randn(1, 3, 4, 48, 64))
    with pytest.raises(ValueError, match="not divisible by head_dim 48"):
        vitlearn.create_model("uniformer_small", head_dim=48)
    with pytest.raises(ValueError, match="images only"):
        vitlearn.create_model("uniformer_small_plus", video=True)
