"""Backbone registry. Importing this package registers every backbone."""

from erts_tf.models import resnet1d  # noqa: F401  (registers "resnet1d")
from erts_tf.models.registry import Backbone, build, get, names, register

__all__ = ["Backbone", "build", "get", "names", "register"]
