"""deblurkit.io: reading and writing images (and, later, video frames and event streams).

Image tensors are float32, RGB (or one grey channel), range [0, 1], shape (C, H, W); see
:mod:`deblurkit.io.images`.
"""
from .images import (
    DEFAULT_MAX_MEGAPIXELS,
    IMAGE_EXTENSIONS,
    ImageReadError,
    ImageTooLargeError,
    ImageWriteError,
    LoadedImage,
    list_images,
    load_image,
    read_image,
    rgb_to_grey,
    save_image,
    to_uint8,
    to_uint16,
)

__all__ = [
    "DEFAULT_MAX_MEGAPIXELS",
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "ImageTooLargeError",
    "ImageWriteError",
    "LoadedImage",
    "list_images",
    "load_image",
    "read_image",
    "rgb_to_grey",
    "save_image",
    "to_uint8",
    "to_uint16",
]
