"""The web console (HTTP adapter)."""
