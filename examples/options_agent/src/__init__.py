"""A small, runnable stand-in for the Options Trading Agent's calibration code.

It keeps the real host's module names and result shapes so ``calibration-policy`` can be
integrated and tested against it; it has no broker connection (see ``calibration_extended``).
"""
