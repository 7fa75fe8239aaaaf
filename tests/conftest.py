import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def randomize_(module: torch.nn.Module, std: float = 0.1, seed: int = 0) -> torch.nn.Module:
    """Overwrites every floating-point parameter and buffer with N(0, std²).

    Default inits (small std, zero biases, unit LayerNorm weights) hide mismatches such as
    tanh- vs erf-GELU or a swapped bias; index buffers (integer) keep their values.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * std)
    return module


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a - b| / max|a|."""
    return ((a - b).abs().max() / a.abs().max()).item()


def assert_from_timm_matches(tm: torch.nn.Module, batch: int = 1) -> None:
    """vitlearn.from_timm(tm) keeps tm's mode and computes tm's logits (relative error below 1e-5)."""
    import vitlearn

    model = vitlearn.from_timm(tm)
    assert model.training == tm.training
    x = torch.randn(batch, tm.patch_embed.proj.in_channels, *tm.patch_embed.img_size)
    with torch.no_grad():
        ref, out = tm(x), model(x)
    assert out.shape == ref.shape
    assert rel_err(ref, out) < 1e-5
