"""System 4's view of the outside: catalogs, registries and the matcher that ranks servers for a demand."""

from __future__ import annotations
