"""Tests for deblurkit.io.images: formats, bit depths, alpha, EXIF orientation, errors, atomic writes."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from deblurkit.io import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    ImageWriteError,
    LoadedImage,
    list_images,
    load_image,
    read_image,
    save_image,
    to_uint8,
)
from deblurkit.io import images as images_module

REPO = Path(__file__).resolve().parents[1]
REAL_BLUR = REPO / "examples" / "real_blur"


def _levels(shape, bit_depth: int, seed: int = 0) -> torch.Tensor:
    """Random image whose values lie exactly on the integer grid of ``bit_depth``."""
    max_value = 255 if bit_depth == 8 else 65535
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, max_value + 1, shape, generator=gen).float() / max_value


def _smooth(channels: int = 3, h: int = 32, w: int = 48) -> torch.Tensor:
    """Smooth colour gradient (JPEG-friendly)."""
    y = torch.linspace(0, 1, h).view(h, 1).expand(h, w)
    x = torch.linspace(0, 1, w).view(1, w).expand(h, w)
    planes = [0.1 + 0.8 * x, 0.1 + 0.8 * y, 0.5 + 0.3 * (x - y)][:channels]
    return torch.stack(planes)


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff", ".bmp", ".webp"])
@pytest.mark.parametrize("channels", [1, 3])
def test_lossless_round_trip_8bit_is_exact(tmp_path, suffix, channels):
    image = _levels((channels, 9, 13), 8)
    out = save_image(tmp_path / f"x{suffix}", image)
    assert out == tmp_path / f"x{suffix}"
    loaded = load_image(out)
    assert isinstance(loaded, LoadedImage)
    assert loaded.bit_depth == 8 and loaded.alpha is None and loaded.path == out
    assert loaded.image.dtype == torch.float32
    if suffix == ".webp" and channels == 1:  # WebP stores RGB only
        assert loaded.image.shape == (3, 9, 13)
        assert torch.equal(loaded.image, image.expand(3, -1, -1))
    else:
        assert torch.equal(loaded.image, image)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3])
def test_lossless_round_trip_16bit_is_exact(tmp_path, suffix, channels):
    image = _levels((channels, 7, 11), 16, seed=1)
    out = save_image(tmp_path / f"x{suffix}", image, bit_depth=16)
    loaded = load_image(out)
    assert loaded.bit_depth == 16
    assert loaded.image.shape == image.shape
    assert torch.equal(loaded.image, image)
    # 16-bit values really are stored (not 8-bit upscaled): some are off the 8-bit grid
    assert not torch.equal(loaded.image, torch.round(loaded.image * 255) / 255)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg"])
def test_jpeg_round_trip_is_close(tmp_path, suffix):
    image = _smooth()
    loaded = load_image(save_image(tmp_path / f"x{suffix}", image))
    assert loaded.image.shape == (3, 32, 48) and loaded.bit_depth == 8
    assert (loaded.image - image).abs().mean() < 0.01
    assert (loaded.image - image).abs().max() < 0.06


def test_jpeg_quality_argument_changes_size(tmp_path):
    image = _levels((3, 32, 32), 8)
    hi = save_image(tmp_path / "hi.jpg", image, quality=95)
    lo = save_image(tmp_path / "lo.jpg", image, quality=20)
    assert lo.stat().st_size < hi.stat().st_size


def test_rgb_channel_order_is_kept(tmp_path):
    image = torch.zeros(3, 4, 4)
    image[0] = 1.0  # pure red
    loaded = load_image(save_image(tmp_path / "red.png", image))
    assert torch.equal(loaded.image, image)
    pil = np.asarray(Image.open(tmp_path / "red.png").convert("RGB"))
    assert (pil[..., 0] == 255).all() and (pil[..., 1:] == 0).all()


def test_save_accepts_batch_of_one_and_creates_parents(tmp_path):
    image = _levels((1, 3, 5, 6), 8)
    out = save_image(tmp_path / "a" / "b" / "x.png", image)
    assert out.is_file()
    assert torch.equal(load_image(out).image, image[0])


def test_save_rounds_and_clamps(tmp_path):
    levels = torch.tensor([10.4, 10.6, 0.5001, 254.49, -30.0, 400.0]) / 255
    image = levels.view(1, 1, 6)
    saved = np.asarray(Image.open(save_image(tmp_path / "r.png", image)))
    assert saved.ravel().tolist() == [10, 11, 1, 254, 0, 255]  # truncation would give 10, 10, 0, 254
    assert to_uint8(image).ravel().tolist() == [10, 11, 1, 254, 0, 255]


def test_save_rejects_nan(tmp_path):
    image = torch.full((3, 2, 2), float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        save_image(tmp_path / "nan.png", image)
    assert list(tmp_path.iterdir()) == []


def test_to_uint8_shape_and_dtype():
    image = _levels((3, 5, 7), 8)
    array = to_uint8(image[None])
    assert array.shape == (5, 7, 3) and array.dtype == np.uint8
    assert np.array_equal(array, (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


# ---------------------------------------------------------------- grey, RGBA, modes


def test_grey_stays_grey_and_read_image_converts(tmp_path):
    grey = _levels((1, 6, 8), 8)
    path = save_image(tmp_path / "g.png", grey)
    assert load_image(path).image.shape == (1, 6, 8)
    rgb = read_image(path)
    assert rgb.shape == (3, 6, 8)
    assert all(torch.equal(rgb[c], grey[0]) for c in range(3))
    assert torch.equal(read_image(path, channels=1), grey)


def test_read_image_rgb_to_grey_uses_bt601(tmp_path):
    image = _levels((3, 4, 5), 8)
    path = save_image(tmp_path / "c.png", image)
    grey = read_image(path, channels=1)
    expected = 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]
    assert grey.shape == (1, 4, 5)
    assert torch.allclose(grey[0], expected, atol=1e-6)
    with pytest.raises(ValueError):
        read_image(path, channels=2)


@pytest.mark.parametrize("suffix,bit_depth", [(".png", 8), (".png", 16), (".tif", 8), (".tif", 16), (".webp", 8)])
def test_rgba_alpha_is_kept_aside_and_reattached(tmp_path, suffix, bit_depth):
    image = _levels((3, 6, 7), bit_depth, seed=2)
    alpha = _levels((1, 6, 7), bit_depth, seed=3)
    alpha[0, 0, 0] = 0.0  # a fully transparent pixel keeps its colour too
    path = save_image(tmp_path / f"a{suffix}", image, alpha=alpha, bit_depth=bit_depth)
    loaded = load_image(path)
    assert loaded.alpha is not None and loaded.alpha.shape == (1, 6, 7)
    assert torch.equal(loaded.alpha, alpha)
    assert torch.equal(loaded.image, image)
    assert read_image(path).shape == (3, 6, 7)  # alpha dropped


def test_grey_with_alpha_round_trip(tmp_path):
    grey = _levels((1, 5, 5), 8, seed=4)
    alpha = _levels((5, 5), 8, seed=5)  # (H, W) alpha accepted
    loaded = load_image(save_image(tmp_path / "ga.png", grey, alpha=alpha))
    assert Image.open(tmp_path / "ga.png").mode == "LA"
    assert loaded.image.shape == (1, 5, 5)
    assert torch.equal(loaded.image, grey)
    assert torch.equal(loaded.alpha[0], alpha)


@pytest.mark.parametrize("suffix,bit_depth", [(".png", 16), (".tif", 8)])
def test_grey_with_alpha_elsewhere_is_stored_as_rgba(tmp_path, suffix, bit_depth):
    grey = _levels((1, 5, 6), bit_depth, seed=6)
    alpha = _levels((1, 5, 6), bit_depth, seed=7)
    loaded = load_image(save_image(tmp_path / f"ga{suffix}", grey, alpha=alpha, bit_depth=bit_depth))
    assert loaded.image.shape == (3, 5, 6)  # documented: RGBA with equal colour channels
    assert torch.equal(loaded.image, grey.expand(3, -1, -1))
    assert torch.equal(loaded.alpha, alpha)


def test_pillow_modes_become_grey_or_rgb(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (6, 9), dtype=np.uint8)
    alpha = rng.integers(0, 256, (6, 9), dtype=np.uint8)
    Image.fromarray(np.stack([grey, alpha], -1), "LA").save(tmp_path / "la.png")
    la = load_image(tmp_path / "la.png")
    assert la.image.shape == (1, 6, 9)
    assert np.array_equal(to_uint8(la.image)[..., 0], grey)
    assert np.array_equal(to_uint8(la.alpha)[..., 0], alpha)

    rgb = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    pal = Image.fromarray(rgb).quantize(colors=16)
    pal.save(tmp_path / "p.png")
    p = load_image(tmp_path / "p.png")
    assert p.image.shape == (3, 6, 9)
    assert np.array_equal(to_uint8(p.image), np.asarray(pal.convert("RGB")))

    Image.fromarray(grey > 128).convert("1").save(tmp_path / "bw.png")
    bw = load_image(tmp_path / "bw.png")
    assert bw.image.shape == (1, 6, 9)
    assert set(bw.image.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(bw.image[0] > 0.5, torch.from_numpy(grey > 128))

    wide = rng.integers(0, 65536, (6, 9), dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "g16.png")  # written by Pillow, mode I;16
    g16 = load_image(tmp_path / "g16.png")
    assert g16.bit_depth == 16 and g16.image.shape == (1, 6, 9)
    assert np.array_equal(np.round(g16.image[0].numpy() * 65535).astype(np.uint16), wide)

    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.tif")
    cmyk = load_image(tmp_path / "cmyk.tif")
    assert cmyk.image.shape == (3, 6, 9) and cmyk.alpha is None
    expected = np.asarray(Image.open(tmp_path / "cmyk.tif").convert("RGB"))
    assert np.array_equal(to_uint8(cmyk.image), expected)


# ---------------------------------------------------------------- EXIF orientation


def _oriented_bytes(array: np.ndarray, fmt: str, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    extra = {"lossless": True} if fmt == "WEBP" else {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(array).save(buf, format=fmt, exif=exif, **extra)
    return buf.getvalue()


def _quadrants(h: int = 16, w: int = 24) -> np.ndarray:
    """RGB image with four flat, distinct quadrants (survives JPEG)."""
    array = np.zeros((h, w, 3), np.uint8)
    array[: h // 2, : w // 2] = (230, 20, 20)
    array[: h // 2, w // 2 :] = (20, 230, 20)
    array[h // 2 :, : w // 2] = (20, 20, 230)
    array[h // 2 :, w // 2 :] = (230, 230, 20)
    return array


def test_jpeg_exif_orientation_6_is_rotated_clockwise(tmp_path):
    stored = _quadrants(32, 48)  # red | green over blue | yellow
    path = tmp_path / "rot6.jpg"
    path.write_bytes(_oriented_bytes(stored, "JPEG", 6))
    image = load_image(path).image
    assert image.shape == (3, 48, 32)  # H and W swapped
    shown = to_uint8(image).astype(int)

    def centre(y, x):  # mean colour of the inner part of a displayed quadrant
        return shown[y * 24 + 6 : y * 24 + 18, x * 16 + 4 : x * 16 + 12].reshape(-1, 3).mean(0)

    # 90 degrees clockwise: stored bottom-left (blue) is now top-left, top-left (red) top-right,
    # bottom-right (yellow) bottom-left, top-right (green) bottom-right
    for (y, x), colour in {(0, 0): (20, 20, 230), (0, 1): (230, 20, 20),
                           (1, 0): (230, 230, 20), (1, 1): (20, 230, 20)}.items():
        assert np.abs(centre(y, x) - colour).max() < 8, (y, x)
    assert np.abs(shown - np.rot90(stored, k=-1).astype(int)).mean() < 6


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("TIFF", ".tif"), ("WEBP", ".webp")])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_orientations_match_pillow_exif_transpose(tmp_path, fmt, suffix, orientation):
    stored = np.random.default_rng(orientation).integers(0, 256, (5, 8, 3), dtype=np.uint8)
    path = tmp_path / f"o{orientation}{suffix}"
    path.write_bytes(_oriented_bytes(stored, fmt, orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert expected.shape[:2] == ((8, 5) if orientation >= 5 else (5, 8))
    assert np.array_equal(to_uint8(load_image(path).image), expected)


@pytest.mark.parametrize("orientation", [3, 8])
def test_jpeg_orientations_match_pillow(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    path.write_bytes(_oriented_bytes(_quadrants(), "JPEG", orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path))).astype(int)
    shown = to_uint8(load_image(path).image).astype(int)
    assert shown.shape == expected.shape
    assert np.abs(shown - expected).mean() < 3


def test_orientation_applies_to_alpha_too(tmp_path):
    rgba = np.random.default_rng(9).integers(0, 256, (4, 6, 4), dtype=np.uint8)
    path = tmp_path / "o6a.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgba, "RGBA").save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.image.shape == (3, 6, 4) and loaded.alpha.shape == (1, 6, 4)
    assert np.array_equal(to_uint8(loaded.alpha)[..., 0], np.rot90(rgba[..., 3], k=-1))
    assert np.array_equal(to_uint8(loaded.image), np.rot90(rgba[..., :3], k=-1))


# ---------------------------------------------------------------- read errors


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_quadrants(64, 64)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _expect_read_error(path: Path, *words: str) -> str:
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    message = str(info.value)
    assert path.name in message
    for word in words:
        assert word in message.lower()
    assert isinstance(info.value, ValueError)
    return message


def test_error_missing_file(tmp_path):
    _expect_read_error(tmp_path / "missing.png", "does not exist")


def test_error_directory(tmp_path):
    folder = tmp_path / "folder.png"
    folder.mkdir()
    _expect_read_error(folder, "directory")


def test_error_unsupported_extension(tmp_path):
    path = tmp_path / "image.gif"
    path.write_bytes(_png_bytes())
    _expect_read_error(path, "extension", ".gif")


def test_error_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _expect_read_error(path, "empty")


def test_error_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n")
    _expect_read_error(path, "not a png, jpeg")


def test_error_corrupt_bytes_after_valid_signature(tmp_path):
    data = bytearray(_png_bytes())
    data[40:] = np.random.default_rng(1).integers(0, 256, len(data) - 40, dtype=np.uint8).tobytes()
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    _expect_read_error(path, "png", "corrupt")


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_error_truncated_png(tmp_path, keep):
    data = _png_bytes()
    path = tmp_path / "trunc.png"
    path.write_bytes(data[: int(len(data) * keep)])
    _expect_read_error(path, "truncated")


@pytest.mark.parametrize("cut", ["half", "last2"])
def test_error_truncated_jpeg(tmp_path, cut):
    data = _jpeg_bytes()
    path = tmp_path / "trunc.jpg"
    path.write_bytes(data[: len(data) // 2] if cut == "half" else data[:-2])
    _expect_read_error(path, "jpeg", "truncated")


def test_truncated_real_photo_raises(tmp_path):
    data = (REAL_BLUR / "text_motion.jpg").read_bytes()  # carries EXIF with its own markers
    path = tmp_path / "text_motion.jpg"
    path.write_bytes(data[: len(data) * 3 // 4])
    _expect_read_error(path, "truncated")


def _with_app1_thumbnail_marker(jpeg: bytes) -> bytes:
    """Insert an APP1 segment whose payload contains FF D9 (like an EXIF thumbnail's EOI)."""
    payload = b"Exif\x00\x00" + b"\xff\xd8fake-thumbnail\xff\xd9"
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + segment + jpeg[2:]


def test_truncated_jpeg_with_thumbnail_eoi_raises(tmp_path):
    data = _with_app1_thumbnail_marker(_jpeg_bytes())
    whole = tmp_path / "whole.jpg"
    whole.write_bytes(data)
    assert load_image(whole).image.shape == (3, 64, 64)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) * 2 // 3])
    _expect_read_error(cut, "truncated")


