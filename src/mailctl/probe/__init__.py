"""Monitoring: an end-to-end mail roundtrip probe, metrics and alert rules."""
