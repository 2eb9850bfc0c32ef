"""Temporary accounts: invite tokens, QR codes, on-scan creation, expiry and pruning."""