def test_truncated_jpeg_raises_even_if_decoder_pads(tmp_path, monkeypatch):
    """Some OpenCV builds decode a truncated JPEG (grey padding); the EOI check still catches it."""
    data = _jpeg_bytes()
    path = tmp_path / "padded.jpg"
    path.write_bytes(data[: len(data) - 40])
    monkeypatch.setattr(images_module.cv2, "imdecode", lambda *a, **k: np.full((64, 64, 3), 128, np.uint8))
    _expect_read_error(path, "jpeg", "truncated")


def test_jpeg_with_trailing_data_is_accepted(tmp_path):
    path = tmp_path / "trailer.jpg"
    path.write_bytes(_jpeg_bytes() + b"\x00" * 64 + b"appended payload")
    assert load_image(path).image.shape == (3, 64, 64)


@pytest.mark.parametrize("suffix", [".tif", ".webp", ".bmp"])
def test_error_truncated_other_formats(tmp_path, suffix):
    good = save_image(tmp_path / f"good{suffix}", _levels((3, 24, 24), 8))
    data = good.read_bytes()
    path = tmp_path / f"trunc{suffix}"
    path.write_bytes(data[: len(data) // 2])
    _expect_read_error(path)


# ---------------------------------------------------------------- writes: atomic, protected, errors


def test_atomic_write_leaves_only_the_output(tmp_path):
    save_image(tmp_path / "out.png", _levels((3, 4, 4), 8))
    save_image(tmp_path / "out.png", _levels((3, 4, 4), 8, seed=7))  # overwrite an output
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert torch.equal(load_image(tmp_path / "out.png").image, _levels((3, 4, 4), 8, seed=7))


def test_failed_write_removes_temp_and_keeps_old_file(tmp_path, monkeypatch):
    target = save_image(tmp_path / "out.png", _levels((3, 4, 4), 8))
    before = target.read_bytes()

    def broken_replace(src, dst):
        assert Path(src).parent == Path(dst).parent  # temp file lives beside the target
        assert Path(src).exists()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(images_module.os, "replace", broken_replace)
    with pytest.raises(ImageWriteError, match="out.png"):
        save_image(target, _levels((3, 4, 4), 8, seed=1))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_write_onto_directory_fails_cleanly(tmp_path):
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(ImageWriteError, match="taken.png"):
        save_image(tmp_path / "taken.png", _levels((3, 4, 4), 8))
    assert _no_temp_files(tmp_path)
    assert (tmp_path / "taken.png").is_dir()


def test_protected_input_is_never_overwritten(tmp_path):
    src = tmp_path / "in" / "photo.png"
    src.parent.mkdir()
    src.write_bytes(_png_bytes())
    before = src.read_bytes()
    image = _levels((3, 32, 32), 8)
    spellings = [src, str(src), tmp_path / "in" / ".." / "in" / "photo.png"]
    link = tmp_path / "link.png"
    link.symlink_to(src)
    spellings.append(link)
    for dest in spellings:
        with pytest.raises(ImageWriteError, match="photo.png|link.png"):
            save_image(dest, image, protected=[src])
    with pytest.raises(ImageWriteError):
        save_image(src, image, protected=str(src))  # a single path is accepted too
    assert src.read_bytes() == before
    assert _no_temp_files(src.parent)
    # a different destination is fine
    assert save_image(tmp_path / "in" / "photo_deblurred.png", image, protected=[src]).is_file()


def test_protected_hard_link_is_refused(tmp_path):
    src = tmp_path / "photo.png"
    src.write_bytes(_png_bytes())
    hard = tmp_path / "alias.png"
    os.link(src, hard)
    with pytest.raises(ImageWriteError):
        save_image(hard, _levels((3, 4, 4), 8), protected=[src])
    assert hard.read_bytes() == src.read_bytes() == _png_bytes()


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("x.gif", {}, "extension"),
        ("x.jpg", {"bit_depth": 16}, "16-bit"),
        ("x.webp", {"bit_depth": 16}, "16-bit"),
        ("x.jpg", {"alpha": torch.ones(1, 4, 4)}, "alpha"),
    ],
)
def test_write_rejects_unsupported_requests(tmp_path, name, kwargs, match):
    with pytest.raises(ImageWriteError, match=match):
        save_image(tmp_path / name, _levels((3, 4, 4), 8), **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError):
        save_image(tmp_path / "x.png", torch.zeros(2, 4, 4))
    with pytest.raises(ValueError):
        save_image(tmp_path / "x.png", torch.zeros(3, 4, 4), alpha=torch.zeros(1, 4, 5))
    with pytest.raises(TypeError):
        save_image(tmp_path / "x.png", np.zeros((3, 4, 4), np.float32))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- listing


