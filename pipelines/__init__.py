"""Safra pipelines."""
