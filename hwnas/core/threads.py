"""Torch's thread count, set for a block and restored (how many: ``hwnas.measure.conditions.threads_now``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads inside the block (``None``: leave it as it is), then
    restore. Exporting or training a tiny model: with torch's default of one thread per core, its
    OpenMP barriers stall whenever another core is busy (12x slower conv2d measured)."""
    import torch  # here, not at import: hwnas.core stays free of torch

    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
