"""Safra serving."""
