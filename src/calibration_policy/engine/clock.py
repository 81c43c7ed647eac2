"""Time as the engine counts it: integer nanoseconds since the epoch, for windows, decay and cooldowns.

A module of its own so that smoothing, the rules and the scan share one exact conversion without
importing one another.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..errors import CalibrationPolicyError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64 = 2**63


def times_ns(moments: Sequence[datetime]) -> npt.NDArray[np.int64]:
    """UTC times as integer nanoseconds since the epoch, counted exactly.

    numpy would wrap a time outside 1677-09-21 … 2262-04-11 around silently, so such a time
    is an error naming it rather than a wrong weight.
    """
    import numpy as np

    counts = [(moment - _EPOCH) // timedelta(microseconds=1) * 1000 for moment in moments]
    for moment, count in zip(moments, counts):
        if not -_INT64 < count < _INT64:
            raise CalibrationPolicyError(
                f"Cannot smooth a run at {moment.isoformat()}: smoothing counts time in nanoseconds, "
                "which reach only from 1677-09-21 to 2262-04-11."
            )
    return np.array(counts, dtype=np.int64)
