"""vitlearn.data's Dataset classes: determinism, shapes, splits, class balance, and the
global-context property of PairMatchDataset (checked on the generator by counts, and on a model
whose tokens each see one window)."""
import pytest
import torch
from scipy import stats

from vitlearn import data


@pytest.fixture(scope="module")
def pairs():
    return data.PairMatchDataset("train", n=4000, seed=0)


def test_old_functions_unchanged():
    x_tr, y_tr, x_te, y_te = data.digits(size=16)
    ds = data.DigitsDataset("val", size=16)
    assert torch.equal(ds.images, x_te) and torch.equal(ds.targets, y_te)
    assert len(data.DigitsDataset("train", size=16)) == len(y_tr) == 1797 - round(0.2 * 1797)
    img, label = ds[3]
    assert img.shape == (3, 16, 16) and label == int(y_te[3]) and ds.classes[label] == str(label)


@pytest.mark.parametrize("make", [
    lambda split, seed: data.PairMatchDataset(split, n=64, seed=seed),
    lambda split, seed: data.PairMatchDataset(split, n=64, seed=seed, kind="glyphs", aligned=False, size=32),
    lambda split, seed: data.PhotoCropsDataset(split, size=16, per_class=4, seed=seed),
])
def test_determinism_and_splits(make):
    a, b = make("train", 0), make("train", 0)
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.images, make("train", 1).images)          # the seed matters
    assert not torch.equal(a.images, make("val", 0).images)            # the splits differ
    x, y = a[0]
    assert isinstance(x, torch.Tensor) and x.shape == a.images.shape[1:] and isinstance(y, int)
    loader = torch.utils.data.DataLoader(a, batch_size=16)             # a standard Dataset
    xb, yb = next(iter(loader))
    assert xb.shape == (16, *a.images.shape[1:]) and yb.dtype == torch.long


def test_photo_crops_shapes_balance_and_held_out_strip():
    tr = data.PhotoCropsDataset("train", size=24, per_class=10)
    va = data.PhotoCropsDataset("val", size=24, per_class=5)
    assert tr.images.shape == (60, 3, 24, 24) and va.images.shape == (30, 3, 24, 24)
    assert torch.bincount(tr.targets).tolist() == [10] * 6 and tr.classes == list(data.PHOTOS)
    assert torch.isfinite(tr.images).all() and tr.images.std() > 0.3
    with pytest.raises(ValueError, match="crop_range"):
        data.PhotoCropsDataset(crop_range=(40, 60))                    # larger than the held-out strip
    with pytest.raises(ValueError, match="split"):
        data.PhotoCropsDataset("test")


def test_pair_match_balance_and_pixels(pairs):
    assert pairs.images.shape == (4000, 3, 16, 16)
    assert torch.bincount(pairs.targets).tolist() == [2000, 2000]
    contents = pairs.window_contents()
    assert ((contents >= 0).sum(1) == 2).all()                         # exactly two regions hold a mark
    marks = pairs.meta["marks"]
    assert torch.equal(pairs.targets, (marks[:, 0] == marks[:, 1]).long())
    # the pixels agree with the metadata: an empty region is noise only, a marked one is not
    reg = pairs.region
    tiles = pairs.images.unfold(2, reg, reg).unfold(3, reg, reg)        # (n, 3, g, g, reg, reg)
    peak = tiles.abs().amax(dim=(1, 4, 5)).flatten(1)                  # (n, g²)
    assert (peak[contents < 0].max() < peak[contents >= 0].min())
    assert abs(pairs.images.mean().item()) < 0.05 and abs(pairs.images.std().item() - 1) < 0.05
    with pytest.raises(ValueError, match="num_shapes"):
        data.PairMatchDataset(num_shapes=1)


