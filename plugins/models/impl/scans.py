"""The eight scans of CRNN-TF and the named subsets of the paper's Fig. 5 (torch-free).

Sec. III-C of Wang et al. (IJCNN 2019) scans the CNN's feature map from its four vertices A, B,
C, D, row-wise (``r``) and column-wise (``c``); eq. (1) concatenates the eight recurrent outputs
in the order ``[Ar, Ac, Br, Bc, Cr, Cc, Dr, Dc]``. Fig. 5 ablates subsets of them. This module
holds only names, so the model's registration can canonicalise the ``scans`` option without
importing torch.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The eight scans in the concatenation order of eq. (1).
SCANS = ("Ar", "Ac", "Br", "Bc", "Cr", "Cc", "Dr", "Dc")
#: Named subsets of the Fig. 5 ablation (Sec. V-E): vertex pairs, row-only, column-only, all.
SCAN_GROUPS = {
    "A_rc": ("Ar", "Ac"),
    "B_rc": ("Br", "Bc"),
    "C_rc": ("Cr", "Cc"),
    "D_rc": ("Dr", "Dc"),
    "ABCD_r": ("Ar", "Br", "Cr", "Dr"),
    "ABCD_c": ("Ac", "Bc", "Cc", "Dc"),
    "all": SCANS,
}


def resolve_scans(scans: str | Iterable[str] = "all") -> tuple[str, ...]:
    """Normalise the ``scans`` option to scan names in eq. (1) order.

    Accepts ``"all"``, a group name (``"A_rc"``, ``"ABCD_r"``…), a scan name, a comma-separated
    string of any of these, or a list. Names are matched case-insensitively; duplicates collapse.
    """
    tokens = [t.strip() for t in scans.split(",")] if isinstance(scans, str) else list(scans)
    lookup = {name.lower(): (name,) for name in SCANS}
    lookup.update({name.lower(): members for name, members in SCAN_GROUPS.items()})
    chosen: set[str] = set()
    for token in tokens:
        if not isinstance(token, str) or token.strip().lower() not in lookup:
            raise ValueError(
                f"unknown scan {token!r}; use 'all', a group {list(SCAN_GROUPS)[:-1]}, "
                f"or any of {list(SCANS)} (a list or a comma-separated string)"
            )
        chosen.update(lookup[token.strip().lower()])
    if not chosen:
        raise ValueError(f"scans must name at least one of {list(SCANS)}")
    return tuple(s for s in SCANS if s in chosen)
