"""Backbone registry. Importing this package registers every backbone."""

from erts_tf.models import resnet1d  # noqa: F401  (registers "resnet1d", "resnet1d5", "resnet1d5_pool2", "_pool3")
from erts_tf.models import efficientnetv2s_2d  # noqa: F401  (registers "efficientnetv2s_2d")
from erts_tf.models import inception1d  # noqa: F401  (registers "inception1d")
from erts_tf.models import mobilenetv2_2d  # noqa: F401  (registers "mobilenetv2_2d")
from erts_tf.models import resnet18_2d  # noqa: F401  (registers "resnet18_2d")
from erts_tf.models import xresnet1d  # noqa: F401  (registers "xresnet1d", "xresnet1d101")
from erts_tf.models.registry import Backbone, build, get, names, register

__all__ = ["Backbone", "build", "get", "names", "register"]