def test_list_images_filters_and_sorts(tmp_path):
    for name in ["b.png", "a.JPG", "c.tiff", "notes.txt", ".hidden.png", "d.webp"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.png").write_bytes(b"x")
    extra = tmp_path / "sub" / "e.png"
    found = list_images([tmp_path, extra, tmp_path / "b.png"])
    assert [p.name for p in found] == ["a.JPG", "b.png", "c.tiff", "d.webp", "e.png"]
    assert list_images(tmp_path / "b.png") == [tmp_path / "b.png"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_images([tmp_path, tmp_path / "nowhere"])


def test_image_extensions_constant():
    assert IMAGE_EXTENSIONS == frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})


# ---------------------------------------------------------------- real files


@pytest.mark.parametrize(
    "name,shape",
    [
        ("clock_motion.png", (1, 300, 400)),
        ("licenseplate_motion.jpg", (3, 482, 600)),
        ("text_defocus.jpg", (3, 472, 697)),
        ("text_motion.jpg", (3, 365, 588)),
    ],
)
def test_real_example_photos(name, shape):
    path = REAL_BLUR / name
    loaded = load_image(path)
    assert loaded.image.shape == shape and loaded.image.dtype == torch.float32
    assert loaded.bit_depth == 8 and loaded.alpha is None
    assert 0.0 <= float(loaded.image.min()) and float(loaded.image.max()) <= 1.0
    reference = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    if reference.ndim == 2:
        reference = reference[..., None]
    # OpenCV's and Pillow's JPEG decoders may differ by a level or two
    assert np.abs(to_uint8(loaded.image).astype(int) - reference.astype(int)).mean() < 1.0
    assert list_images(REAL_BLUR) == sorted(REAL_BLUR.glob("*.*g"))


def test_atomic_writers_use_normal_permissions_and_clean_up(tmp_path):
    """Files written atomically get 0o666 minus the umask (not mkstemp's 0o600); a failing
    writer leaves the old file and no temporary file."""
    import os

    from deblurkit.io.atomic import atomic_path, write_text_atomic

    umask = os.umask(0)
    os.umask(umask)
    p = write_text_atomic(tmp_path / "a" / "t.txt", "one")
    assert p.read_text() == "one"
    assert (p.stat().st_mode & 0o777) == (0o666 & ~umask)
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert p.read_text() == "one"
    assert sorted(x.name for x in p.parent.iterdir()) == ["t.txt"]
