"""A decoder that kills its worker process on files named ``crash*`` (for the feature-store test:
a real decoder can segfault on a corrupt file instead of raising)."""

import os

from mcbench.features import _decode_worker


def decode(job):
    if "crash" in os.path.basename(job[1]):
        os._exit(3)
    return _decode_worker(job)
