"""deblurkit.models: registry of networks, checkpoint I/O and architecture detection.

Public API::

    build(name, **overrides) -> nn.Module     # configured as the official release
    list_models() -> list[str]
    get_descriptor(name) -> ModelDescriptor   # size multiple, value range, outputs, ...
    register_model(name, descriptor)          # decorator for network modules
    load_checkpoint(net, path, strict=True, map_location="cpu") -> net
    read_state_dict(path) -> dict[str, Tensor]
    save_safetensors(state_dict, path)        # atomic
    detect_architecture(state_dict) -> [(name, overrides), ...]
    describe_checkpoint(path) -> dict         # backs `deblurkit inspect`
    init_weights(net, init_type="normal", gain=0.02)  # Blur2Blur's init_net initialisation

Registered networks (one module per system):

- ``mimo_unet``, ``mimo_unet_plus`` (:mod:`.mimo_unet`): MIMO-UNet / MIMO-UNet+, Blur2Blur's generator.
- ``patchgan_b2b``, ``kernel_wizard`` (:mod:`.blur2blur`): Blur2Blur's multi-scale PatchGAN and the
  blur-kernel-space-exploring kernel extractor / re-blurring network.
- ``rsst``, ``rsst_lewin`` (:mod:`.rsst`): RSS-T (global-reset-release shutter deblurring).
- ``msdi_net``, ``msdi2_net``, ``msdi2e``, ``msdi_discriminator`` and the released parts
  ``msdi_encoder``, ``msdi_prior_upsampling``, ``msdi2_encoder``, ``msdi2_prior_upsampling``
  (:mod:`.msdi`): MSDI-Net (learned degradation representations).
- ``evdeblur``, ``evdeblur_rgb`` (:mod:`.evdeblur`): event-guided low-light deblurring.
"""
from .checkpoint import (
    WRAPPER_KEYS,
    CheckpointMismatchError,
    CheckpointReadError,
    StateDictDiff,
    describe_checkpoint,
    detect_architecture,
    diff_state_dicts,
    load_checkpoint,
    read_state_dict,
    save_safetensors,
    unwrap_state_dict,
)
from .registry import (
    ModelDescriptor,
    OfficialSource,
    build,
    get_descriptor,
    get_factory,
    list_models,
    register_model,
)

# Network modules register themselves on import: every module of this package except the
# infrastructure ones is one system's networks (mimo_unet.py, aspdc.py, rsst.py, ...).
import importlib as _importlib  # noqa: E402
import pkgutil as _pkgutil  # noqa: E402

for _info in _pkgutil.iter_modules(__path__):
    if not _info.ispkg and _info.name not in ("checkpoint", "registry") and not _info.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_info.name}")
from .mimo_unet import init_weights  # noqa: E402  (Blur2Blur/pix2pix init_net, usable on any net)

__all__ = [
    "WRAPPER_KEYS",
    "CheckpointMismatchError",
    "CheckpointReadError",
    "ModelDescriptor",
    "OfficialSource",
    "StateDictDiff",
    "build",
    "describe_checkpoint",
    "detect_architecture",
    "diff_state_dicts",
    "get_descriptor",
    "get_factory",
    "init_weights",
    "list_models",
    "load_checkpoint",
    "read_state_dict",
    "register_model",
    "save_safetensors",
    "unwrap_state_dict",
]
