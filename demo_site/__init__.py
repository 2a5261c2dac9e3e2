"""A small provider site that uses consentkit: ``python -m demo_site``."""