def test_each_window_is_independent_of_the_label(pairs):
    """What any one region holds has the same distribution under both labels (chi-square test of
    independence per region, not rejected), while the pair of regions determines the label."""
    counts = data.window_content_counts(pairs)                          # (2, R, 1 + K)
    assert counts.sum(-1).eq(2000).all()
    freq = counts.float() / 2000
    assert (freq[0] - freq[1]).abs().max() < 0.04                      # sampling noise at n = 2000 is ~0.01
    pvals = [stats.chi2_contingency(counts[:, r].numpy())[1] for r in range(counts.shape[1])]
    assert min(pvals) > 0.001, pvals
    # A check that can fail: the same counts on a generator that leaks the label into one window
    # (the first mark of every "same" image made mark 0) reject independence at once.
    leaky = data.PairMatchDataset("train", n=4000, seed=0)
    same = leaky.targets == 1
    leaky.meta["marks"][same, 0] = 0
    leaked = data.window_content_counts(leaky)
    assert min(stats.chi2_contingency(leaked[:, r].numpy())[1] for r in range(leaked.shape[1])) < 1e-10
    # The two windows together decide the label: "the two marks are equal" is the label.
    c = pairs.window_contents()
    pair_of_marks = c[c >= 0].view(-1, 2)
    assert torch.equal((pair_of_marks[:, 0] == pair_of_marks[:, 1]).long(), pairs.targets)


def test_window_confined_model_is_additive_so_at_most_75_percent():
    """A Swin stage without shift and without merging, windows aligned with the regions: every token
    sees one region, and the readout (LayerNorm per token, mean, linear) adds the windows' features.
    So the logit difference d satisfies d(a,a) + d(b,b) = d(a,b) + d(b,a) when marks a, b are swapped
    between two regions, which caps any such model at 75 % on the task; global attention (ViT) does not
    obey the identity."""
    import vitlearn

    torch.manual_seed(0)
    confined = vitlearn.create_model("swin_tiny_patch4_window7_224", img_size=16, embed_dim=32, depths=(2,),
                                     num_heads=(2,), window_size=2, num_classes=2)
    for blk in confined.layers[0].blocks:
        blk.shift_size, blk.attn_mask = (0, 0), None
    vit = vitlearn.create_model("vit_tiny_patch16_224", img_size=16, patch_size=4, embed_dim=32, depth=2,
                                num_heads=2, num_classes=2)
    vitlearn.utils.randomize_(confined), vitlearn.utils.randomize_(vit)
    shapes = data.PairMatchDataset(n=2).shapes                           # (K, 3, 4, 4)
    canvas = torch.zeros(4, 3, 16, 16)
    a, b = shapes[1], shapes[5]
    for i, (top_left, bottom_right) in enumerate([(a, a), (b, b), (a, b), (b, a)]):
        canvas[i, :, 0:4, 0:4] = top_left                                # region 0
        canvas[i, :, 12:16, 12:16] = bottom_right                        # region 3
    for model, additive in ((confined.eval(), True), (vit.eval(), False)):
        with torch.no_grad():
            logits = model(canvas)
        d = logits[:, 1] - logits[:, 0]
        gap = (d[0] + d[1] - d[2] - d[3]).abs().item() / d.abs().max().item()
        assert (gap < 1e-5) if additive else (gap > 1e-3), (type(model).__name__, gap)


def test_datasets_train_with_the_dataset_trainer():
    """The Dataset classes plug into vitlearn.train.fit like any (image, label) dataset."""
    import vitlearn
    from vitlearn.train import fit

    tr, va = data.PairMatchDataset("train", n=64), data.PairMatchDataset("val", n=32)
    torch.manual_seed(0)
    model = vitlearn.create_model("vit_tiny_patch16_224", img_size=16, patch_size=4, embed_dim=16, depth=1,
                                  num_heads=2, num_classes=2)
    trainer = fit(model, tr, va, epochs=1, batch_size=32, progress=False, device="cpu")
    assert trainer.epoch == 1 and len(trainer.history) == 1
    assert any("acc" in k for k in trainer.history[0]), trainer.history[0]
