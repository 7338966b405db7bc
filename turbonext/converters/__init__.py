"""Converters from public pose-transfer checkpoints (Moore-AnimateAnyone, MusePose, RAIN) to TurboNextPipeline."""

from turbonext.converters.build import (
    Architecture,
    ConversionError,
    architecture_configs,
    build_models,
    convert_checkpoint,
    map_checkpoint,
)
from turbonext.converters.checkpoint_files import UnsafeCheckpointError, load_state_dict
from turbonext.converters.key_mapping import MappingReport, motion_key
from turbonext.converters.sources import SOURCES, CheckpointSource, get_source


__all__ = [
    "Architecture", "CheckpointSource", "ConversionError", "MappingReport", "SOURCES", "UnsafeCheckpointError",
    "architecture_configs", "build_models", "convert_checkpoint", "get_source", "load_state_dict", "map_checkpoint",
    "motion_key",
]
