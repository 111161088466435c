"""deblurkit.synth: kernels, blur, noise and the paired-dataset builder."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal as sps
import torch

from deblurkit.io.images import read_image
from deblurkit.synth import (
    blur,
    blur_valid_pair,
    build_pairs,
    center_pad,
    disk_kernel,
    gaussian_kernel,
    kair_kernels,
    levin_kernels,
    load_kernel_bank,
    poisson_gaussian_noise,
    quantize_8bit,
    random_trajectories,
    trajectory_kernels,
    trajectory_to_kernels,
)

CLASSIC = ["astronaut.png", "chelsea.png", "coffee.png"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def centroid(k: torch.Tensor) -> torch.Tensor:
    """(n, 2) centre of mass (x, y) of (n, s, s) kernels."""
    s = k.shape[-1]
    idx = torch.arange(s, dtype=torch.float64)
    k = k.double()
    return torch.stack([(k.sum(1) * idx).sum(1), (k.sum(2) * idx).sum(1)], dim=1)


# ------------------------------------------------------------------ trajectory kernels
def test_trajectory_kernels_valid_batched_and_seeded():
    k = trajectory_kernels(6, size=21, num_samples=500, generator=gen(3))
    assert k.shape == (6, 21, 21) and k.dtype == torch.float32
    assert torch.all(k >= 0)
    assert torch.allclose(k.sum((1, 2)), torch.ones(6), atol=1e-5)
    # same seed -> same kernels; different seed -> different kernels
    assert torch.equal(k, trajectory_kernels(6, size=21, num_samples=500, generator=gen(3)))
    assert not torch.allclose(k, trajectory_kernels(6, size=21, num_samples=500, generator=gen(4)))
    # kernels within a batch differ, and a batch's prefix equals a smaller batch
    assert not torch.allclose(k[0], k[1])
    assert torch.equal(k[:2], trajectory_kernels(2, size=21, num_samples=500, generator=gen(3)))
    # centred on the centroid: the blur does not shift the image
    assert torch.allclose(centroid(k), torch.full((6, 2), 10.0, dtype=torch.float64), atol=1e-4)


def test_random_trajectories_follow_the_model():
    tr = random_trajectories(4, max_length=25.0, num_samples=400, generator=gen(0))
    assert tr.shape == (4, 400, 2) and tr.dtype == torch.float64
    assert torch.all(tr[:, 0] == 0)
    steps = (tr[:, 1:] - tr[:, :-1]).norm(dim=-1)
    # constant speed: total length exactly max_length (Boracchi & Foi: velocity normalised)
    assert torch.allclose(steps.sum(1), torch.full((4,), 25.0, dtype=torch.float64), atol=1e-9)
    # anxiety = 0: rectilinear motion, end-to-end distance equals the length
    line = random_trajectories(3, max_length=12.0, anxiety=0.0, num_samples=300, generator=gen(1))
    assert torch.allclose(line[:, -1].norm(dim=-1), torch.full((3,), 12.0, dtype=torch.float64), atol=1e-9)
    # strong anxiety curls the path: end-to-end distance well below the length on average
    shaky = random_trajectories(16, max_length=12.0, anxiety=1.0, num_samples=300, generator=gen(1))
    assert shaky[:, -1].norm(dim=-1).mean() < 0.8 * 12.0
    with pytest.raises(ValueError):
        random_trajectories(1, anxiety=1.5)


def test_trajectory_length_grows_with_exposure():
    # a straight path of length L sampled for exposure T is a segment of length T*L:
    # its kernel's spread sqrt(12 * var) measures that length
    tr = random_trajectories(1, max_length=20.0, anxiety=0.0, num_samples=1000, generator=gen(5))
    lengths = []
    for t in (0.25, 0.5, 1.0):
        k = trajectory_to_kernels(tr, 31, exposure=t)[0].double()
        idx = torch.arange(31, dtype=torch.float64)
        c = centroid(k[None])[0]
        var = (k * ((idx[None, :] - c[0]) ** 2 + (idx[:, None] - c[1]) ** 2)).sum()
        lengths.append(math.sqrt(12 * var))
    assert lengths[0] < lengths[1] < lengths[2]
    for t, l in zip((0.25, 0.5, 1.0), lengths):
        assert abs(l - 20.0 * t) < 1.0, (t, l)
    # random (curved) trajectories: more exposure, more pixels covered, for every kernel
    short = trajectory_kernels(8, 31, exposure=0.1, max_length=30.0, num_samples=500, generator=gen(2))
    full = trajectory_kernels(8, 31, exposure=1.0, max_length=30.0, num_samples=500, generator=gen(2))
    assert torch.all((short > 1e-4).sum((1, 2)) <= (full > 1e-4).sum((1, 2)))
    assert (short > 1e-4).sum() < (full > 1e-4).sum()


def test_trajectory_exposure_per_kernel_and_errors():
    tr = random_trajectories(3, max_length=10.0, num_samples=200, generator=gen(0))
    k = trajectory_to_kernels(tr, 15, exposure=torch.tensor([0.2, 0.6, 1.0]))
    assert k.shape == (3, 15, 15)
    assert torch.allclose(k[2], trajectory_to_kernels(tr[2], 15, exposure=1.0))
    with pytest.raises(ValueError):
        trajectory_to_kernels(tr, 15, exposure=0.0)
    with pytest.raises(ValueError):
        trajectory_to_kernels(tr[..., :1], 15)


# ------------------------------------------------------------------ measured kernels
def test_levin_kernels(shared_data):
    ks = levin_kernels(shared_data / "kernels" / "levin09_kernels.npz")
    assert list(ks) == [f"levin09_{i}" for i in range(1, 9)]
    sizes = set()
    for name, k in ks.items():
        assert k.dtype == torch.float32 and k.dim() == 2 and k.shape[0] == k.shape[1]
        assert torch.all(k >= 0) and abs(float(k.sum()) - 1) < 1e-5
        sizes.add(k.shape[0])
    assert min(sizes) == 13 and max(sizes) == 27
    # the folder, or the data root, resolve to the same file
    by_dir = levin_kernels(shared_data / "kernels")
    by_root = levin_kernels(data_root=shared_data)
    assert all(torch.equal(by_dir[n], ks[n]) and torch.equal(by_root[n], ks[n]) for n in ks)
    k12 = kair_kernels(data_root=shared_data)
    assert len(k12) == 12 and all(k.shape == (25, 25) for k in k12.values())
    assert torch.allclose(k12["k12_01"].sum(), torch.tensor(1.0))


def test_kernel_bank_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        levin_kernels(tmp_path / "nowhere.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, good=np.ones((3, 3)), cube=np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="bad.npz.*cube"):
        load_kernel_bank(bad)
    neg = tmp_path / "neg.npz"
    np.savez(neg, k=np.array([[0.5, -0.5], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="negative"):
        load_kernel_bank(neg)


# ------------------------------------------------------------------ parametric kernels
def test_gaussian_kernel():
    k = gaussian_kernel(41, 3.0).double()
    assert abs(float(k.sum()) - 1) < 1e-6 and torch.all(k >= 0)
    assert torch.allclose(k, k.flip(0)) and torch.allclose(k, k.T)
    idx = torch.arange(41, dtype=torch.float64) - 20
    assert abs(math.sqrt(float((k.sum(0) * idx**2).sum())) - 3.0) < 0.01  # std = sigma
    # anisotropic: sigma (4, 1) along x; rotating by 90 degrees gives the transpose
    a = gaussian_kernel(31, (4.0, 1.0))
    assert float((a.sum(0) * idx[5:36] ** 2).sum()) > 10 * float((a.sum(1) * idx[5:36] ** 2).sum())
    assert torch.allclose(gaussian_kernel(31, (4.0, 1.0), angle=90.0), a.T, atol=1e-6)
    # 45 degrees (counter-clockwise on screen): mass along the anti-diagonal (x up-right)
    d = gaussian_kernel(31, (4.0, 1.0), angle=45.0)
    assert d[15 - 5, 15 + 5] > 100 * d[15 + 5, 15 + 5]
    delta = gaussian_kernel(5, 0.0)
    assert delta[2, 2] == 1 and delta.sum() == 1


def test_disk_kernel():
    k = disk_kernel(4.0)
    assert k.shape == (9, 9) and abs(float(k.sum()) - 1) < 1e-6
    assert torch.allclose(k, k.T) and torch.allclose(k, k.flip(1))
    # flat inside, anti-aliased edge (fractional coverage), zero outside the radius
    inner = k[4, 4]
    assert torch.allclose(k[4, 2], inner)
    edge = k[4, 8] / inner
    assert 0.2 < float(edge) < 0.8
    assert k[0, 0] == 0
    # total coverage approximates the disk area pi r^2 (in units of the inner value)
    assert abs(float(k.sum() / inner) - math.pi * 16) < 0.5
    assert disk_kernel(0.0)[0, 0] == 1
    assert center_pad(disk_kernel(2.0), 9)[4, 4] == disk_kernel(2.0)[2, 2]


# ------------------------------------------------------------------ blur
SCIPY_MODE = {"reflect": "mirror", "symmetric": "reflect", "replicate": "nearest", "circular": "wrap", "zero": "constant"}


@pytest.fixture(scope="module")
def image_and_kernel():
    g = gen(0)
    img = torch.rand(2, 3, 23, 29, generator=g, dtype=torch.float64)
    k = torch.rand(5, 7, generator=g, dtype=torch.float64)  # non-symmetric: checks the flip
    k[0, 0] = 3.0
    return img, k / k.sum()


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("boundary", list(SCIPY_MODE))
def test_blur_matches_scipy_convolution(image_and_kernel, boundary, method):
    img, k = image_and_kernel
    out = blur(img, k, boundary, method=method)
    assert out.shape == img.shape and out.dtype == img.dtype
    ref = np.stack([[ndi.convolve(c, k.numpy(), mode=SCIPY_MODE[boundary], cval=0.0) for c in im] for im in img.numpy()])
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-10)
    # correlation (an unflipped kernel) would differ
    assert not np.allclose(out.numpy(), np.stack([[ndi.correlate(c, k.numpy(), mode=SCIPY_MODE[boundary]) for c in im] for im in img.numpy()]))


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_blur_valid_matches_scipy_and_has_valid_shape(image_and_kernel, method):
    img, k = image_and_kernel
    out = blur(img, k, "valid", method=method)
    assert out.shape == (2, 3, 23 - 5 + 1, 29 - 7 + 1)
    ref = sps.convolve2d(img[1, 2].numpy(), k.numpy(), mode="valid")
    np.testing.assert_allclose(out[1, 2].numpy(), ref, atol=1e-10)
    with pytest.raises(ValueError, match="valid"):
        blur(img[..., :4, :], k, "valid")


def test_blur_even_kernel_and_large_pads():
    g = gen(1)
    img = torch.rand(1, 1, 6, 7, generator=g, dtype=torch.float64)
    k = torch.rand(4, 4, generator=g, dtype=torch.float64)
    # even kernel: centre (kh//2, kw//2) -> pad top/left kh-1-kh//2, bottom/right kh//2
    padded = np.pad(img[0, 0].numpy(), ((1, 2), (1, 2)), mode="symmetric")
    np.testing.assert_allclose(blur(img, k, "symmetric")[0, 0].numpy(), sps.convolve2d(padded, k.numpy(), "valid"), atol=1e-12)
    # kernels larger than the image (pads beyond one reflection) follow numpy's extension
    small = torch.rand(1, 1, 4, 5, generator=g, dtype=torch.float64)
    big = torch.rand(11, 13, generator=g, dtype=torch.float64)
    for mode, np_mode in (("reflect", "reflect"), ("symmetric", "symmetric"), ("circular", "wrap"), ("replicate", "edge")):
        padded = np.pad(small[0, 0].numpy(), ((5, 5), (6, 6)), mode=np_mode)
        ref = sps.convolve2d(padded, big.numpy(), "valid")
        for method in ("direct", "fft"):
            np.testing.assert_allclose(blur(small, big, mode, method=method)[0, 0].numpy(), ref, atol=1e-10)


def test_blur_delta_is_identity_and_batched_kernels():
    img = torch.rand(3, 3, 16, 16, generator=gen(2))
    delta = torch.zeros(9, 9)
    delta[4, 4] = 1
    for mode in ("reflect", "symmetric", "replicate", "circular", "zero"):
        assert torch.allclose(blur(img, delta, mode), img, atol=1e-6)
    assert torch.allclose(blur(img, delta, "valid"), img[..., 4:-4, 4:-4], atol=1e-6)
    # one kernel per image == blurring each image alone; a (C,H,W) input stays 3-D
    ks = trajectory_kernels(3, 9, num_samples=200, generator=gen(0))
    out = blur(img, ks, "reflect")
    for i in range(3):
        assert torch.allclose(out[i], blur(img[i], ks[i], "reflect"), atol=1e-6)
    assert blur(img[0], ks[0]).shape == (3, 16, 16)
    # a shifted delta shifts the image (convolution, not correlation): k[4, 5] -> x moves right by 1
    shift = torch.zeros(9, 9)
    shift[4, 5] = 1
    assert torch.allclose(blur(img, shift, "circular"), img.roll(1, dims=-1), atol=1e-6)
    with pytest.raises(ValueError):
        blur(img, ks[:2])
    with pytest.raises(ValueError):
        blur(img, delta, "wrap")


def test_blur_valid_pair_is_aligned():
    g = gen(3)
    sharp = torch.rand(3, 40, 40, generator=g, dtype=torch.float64)
    k = torch.rand(7, 7, generator=g, dtype=torch.float64)
    k /= k.sum()
    blurry, cropped = blur_valid_pair(sharp, k)
    assert blurry.shape == cropped.shape == (3, 34, 34)
    # equals the full-scene blur on those pixels, whatever the boundary
    full = blur(sharp, k, "zero")
    assert torch.allclose(blurry, full[:, 3:-3, 3:-3], atol=1e-10)
    assert torch.equal(cropped, sharp[:, 3:-3, 3:-3])


# ------------------------------------------------------------------ noise
def test_gaussian_noise_statistics_and_seed():
    flat = torch.full((1, 3, 128, 128), 0.5)
    y = poisson_gaussian_noise(flat, sigma=0.05, generator=gen(0))
    assert abs(float((y - flat).std()) - 0.05) < 0.002
    assert abs(float(y.mean()) - 0.5) < 0.002
    assert torch.equal(y, poisson_gaussian_noise(flat, sigma=0.05, generator=gen(0)))
    assert not torch.equal(y, poisson_gaussian_noise(flat, sigma=0.05, generator=gen(1)))
    # one sigma per image of a batch
    batch = torch.full((2, 1, 128, 128), 0.5)
    z = poisson_gaussian_noise(batch, sigma=torch.tensor([0.01, 0.1]), generator=gen(0))
    stds = (z - batch).flatten(1).std(1)
    assert abs(float(stds[0]) - 0.01) < 0.001 and abs(float(stds[1]) - 0.1) < 0.01
    assert torch.equal(poisson_gaussian_noise(flat, sigma=0.0), flat)


def test_poisson_noise_is_signal_dependent():
    x = torch.cat([torch.full((1, 1, 64, 128), 0.1), torch.full((1, 1, 64, 128), 0.8)], dim=2)
    y = poisson_gaussian_noise(x, peak=200.0, sigma=0.0, generator=gen(0))
    var_dark, var_bright = float(y[..., :64, :].var()), float(y[..., 64:, :].var())
    assert abs(var_dark - 0.1 / 200) < 0.1 * 0.1 / 200
    assert abs(var_bright - 0.8 / 200) < 0.1 * 0.8 / 200
    # Poisson values sit on the 1/peak grid
    assert torch.allclose(y * 200, (y * 200).round(), atol=1e-4)
    with pytest.raises(ValueError):
        poisson_gaussian_noise(x, peak=0.0)


def test_quantize_8bit():
    x = torch.linspace(-0.2, 1.2, 1001)
    q = quantize_8bit(x)
    assert q.min() == 0 and q.max() == 1
    assert torch.allclose(q * 255, (q * 255).round(), atol=1e-5)
    inside = (x >= 0) & (x <= 1)
    assert float((q - x)[inside].abs().max()) <= 0.5 / 255 + 1e-7


# ------------------------------------------------------------------ build_pairs
def _all_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def photos(shared_data):
    return [shared_data / "photos" / "classic" / n for n in CLASSIC]


def test_build_pairs_layout_kernels_and_determinism(photos, shared_data, tmp_path):
    kw = dict(crops_per_photo=2, crop_size=48, kernels="mixed", kernel_size=15, data_root=shared_data,
              noise_sigma=(0.0, 0.02), test_patterns=["coffee"], seed=7)
    calls = []
    m = build_pairs(photos, tmp_path / "a", progress=lambda d, t, s: calls.append((d, t, s)), **kw)
    assert calls[-1][:2] == (3, 3)
    root = tmp_path / "a"
    assert m["splits"] == {"train": ["astronaut", "chelsea"], "test": ["coffee"]}
    assert m["counts"] == {"train": 4, "test": 2}
    assert json.loads((root / "manifest.json").read_text())["pairs"] == m["pairs"]
    sources = set()
    for rec in m["pairs"]:
        d = root / rec["split"] / rec["scene"]
        stem = rec["name"][:-4]
        lq, gt = read_image(d / "blur" / rec["name"]), read_image(d / "sharp" / rec["name"])
        assert lq.shape == gt.shape == (3, 48, 48)
        k = np.load(d / "kernel" / f"{stem}.npy")
        assert k.dtype == np.float32 and k.shape == tuple(rec["kernel"]["shape"])
        assert abs(k.sum() - 1) < 1e-5 and k.min() >= 0
        from deblurkit.io.images import load_image

        kimg = load_image(d / "kernel" / f"{stem}.png")
        assert kimg.bit_depth == 16 and kimg.image.shape[-2:] == k.shape
        assert abs(float(kimg.image.max()) - 1.0) < 1e-6
        sources.add(rec["kernel"]["source"])
    assert m["kernels"] == "mixed" and m["seed"] == 7
    # same seed -> byte-identical dataset; different seed -> different pairs
    build_pairs(photos, tmp_path / "b", **kw)
    assert _all_files(root) == _all_files(tmp_path / "b")
    m_other = build_pairs(photos, tmp_path / "c", **{**kw, "seed": 8})
    assert m_other["pairs"] != m["pairs"]
    # an existing dataset is not overwritten by accident
    with pytest.raises(FileExistsError):
        build_pairs(photos, root, **kw)


def test_build_pairs_blur_is_the_kernel_applied_to_the_photo(photos, tmp_path):
    # noise-free: the stored blurry image is the valid convolution of the photo crop region
    m = build_pairs(photos[:2], tmp_path / "p", crops_per_photo=1, crop_size=40, kernels="trajectory",
                    kernel_size=13, noise_sigma=0.0, test_fraction=0.5, seed=1)
    assert m["counts"]["train"] == 1 and m["counts"]["test"] == 1
    for rec in m["pairs"]:
        d = tmp_path / "p" / rec["split"] / rec["scene"]
        photo = quantize_8bit(read_image(rec["photo"]))
        k = torch.from_numpy(np.load(d / "kernel" / rec["name"].replace(".png", ".npy")))
        c = rec["crop"]
        top, left = c["top"] - 6, c["left"] - 6
        region = photo[:, top : top + c["height"] + 12, left : left + c["width"] + 12]
        expected = blur(region, k, "valid")
        lq = read_image(d / "blur" / rec["name"])
        gt = read_image(d / "sharp" / rec["name"])
        assert float((lq - expected).abs().max()) <= 0.5 / 255 + 1e-5
        assert torch.allclose(gt, photo[:, c["top"] : c["top"] + 40, c["left"] : c["left"] + 40], atol=1e-6)


def test_build_pairs_every_kernel_on_whole_photos(shared_data, tmp_path):
    # evaluation set: each photo blurred by each of the 8 Levin kernels, whole photo kept
    photo = shared_data / "photos" / "classic" / "coins.png"
    m = build_pairs([photo], tmp_path / "ev", kernels="levin", every_kernel=True, crop_size=None,
                    data_root=shared_data, noise_sigma=0.0, test_fraction=1.0)
    assert m["num_pairs"] == 8 and m["counts"] == {"train": 0, "test": 8}
    assert [r["kernel"]["name"] for r in m["pairs"]] == [f"levin09_{i}" for i in range(1, 9)]
    h, w = read_image(photo).shape[-2:]
    for r in m["pairs"]:
        kh, kw = r["kernel"]["shape"]
        assert (r["crop"]["height"], r["crop"]["width"]) == (h - kh + 1, w - kw + 1)
        lq = read_image(tmp_path / "ev" / "test" / "coins" / "blur" / r["name"])
        assert lq.shape[-2:] == (h - kh + 1, w - kw + 1)
    with pytest.raises(ValueError, match="every_kernel"):
        build_pairs([photo], tmp_path / "x", kernels="trajectory", every_kernel=True)


def test_texture_candidates_pick_more_textured_crops(tmp_path, shared_data):
    """With many candidates the chosen crops have more gradient energy than plain draws."""
    import numpy as np

    from deblurkit.io import read_image
    from deblurkit.synth import build_pairs
    from deblurkit.synth.pairs import _gradient_energy

    kw = dict(include=["mate_Aqua*"], crop_size=64, crops_per_photo=6, kernels="trajectory",
              kernel_size=9, noise_sigma=0.0, seed=5, progress=False)
    photos = shared_data / "photos" / "wallpaper"
    build_pairs(photos, tmp_path / "plain", **kw)
    build_pairs(photos, tmp_path / "tex", texture_candidates=16, **kw)

    def energy(root):
        files = sorted(root.rglob("sharp/*.png"))
        assert len(files) == 6
        return np.mean([_gradient_energy(read_image(f)) for f in files])

    assert energy(tmp_path / "tex") > 1.5 * energy(tmp_path / "plain")


def test_center_kernel_removes_the_translation_of_levin_kernels(shared_data):
    """Raw Levin kernels shift the image by up to ~3 px; centred ones by under half a pixel."""
    from deblurkit.synth import center_kernel, levin_kernels

    def centroid_offset(k):
        k = k.double()
        h, w = k.shape
        cy = (k.sum(1) * torch.arange(h, dtype=torch.float64)).sum() / k.sum()
        cx = (k.sum(0) * torch.arange(w, dtype=torch.float64)).sum() / k.sum()
        return abs(float(cy) - h // 2), abs(float(cx) - w // 2)

    raw = levin_kernels(shared_data / "kernels" / "levin09_kernels.npz")
    centred = levin_kernels(shared_data / "kernels" / "levin09_kernels.npz", center=True)
    assert max(max(centroid_offset(k)) for k in raw.values()) > 2.5
    for name, k in centred.items():
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert max(centroid_offset(k)) <= 0.5 + 1e-9, name
        assert torch.isclose(k.sum(), torch.tensor(1.0), atol=1e-5)
        assert torch.equal(k[k > 0].sort().values, raw[name][raw[name] > 0].sort().values)
    with pytest.raises(ValueError):
        center_kernel(torch.zeros(3, 3))
