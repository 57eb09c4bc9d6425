"""The RADIUS dictionary shipped with ocs (FreeRADIUS format, read by pyrad).

One :class:`pyrad.dictionary.Dictionary` per process, built from the files in
``dictionaries/``: RFC 2865/2866/2869/3162/5176 attributes and the Mikrotik
(14988), ChilliSpot/Coova (14559) and WISPr (14122) vendor attributes used for
prepaid quotas (standards §3.6).
"""

from __future__ import annotations

import functools
from importlib import resources

from pyrad.dictionary import Dictionary


@functools.cache
def load_dictionary() -> Dictionary:
    """The ocs dictionary, parsed once (pyrad objects are read-only after load)."""
    root = resources.files("protocols.radius") / "dictionaries" / "dictionary"
    with resources.as_file(root) as path:
        return Dictionary(str(path))
