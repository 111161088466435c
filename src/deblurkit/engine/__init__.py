"""Engine: configs, trainer, evaluator, checkpoints."""
from .config import ConfigError, TrainConfig, apply_overrides, load_config, validate_config
from .evaluator import (PROTOCOLS, EvalResult, Protocol, evaluate, evaluate_indexed, get_protocol, register_protocol,
                        write_results)
from .schedule import EMA, lr_at
from .trainer import (RECIPES, RunExistsError, Trainer, build_dataset, export_from_checkpoint, export_weights,
                      make_trainer, register_recipe, resolve_device)

__all__ = [
    "ConfigError", "TrainConfig", "apply_overrides", "load_config", "validate_config",
    "PROTOCOLS", "EvalResult", "Protocol", "evaluate", "evaluate_indexed", "get_protocol", "register_protocol",
    "write_results", "EMA", "lr_at", "RunExistsError", "Trainer", "build_dataset",
    "export_from_checkpoint", "export_weights", "RECIPES", "make_trainer", "register_recipe",
    "resolve_device",
]
