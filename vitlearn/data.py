"""Offline data for the book and tests: images that packages ship, and small bundled data sets.

Nothing here touches the network. ``scikit-image`` and ``scikit-learn`` are imported lazily, so the
package itself does not depend on them.
"""
from __future__ import annotations

import math

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


# ============================================================================ Dataset classes
# Standard ``torch.utils.data.Dataset``s, so that a trainer treats them like a user's ImageFolder.
# Every one is generated in full at construction from seeded generators (no global RNG), so the
# same arguments give the same tensors on every call; augmentations are drawn once, into a fixed pool.

from torch.utils.data import Dataset  # noqa: E402

_SPLITS = ("train", "val")


def _check_split(split: str, who: str) -> None:
    if split not in _SPLITS:
        raise ValueError(f"{who}: split must be one of {_SPLITS}, got {split!r}")


class TensorImageDataset(Dataset):
    """Images and labels held in memory: ``ds[i]`` is ``(image (C, H, W) float, label int)``.

    Attributes: ``images`` (n, C, H, W), ``targets`` (n,) long, ``classes`` (names, index = label).
    :meth:`tensors` returns ``(images, targets)`` for trainers that take tensors.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, classes: list[str]):
        if images.ndim != 4 or len(images) != len(targets):
            raise ValueError(f"{type(self).__name__}: need images (n, C, H, W) and n targets, got "
                             f"{tuple(images.shape)} and {tuple(targets.shape)}")
        self.images, self.targets, self.classes = images.contiguous(), targets.long(), list(classes)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.targets[i])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images, self.targets


class DigitsDataset(TensorImageDataset):
    """scikit-learn's 1,797 bundled 8×8 digits, bilinearly upsampled to ``size``, 3 channels,
    standardised to [-1, 1]; ``split`` "train" or "val" (a seeded split by image, ``val_fraction``
    of them for validation). The same images as :func:`digits` with the same arguments."""

    def __init__(self, split: str = "train", size: int = 32, val_fraction: float = 0.2, seed: int = 0):
        _check_split(split, type(self).__name__)
        x_tr, y_tr, x_va, y_va = digits(size=size, test_fraction=val_fraction, seed=seed)
        x, y = (x_tr, y_tr) if split == "train" else (x_va, y_va)
        super().__init__(x, y, [str(d) for d in range(10)])


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


class PhotoCropsDataset(TensorImageDataset):
    """Which photograph is this crop from? Random crops of scikit-image's bundled photographs.

    Each photograph (``photos``, one class each; grey images are replicated to 3 channels) is
    square-cropped and resized to ``source_size`` (:func:`sample_image`). Training crops come from its
    left part, validation crops from a held-out strip of its right ``val_strip`` columns (so no
    validation pixel is ever seen in training). A crop has a random side in ``crop_range`` pixels of the
    source, is resized to ``size``, flipped left-right with probability 1/2, and colour-jittered
    (brightness, contrast and saturation each scaled by a factor in [1 − jitter, 1 + jitter]); then
    standardised with ImageNet's mean and std. ``per_class`` crops per photograph; balanced classes.
    """

    def __init__(self, split: str = "train", size: int = 32, per_class: int = 200, photos=PHOTOS,
                 source_size: int = 160, val_strip: int = 48, crop_range: tuple[int, int] = (32, 48),
                 jitter: float = 0.3, seed: int = 0):
        who = type(self).__name__
        _check_split(split, who)
        lo, hi = crop_range
        if not 0 < lo <= hi <= min(val_strip, source_size - val_strip):
            raise ValueError(f"{who}: need 0 < crop_range[0] <= crop_range[1] <= val_strip ({val_strip}) "
                             f"and <= source_size - val_strip ({source_size - val_strip}), got {crop_range}")
        if per_class < 1:
            raise ValueError(f"{who}: per_class must be >= 1, got {per_class}")
        # Different streams for the two splits, both fixed by ``seed``.
        g = torch.Generator().manual_seed(2 * seed + (split == "val"))
        images, targets = [], []
        for label, name in enumerate(photos):
            src = sample_image(name, size=source_size)
            x0, x1 = (0, source_size - val_strip) if split == "train" else (source_size - val_strip, source_size)
            for _ in range(per_class):
                side = int(torch.randint(lo, hi + 1, (1,), generator=g))
                top = int(torch.randint(0, source_size - side + 1, (1,), generator=g))
                left = x0 + int(torch.randint(0, x1 - x0 - side + 1, (1,), generator=g))
                crop = src[:, top:top + side, left:left + side]
                crop = F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True,
                                     align_corners=False)[0]
                if torch.rand((), generator=g) < 0.5:
                    crop = crop.flip(-1)
                b, c, s = (1 + jitter * (2 * torch.rand(3, generator=g) - 1)).tolist()
                crop = crop * b
                grey = crop.mean(0, keepdim=True)
                crop = grey + s * (crop - grey)                       # saturation
                crop = crop.mean() + c * (crop - crop.mean())         # contrast
                images.append(normalize(crop.clamp(0, 1)))
                targets.append(label)
        super().__init__(torch.stack(images), torch.tensor(targets), list(photos))


def _random_glyphs(num_shapes: int, side: int, seed: int) -> torch.Tensor:
    """``num_shapes`` distinct binary side×side glyphs (about half the pixels on), any two differing
    in at least a quarter of their pixels, in white: (num_shapes, 3, side, side) in {0, 1}."""
    g = torch.Generator().manual_seed(seed)
    shapes: list[torch.Tensor] = []
    while len(shapes) < num_shapes:
        s = (torch.rand(side, side, generator=g) < 0.5).float()
        if all((s != t).float().mean() >= 0.25 for t in shapes):
            shapes.append(s)
    return torch.stack(shapes)[:, None].expand(-1, 3, -1, -1).contiguous()


def _colour_squares(num_shapes: int, side: int) -> torch.Tensor:
    """``num_shapes`` solid side×side squares of evenly spaced, fully saturated hues:
    (num_shapes, 3, side, side) in [0, 1]."""
    h = torch.arange(num_shapes, dtype=torch.float32) / num_shapes * 6          # hue in sextants
    k = (torch.tensor([5.0, 3.0, 1.0])[None] + h[:, None]) % 6                  # HSV -> RGB, S = V = 1
    rgb = 1 - (torch.minimum(k, 4 - k).clamp(0, 1))
    return rgb[:, :, None, None].expand(-1, -1, side, side).contiguous()


class PairMatchDataset(TensorImageDataset):
    """A task that needs global context: do the two marks in the image match?

    The ``size``×``size`` canvas (dark, with light Gaussian noise of std ``noise_std``) is cut into a
    ``grid``×``grid`` array of regions of side ``size // grid``. Two distinct regions are drawn at random;
    each gets one of ``num_shapes`` fixed marks of side ``shape_side``: ``kind="colours"``, solid squares of
    evenly spaced hues; ``kind="glyphs"``, random binary patterns (white), fixed by ``shape_seed``. The
    mark sits at a uniform position inside its region (with ``aligned``, on the grid of stride
    ``shape_side``, so that with patches of that side a mark is one whole patch). Label 1 ("same"): both
    marks are the same, drawn uniformly. Label 0 ("different"): the first is uniform, the second uniform
    among the others. Exactly half of each split has each label.

    By construction, *what any one region contains* has the same distribution under both labels:
    P(region holds a mark) = 2 / grid², the mark is uniform over the ``num_shapes`` (for label 0 the second
    mark is uniform over the others given the first, hence uniform on its own), its position uniform,
    the noise independent. So the label is statistically independent of any single region: a model
    whose every token sees only one region (attention in windows aligned with the regions, no shift, no
    merging) gets no evidence from any one window; only its readout, which adds the windows' features,
    combines them. :meth:`window_contents` returns what each region holds, for checking this by counts.

    The images are fixed by ``seed`` and ``split``; ``meta`` holds, per image, the two regions
    (row-major index), the two mark ids and their offsets inside the regions. 3 channels, standardised
    with constants of the generator (the same for both splits).
    """

    def __init__(self, split: str = "train", n: int = 2000, size: int = 16, grid: int = 2, num_shapes: int = 8,
                 shape_side: int = 4, kind: str = "colours", aligned: bool = True, noise_std: float = 0.05,
                 seed: int = 0, shape_seed: int = 0):
        who = type(self).__name__
        _check_split(split, who)
        if grid < 2 or size % grid:
            raise ValueError(f"{who}: need grid >= 2 dividing size, got grid={grid}, size={size}")
        region = size // grid
        if not 0 < shape_side <= region:
            raise ValueError(f"{who}: shape_side must be in 1..{region} (the region side), got {shape_side}")
        if num_shapes < 2:
            raise ValueError(f"{who}: need num_shapes >= 2 to have non-matching pairs, got {num_shapes}")
        if n < 2 or n % 2:
            raise ValueError(f"{who}: n must be even and >= 2 (half the images per label), got {n}")
        if kind not in ("colours", "glyphs"):
            raise ValueError(f"{who}: kind must be 'colours' or 'glyphs', got {kind!r}")
        self.grid, self.region, self.num_shapes = grid, region, num_shapes
        self.shapes = (_colour_squares(num_shapes, shape_side) if kind == "colours"
                       else _random_glyphs(num_shapes, shape_side, shape_seed))
        g = torch.Generator().manual_seed(2 * seed + (split == "val") + 1_000_003)
        y = torch.arange(n) % 2
        y = y[torch.randperm(n, generator=g)]
        regions = torch.stack([torch.randperm(grid * grid, generator=g)[:2] for _ in range(n)])   # (n, 2)
        first = torch.randint(0, num_shapes, (n,), generator=g)
        other = (first + torch.randint(1, num_shapes, (n,), generator=g)) % num_shapes   # uniform among the rest
        marks = torch.stack([first, torch.where(y == 1, first, other)], 1)                  # (n, 2)
        if aligned:
            offsets = shape_side * torch.randint(0, region // shape_side, (n, 2, 2), generator=g)
        else:
            offsets = torch.randint(0, region - shape_side + 1, (n, 2, 2), generator=g)   # (n, mark, (dy, dx))
        x = noise_std * torch.randn(n, 3, size, size, generator=g)
        for i in range(n):
            for k in range(2):
                r = int(regions[i, k])
                top = (r // grid) * region + int(offsets[i, k, 0])
                left = (r % grid) * region + int(offsets[i, k, 1])
                x[i, :, top:top + shape_side, left:left + shape_side] += self.shapes[marks[i, k]]
        # Standardised with the generator's moments (the marks' mean pixel value and mean square).
        frac = 2 * shape_side**2 / size**2
        mean = frac * self.shapes.mean().item()
        var = noise_std**2 + frac * self.shapes.pow(2).mean().item() - mean**2
        x = (x - mean) / math.sqrt(var)
        self.meta = {"regions": regions, "marks": marks, "offsets": offsets}
        super().__init__(x, y, ["different", "same"])

    def window_contents(self) -> torch.Tensor:
        """(n, grid²) long: what each region holds, −1 for nothing, else the mark's id."""
        out = torch.full((len(self), self.grid**2), -1, dtype=torch.long)
        for k in range(2):
            out.scatter_(1, self.meta["regions"][:, k:k + 1], self.meta["marks"][:, k:k + 1])
        return out


def window_content_counts(ds: PairMatchDataset) -> torch.Tensor:
    """Counts (2 labels, grid² regions, 1 + num_shapes contents) of what each region of a
    :class:`PairMatchDataset` holds, per label; content 0 is "nothing", content 1 + k is mark k.

    Dividing by the number of images of each label gives the per-region content distribution; the
    task's claim is that these are the same for both labels (compare them with a chi-square test)."""
    contents = ds.window_contents() + 1                                   # (n, R) in 0..K
    counts = torch.zeros(2, contents.shape[1], ds.num_shapes + 1, dtype=torch.long)
    for label in (0, 1):
        c = contents[ds.targets == label]
        for r in range(contents.shape[1]):
            counts[label, r] = torch.bincount(c[:, r], minlength=ds.num_shapes + 1)
    return counts
