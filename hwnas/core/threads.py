"""How many threads work gets, chosen from the cores this process may use, and set for a block."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


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
