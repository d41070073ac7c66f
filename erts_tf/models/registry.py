"""Backbone registry: ``name -> Backbone(build, target_layer)``.

Every builder has the signature ``build(input_shape, n_classes) -> keras.Model``
where ``input_shape`` is ``(time, leads)`` and the model maps a z-scored signal
``(batch, time, leads)`` to logits ``(batch, n_classes)`` (no softmax). The
layer named ``target_layer`` is the Grad-CAM target: its output has a time axis
(``(batch, time', channels)`` for 1-D backbones, ``(batch, rows, time',
channels)`` for 2-D ones).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras

BuildFn = Callable[[tuple[int, int], int], keras.Model]


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A registered backbone.

    Attributes:
      name: registry key, e.g. ``"resnet1d"``.
      build: ``build(input_shape, n_classes) -> keras.Model`` producing logits.
      target_layer: name of the Grad-CAM target layer inside the built model.
      description: one line for ``--helpfull`` and the docs.
    """

    name: str
    build: BuildFn
    target_layer: str
    description: str


_REGISTRY: dict[str, Backbone] = {}


def register(name: str, target_layer: str, description: str):
    """Decorator registering ``build`` under ``name``."""

    def wrap(build: BuildFn) -> BuildFn:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is registered twice")
        _REGISTRY[name] = Backbone(name, build, target_layer, description)
        return build

    return wrap


def names() -> list[str]:
    """Sorted names of every registered backbone."""
    return sorted(_REGISTRY)


def get(name: str) -> Backbone:
    """The backbone registered as ``name``; ``KeyError`` naming the choices."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown backbone {name!r}; choose one of {', '.join(names())}"
        ) from None


def build(name: str, input_shape: tuple[int, int], n_classes: int) -> keras.Model:
    """Builds backbone ``name`` for ``(time, leads)`` inputs and ``n_classes`` logits."""
    backbone = get(name)
    model = backbone.build(tuple(input_shape), int(n_classes))
    model.get_layer(backbone.target_layer)  # fails loudly if a builder forgot the name
    return model
