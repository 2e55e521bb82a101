"""Writes: typed, keyword-only service functions named ``<entity>_<action>``, each one transaction."""
