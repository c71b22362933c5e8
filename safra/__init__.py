"""Safra: MLOps for agribusiness credit scoring. Shared settings, logging, CLI and local stack."""
