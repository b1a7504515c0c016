"""numba's on-disk cache of the package's compiled code, made fresh by an edit of any of it.

numba checks a cached function against its own source file only, but compiled code here links
in compiled code of other modules (the loop runs the kernel, the kernel the layers, the loop
the dynamics and the random streams). Edit `layers.py` alone and the loop loaded from the cache
still ran the old layers (a run's numbers did not change until the cache was cleared). So every
cached function of the package is stamped with `sources_stamp`: a sha256 of all the package's
modules that compile code (those that import numba). An edit to any of them compiles the
package's code again (about 40 s on first use), an edit elsewhere does not.

`install` (run by `ebnb/__init__.py`, before any module compiles) puts this stamp into numba's
own cache locators for files of this package; other code's caching is unchanged.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from numba.core import caching

PACKAGE = Path(__file__).resolve().parent
_BASES = (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator, caching.UserWideCacheLocator)


@cache
def sources_stamp(package: Path = PACKAGE) -> str:
    """sha256 of the relative paths and contents of the modules under `package` that import numba."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        text = path.read_bytes()
        if b"import numba" in text or b"from numba" in text:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + text)
    return digest.hexdigest()


def _package_locator(base: type) -> type:
    """`base` (one of numba's locators), for this package's files only, stamped with `sources_stamp`."""

    class PackageLocator(base):
        def get_source_stamp(self):
            return sources_stamp()

        @classmethod
        def from_function(cls, py_func, py_file):
            if not Path(py_file).resolve().is_relative_to(PACKAGE):
                return None
            return super().from_function(py_func, py_file)

    PackageLocator.__name__ = PackageLocator.__qualname__ = f"Ebnb{base.__name__}"
    return PackageLocator


_LOCATORS = [_package_locator(base) for base in _BASES]


def install() -> None:
    """Put the package's locators first in numba's list (once): they decline other files."""
    classes = caching.CacheImpl._locator_classes
    if _LOCATORS[0] not in classes:
        classes[:0] = _LOCATORS
