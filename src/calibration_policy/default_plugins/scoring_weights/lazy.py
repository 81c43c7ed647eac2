"""pandas, imported when first used.

The panel's server builds the weights tab's routes from these modules; with pandas imported at their top, every
server paid pandas and pyarrow (about 70 MB and 0.4 s) whether or not anyone opened the tab. Now a module says
``pd = lazy.pandas`` and the import happens at the first ``pd.<name>``: the trades are read, or a frame built.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _Lazy(ModuleType):
    def __getattr__(self, name: str) -> Any:  # asked only for what the proxy itself does not hold
        return getattr(importlib.import_module(self.__name__), name)


pandas: Any = _Lazy("pandas")
