"""Configuration: the schema (:mod:`.schema`, pure), cross-field validation (:mod:`.validate`,
pure) and the one door to Hydra and OmegaConf (:mod:`.hydra_door`). Importing this package and
validating a config loads neither torch nor anything that touches devices."""

from resist.config.hydra_door import (
    load_run_config,
    plain,
    register_schemas,
    save_resolved_config,
    to_typed_config,
)
from resist.config.rules import image_size
from resist.config.schema import *  # noqa: F403 - the schema's names are the package's vocabulary
from resist.config.schema import __all__ as _schema_names
from resist.config.validate import validate

__all__ = [
    *_schema_names,
    "image_size",
    "load_run_config",
    "plain",
    "register_schemas",
    "save_resolved_config",
    "to_typed_config",
    "validate",
]
