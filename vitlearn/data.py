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


def digits(size: int = 16, test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes), upsampled to
    size×size, replicated to 3 channels and standardised.

    Returns ``(x_train, y_train, x_test, y_test)`` with images shaped (n, 3, size, size).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
    x = (x - 0.5) / 0.5
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(y)))
    test, train = perm[:n_test], perm[n_test:]
    return x[train].contiguous(), y[train], x[test].contiguous(), y[test]
