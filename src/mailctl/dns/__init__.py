"""DNS: the records a mail domain needs, and a live check of what is published."""
