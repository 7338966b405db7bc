"""Where weights come from and go to: Hub ids and local folders (:mod:`~turbonext.loaders.hub`), a
pipeline assembled from public component repos (:mod:`~turbonext.loaders.assemble`), model cards and
uploads (:mod:`~turbonext.loaders.publish`). Pipeline classes are passed in, never imported here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from turbonext.utils.lazy import lazy_getattr


_LAZY = {
    "resolve_pretrained_path": "turbonext.loaders.hub",
    "MissingWeightsError": "turbonext.loaders.hub",
    "assemble_pipeline": "turbonext.loaders.assemble",
    "model_card": "turbonext.loaders.publish",
    "push_folder": "turbonext.loaders.publish",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from turbonext.loaders.assemble import assemble_pipeline
    from turbonext.loaders.hub import MissingWeightsError, resolve_pretrained_path
    from turbonext.loaders.publish import model_card, push_folder
