"""DMARC aggregate, failure and SMTP TLS reports: read, stored once, classified."""
