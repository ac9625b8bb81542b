"""Search spaces, registered by name.

    space = get_space("mobilenet", input_shape=(1, 28, 28), num_classes=10)
    arch = space.sample(np.random.default_rng(0))[0]
    model = space.build(arch)
"""

from __future__ import annotations

from typing import Any

from hwnas.core.errors import InvalidInputShapeError
from hwnas.spaces.architecture import Architecture, Block, Shape, parse_shape
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.dppnet import DPPNetSpace
from hwnas.spaces.mobilenet import MobileNetSpace
from hwnas.spaces.nb201 import NB201Space
from hwnas.spaces.registry import SPACES
for _cls in (MobileNetSpace, NB201Space, DPPNetSpace):
    SPACES.register(_cls.name, _cls)


def get_space(name: str, *, input_shape: Shape | str, num_classes: int = 10, **options: Any) -> SearchSpace:
    """Instantiate the space ``name`` for an input shape (a tuple or ``'CxHxW'``).

    ``options`` are the space's macro settings (e.g. ``C`` and ``N`` for nb201); unknown ones
    raise InvalidInputShapeError naming them.
    """
    cls = SPACES.get(name)
    shape = parse_shape(input_shape) if isinstance(input_shape, str) else input_shape
    try:
        return cls(input_shape=shape, num_classes=num_classes, **options)
    except TypeError as exc:
        raise InvalidInputShapeError(f"{name}: bad space option ({exc})") from None


__all__ = ["SPACES", "Architecture", "Block", "SearchSpace", "Shape", "get_space", "parse_shape",
           "MobileNetSpace", "NB201Space", "DPPNetSpace"]
