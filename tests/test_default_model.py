"""The default deblurrer is the classical pipeline; the embedded network ``mimo_unet_small`` (the
former default) is still shipped, loadable by name, and really deblurs held-out photos.

The photos ``wallpaper/mate_*`` were held out of its training (configs/default_mimo_unet_synthphotos.yaml);
here textured crops of two of them are blurred with real Levin et al. 2009 kernels plus Gaussian
noise sigma 0.01, as in the model card's evaluation, and the model must raise PSNR clearly.
"""
from __future__ import annotations

import json
from importlib import resources

import torch

from deblurkit.cli.blur2blur import make_deblurrer
from deblurkit.inference import ClassicalDeblurrer, Deblurrer
from deblurkit.io import read_image
from deblurkit.metrics import psnr
from deblurkit.models import get_descriptor
from deblurkit.synth import blur_valid_pair, levin_kernels
from deblurkit.synth.noise import poisson_gaussian_noise, quantize_8bit

# The shipped model gains +2.83 dB on exactly these four crops (gains 3.88, 0.72, 3.88, 2.84;
# levin09_6 is the kernel with the largest centroid offset, see docs/models/mimo_unet_small.md); the bound
# leaves room for platform differences but fails if the weights regress towards the identity.
MIN_MEAN_GAIN_DB = 2.0


def test_default_weights_are_shipped_small_and_described():
    folder = resources.files("deblurkit").joinpath("weights")
    info = json.loads(folder.joinpath("default.json").read_text())
    weights = folder.joinpath(info["weights"])
    assert weights.is_file()
    assert weights.stat().st_size <= 30 * 2**20
    assert info["model"] in ("mimo_unet",) and get_descriptor(info["model"]).size_multiple == 4


def test_the_cli_default_is_the_classical_pipeline():
    for model in (None, "classical"):  # deblur / evaluate without --model, or --model classical
        d = make_deblurrer(model, None, None, None, device="cpu", precision="fp32", tile="auto", tile_overlap=32)
        assert isinstance(d, ClassicalDeblurrer) and d.model_name == "classical" and d.kernel is None
    d = make_deblurrer("mimo_unet_small", None, None, None, device="cpu", progress=False)
    assert type(d) is Deblurrer and d.weights.name == "default.safetensors"
    assert d.model_overrides == {"base_channel": 16, "num_res": 4}


def test_embedded_network_deblurs_held_out_photos(shared_data):
    kernels = levin_kernels(shared_data / "kernels" / "levin09_kernels.npz")
    d = Deblurrer("mimo_unet_small", progress=False, device="cpu")
    g = torch.Generator().manual_seed(0)
    gains = []
    for photo, top, left in (("mate_Wood.jpg", 400, 700), ("mate_Storm.jpg", 300, 900)):
        sharp_full = read_image(shared_data / "photos" / "wallpaper" / photo)
        region = sharp_full[:, top:top + 160, left:left + 160]
        for name in ("levin09_3", "levin09_6"):
            blurry, sharp = blur_valid_pair(region[None], kernels[name])
            blurry = quantize_8bit(poisson_gaussian_noise(blurry, sigma=0.01, generator=g))
            restored = d.deblur_tensor(blurry)
            gains.append(float(psnr(restored, sharp)[0] - psnr(blurry, sharp)[0]))
    mean_gain = sum(gains) / len(gains)
    assert mean_gain >= MIN_MEAN_GAIN_DB, gains
