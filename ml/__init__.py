"""Safra ml."""
