"""Safra quality."""
