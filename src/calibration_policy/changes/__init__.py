"""One small :class:`~calibration_policy.governor.Change` per kind of change, each run only by the governor.

Built-in kinds: :class:`Update`, :class:`Force`, :class:`Approve`, :class:`Modify`, :class:`Reject`,
:class:`RollBack`, :class:`PolicySet`, :class:`PolicyRollBack`, :class:`PolicyPropose`, :class:`PolicyReview`; a domain plugin adds its own through ``register_change_kinds`` (the scoring
weights' suggest, auto mode and apply).
"""

from __future__ import annotations

from .policy import PolicyPropose, PolicyReview, PolicyRollBack, PolicySet
from .reviews import Approve, Modify, Reject
from .roll_back import RollBack
from .update import Force, Update

__all__ = [
    "Approve",
    "Force",
    "Modify",
    "PolicyPropose",
    "PolicyReview",
    "PolicyRollBack",
    "PolicySet",
    "Reject",
    "RollBack",
    "Update",
]
