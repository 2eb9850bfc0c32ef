"""Mail copy jobs on a PostgreSQL queue, run by workers on any number of hosts.

procrastinate holds the queue (LISTEN/NOTIFY, retries, per-key locks,
queueing locks, worker heartbeats); mailctl adds what a mail migration needs
on top of it, all in the same database: the sync state of every account
(pgstate.py, so any worker resumes any account), per-server connection slots
shared by every worker (slots.py), and per-account progress and failures
(progress.py). docs/jobs.md is the user's guide.
"""
