"""vitlearn.viz_multiaxis: block and grid groups, and which keys a query reaches (fast, < 1 s)."""
import pytest
import torch
from einops import rearrange

from vitlearn.viz_multiaxis import block_groups, grid_groups, multiaxis_visible_keys


def test_block_groups_are_contiguous_windows():
    g = block_groups(8, 12, 4)
    i, j = torch.meshgrid(torch.arange(8), torch.arange(12), indexing="ij")
    assert torch.equal(g, (i // 4) * 3 + j // 4)


def test_grid_groups_are_residues_of_the_stride():
    g = grid_groups(8, 12, 4)                   # strides 8/4 = 2 rows, 12/4 = 3 columns
    i, j = torch.meshgrid(torch.arange(8), torch.arange(12), indexing="ij")
    assert torch.equal(g, (i % 2) * 3 + j % 3)
    assert torch.equal(torch.bincount(g.flatten()), torch.full((6,), 16))   # 6 groups of G*G tokens


def test_groups_match_an_independent_reshape():
    # grid: (H, W) -> (G, H/G, G, W/G); the group is the second and fourth index
    H, W, G = 12, 12, 3
    idx = torch.arange(H * W).reshape(H, W)
    groups = rearrange(idx, "(g1 sh) (g2 sw) -> (sh sw) (g1 g2)", g1=G, g2=G)
    lab = grid_groups(H, W, G).flatten()
    for k, members in enumerate(groups):
        assert (lab[members] == k).all()


@pytest.mark.parametrize("H,P,G,full", [(8, 4, 4, True), (16, 8, 2, True), (12, 3, 3, False), (56, 7, 7, False)])
def test_block_then_grid_is_global_iff_map_fits_P_times_G(H, P, G, full):
    reach = torch.stack([multiaxis_visible_keys(H, H, P, G, r, c, "block then grid")
                         for r in range(0, H, 3) for c in range(0, H, 5)])
    assert bool(reach.all()) == full == (H <= P * G)


def test_single_layer_counts():
    assert int(multiaxis_visible_keys(16, 16, 4, 4, 5, 9, "block").sum()) == 16
    grid = multiaxis_visible_keys(16, 16, 4, 4, 5, 9, "grid")
    assert int(grid.sum()) == 16 and bool(grid[1, 1]) and bool(grid[13, 13]) and not bool(grid[5, 10])


def test_bad_sizes_name_the_constraint():
    with pytest.raises(ValueError, match="multiples of P"):
        multiaxis_visible_keys(10, 10, 4, 5, 0, 0)
    with pytest.raises(ValueError, match="multiples of G"):
        multiaxis_visible_keys(12, 12, 4, 5, 0, 0)
    with pytest.raises(ValueError, match="kind"):
        multiaxis_visible_keys(8, 8, 4, 4, 0, 0, "shifted")


@pytest.mark.parametrize("partition", ["block", "grid"])
def test_partition_query_map_lands_on_the_visible_keys(partition):
    from vitlearn.layers import PartitionAttention
    from vitlearn.viz_multiaxis import partition_query_map
    import vitlearn

    layer = PartitionAttention(8, 2, 4, partition).eval()
    x = torch.randn(2, 8, 12, 8)
    with torch.no_grad(), vitlearn.record_attention(layer) as maps:
        layer(x)
    attn = maps[""]
    heat = partition_query_map(attn, 8, 12, 4, partition, 5, 6, image=1)
    assert abs(heat.sum().item() - 1) < 1e-5
    assert torch.equal(heat > 0, multiaxis_visible_keys(8, 12, 4, 4, 5, 6, partition))
    other = partition_query_map(attn, 8, 12, 4, partition, 5, 6, image=0)
    assert not torch.allclose(heat, other)          # image index selects another image's groups
