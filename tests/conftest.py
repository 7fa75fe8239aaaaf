import os

import pytest
import torch


# The browser tests need the built book: they run from `make test-browser` (which sets this variable
# after the build), not in the package tests, so a plain `pytest tests` does not even collect them.
collect_ignore = [] if os.environ.get("VITLEARN_BROWSER_TEST") else ["browser"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


from vitlearn.utils import randomize_  # noqa: E402,F401  (shared with benchmarks/)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a - b| / max|a|."""
    return ((a - b).abs().max() / a.abs().max()).item()


PARITY_TOLERANCE = 1e-6  # float32 parity of correct code: 0 for ViT and CaiT, ~2e-7 for Swin


def assert_from_timm_matches(tm: torch.nn.Module, batch: int = 2, tol: float = PARITY_TOLERANCE,
                             dtype: torch.dtype = torch.float32) -> float:
    """vitlearn.from_timm(tm) keeps tm's mode and computes tm's logits on a random batch (relative
    error max|Δ| / max|ref| below ``tol``); returns the error. Batch >= 2, so that a mix-up between
    the images of a batch (e.g. window order) cannot hide. ``dtype=torch.float64`` compares both
    models in double precision, where correct code agrees to ~1e-15 (use with a tolerance near 1e-10)."""
    import vitlearn

    tm = tm.to(dtype)
    model = vitlearn.from_timm(tm)
    assert model.training == tm.training
    x = torch.randn(batch, tm.patch_embed.proj.in_channels, *tm.patch_embed.img_size, dtype=dtype)
    with torch.no_grad():
        ref, out = tm(x), model(x)
    assert out.shape == ref.shape
    err = rel_err(ref, out)
    assert err < tol, f"relative error {err:.2e} above {tol:.0e}"
    return err


# Under CI=true a skipped test is a failure unless its reason starts with one of these prefixes:
# tests that need hardware or a system package CI machines may lack, each saying how to get it.
ALLOWED_SKIP_PREFIXES = ("GPU", "CUDA", "Chromium")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        if not reason.startswith(ALLOWED_SKIP_PREFIXES):
            report.outcome = "failed"
            report.longrepr = (f"skipped under CI=true, which only allows skips whose reason starts with "
                               f"{ALLOWED_SKIP_PREFIXES} (tests/conftest.py): {reason}")
