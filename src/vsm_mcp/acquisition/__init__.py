"""Capability acquisition: S4 proposes, S5 vets and decides, S1 gains a unit (or everything is undone)."""

from __future__ import annotations
