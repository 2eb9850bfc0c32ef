"""Mail sync: backup, restore, migration and fetch-and-deliver over IMAP/LMTP/SMTP."""
