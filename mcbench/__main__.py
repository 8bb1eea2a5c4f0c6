"""``python -m mcbench``: the ``mcbench`` command (also what ``torchrun -m mcbench run ...`` starts
on every rank, see :mod:`mcbench.distributed`)."""

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    main(prog_name="mcbench")
