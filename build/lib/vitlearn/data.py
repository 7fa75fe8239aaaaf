"""Offline data for the book and tests: images that packages ship, and small bundled data sets.

Nothing here touches the network. ``scikit-image`` and ``scikit-learn`` are imported lazily, so the
package itself does not depend on them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# Square crops (top, left, side) that keep the subject whole; other images are centre-cropped.
_SQUARE_CROPS = {"chelsea": (0, 40, 300)}  # both of the cat's ears stay in the picture


def sample_image(name: str = "chelsea", size: int | None = 224) -> torch.Tensor:
    """A photograph bundled with scikit-image (``skimage.data.<name>``), as a float tensor (3, H, W)
    in [0, 1]; with ``size``, cropped to a square (centred, or chosen to keep the subject, e.g.
    both of Chelsea's ears) and resized to (3, size, size)."""
    from skimage import data as skdata

    if not hasattr(skdata, name):
        raise ValueError(f"skimage.data has no image {name!r} (try 'chelsea', 'astronaut', 'coffee')")
    img = torch.from_numpy(getattr(skdata, name)()).float() / 255.0
    if img.ndim == 2:
        img = img[..., None].expand(-1, -1, 3)
    img = img.permute(2, 0, 1).contiguous()
    if size is None:
        return img
    h, w = img.shape[-2:]
    s = min(h, w)
    top, left, s = _SQUARE_CROPS.get(name, ((h - s) // 2, (w - s) // 2, s))
    img = img[:, top:top + s, left:left + s]
    return F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


def normalize(img: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Per-channel standardisation of (..., 3, H, W) images."""
    m = torch.tensor(mean, dtype=img.dtype, device=img.device)[:, None, None]
    s = torch.tensor(std, dtype=img.dtype, device=img.device)[:, None, None]
    return (img - m) / s


def _sklearn_digits(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 bundled 8×8 digits as (n, 1, size, size) floats in [0, 1] (bilinear
    upsampling) and their labels (n,)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x, torch.tensor(d.target, dtype=torch.long)


def _split(n: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random (train, test) index split of n items."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * n))
    return perm[n_test:], perm[:n_test]


def digits(size: int = 16, test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes), upsampled to
    size×size, replicated to 3 channels and standardised.

    Returns ``(x_train, y_train, x_test, y_test)`` with images shaped (n, 3, size, size).
    """
    x, y = _sklearn_digits(size)
    x = (x.expand(-1, 3, -1, -1) - 0.5) / 0.5
    train, test = _split(len(y), test_fraction, seed)
    return x[train].contiguous(), y[train], x[test].contiguous(), y[test]


def translated_digits(canvas: int = 32, digit_size: int = 16, seed: int = 0, test_fraction: float = 0.2,
                      noise_std: float = 0.1):
    """scikit-learn's bundled digits, each upsampled to digit_size×digit_size and pasted at a random
    position on a canvas×canvas background of light Gaussian noise (std ``noise_std``, the digit's
    ink being in [0, 1]); replicated to 3 channels and standardised with the training split's mean
    and standard deviation (one scalar each).

    Unlike :func:`digits`, where every digit is centred and fills the image, here the class must be
    found wherever it lies, and most of the image is background: a task where position and locality
    matter. Positions, noise and the split are drawn from generators seeded with ``seed``, so the data
    are the same on every call (and, on a given PyTorch version, every machine); fully offline.

    Returns ``(x_train, y_train, x_test, y_test)`` with images shaped (n, 3, canvas, canvas).
    """
    if not 0 < digit_size <= canvas:
        raise ValueError(f"translated_digits: need 0 < digit_size <= canvas, got digit_size={digit_size}, canvas={canvas}")
    glyphs, y = _sklearn_digits(digit_size)
    n = len(y)
    g = torch.Generator().manual_seed(seed)
    top = torch.randint(0, canvas - digit_size + 1, (n,), generator=g)
    left = torch.randint(0, canvas - digit_size + 1, (n,), generator=g)
    x = noise_std * torch.randn(n, 1, canvas, canvas, generator=g)
    for i in range(n):
        t, l = top[i].item(), left[i].item()
        x[i, :, t:t + digit_size, l:l + digit_size] += glyphs[i]
    train, test = _split(n, test_fraction, seed)
    mean, std = x[train].mean(), x[train].std()
    x = ((x - mean) / std).expand(-1, 3, -1, -1)
    return x[train].contiguous(), y[train], x[test].contiguous(), y[test]
