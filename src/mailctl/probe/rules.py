"""Prometheus alert rules for the probe's metrics (`mailctl probe rules`).

Failing alerts key on `mailctl_probe_success`, not on the stage series: a
route that fails at a different stage each run must still page after `for`.
Staleness keys on the last-success timestamp, which keeps its value in a
Pushgateway (failed runs do not push it, see push.py), so "no good run for
N minutes" fires whether the probe fails, stops, or stops pushing.
"""

from __future__ import annotations

_RULES = """\
# Alert rules for mailctl's mail roundtrip probe (mailctl probe rules).
# Check:  promtool check rules FILE
groups:
  - name: mailctl-probe
    rules:
      - alert: MailRoundtripFailing
        expr: >-
          mailctl_probe_success == 0
          unless on(route) mailctl_probe_failed_stage{stage="spam"} == 1
        for: @FAIL_FOR@
        labels: {severity: critical}
        annotations:
          summary: "Mail roundtrip {{ $labels.route }} failing"
          description: >-
            The probe for route {{ $labels.route }} has failed for @FAIL_FOR@; last failed stage:
            {{ with printf "mailctl_probe_failed_stage{route='%s'} == 1" $labels.route | query }}
            {{- . | first | label "stage" }}{{ else }}unknown{{ end }}.

      - alert: MailRoundtripLandedInSpam
        expr: mailctl_probe_failed_stage{stage="spam"} == 1
        for: @FAIL_FOR@
        labels: {severity: warning}
        annotations:
          summary: "Probe mail for {{ $labels.route }} lands in a spam folder"

      - alert: MailRoundtripSlow
        expr: mailctl_probe_roundtrip_seconds > @SLOW@
        for: 15m
        labels: {severity: warning}
        annotations:
          summary: "Mail roundtrip {{ $labels.route }} slow ({{ $value | humanizeDuration }})"

      - alert: MailProbeStale
        # Also fires through a Pushgateway: failed runs leave the last success in place.
        expr: time() - mailctl_probe_last_success_timestamp_seconds > @STALE@
        labels: {severity: critical}
        annotations:
          summary: >-
            No successful mail roundtrip for {{ $labels.route }}
            in {{ $value | humanizeDuration }}

      - alert: MailProbeNeverSucceeded
        expr: >-
          mailctl_probe_last_run_timestamp_seconds
          unless on(route) mailctl_probe_last_success_timestamp_seconds
        for: @STALE_FOR@
        labels: {severity: critical}
        annotations:
          summary: "The probe for {{ $labels.route }} runs but has never succeeded"

      - alert: MailProbeNotRunning
        # The probe itself stopped (cron, daemon); a Pushgateway keeps the last value for ever.
        expr: time() - mailctl_probe_last_run_timestamp_seconds > @STALE@
        labels: {severity: warning}
        annotations:
          summary: "The probe for {{ $labels.route }} last ran {{ $value | humanizeDuration }} ago"

      - alert: MailProbePushMissing
        # The Pushgateway's own clock, in case the probe host's clock is off.
        expr: time() - push_time_seconds{job="@JOB@"} > @STALE@
        labels: {severity: warning}
        annotations:
          summary: "No push from the mail probe for {{ $value | humanizeDuration }}"

      - alert: MailProbeAbsent
        expr: absent(mailctl_probe_last_run_timestamp_seconds)
        for: @STALE_FOR@
        labels: {severity: warning}
        annotations:
          summary: "No mail probe metrics at all"

      - alert: MailProbeLeftovers
        # Probe messages piling up: cleanup failing, or late arrivals of timed-out runs.
        expr: mailctl_probe_leftover_messages > 5
        for: 30m
        labels: {severity: warning}
        annotations:
          summary: "{{ $value }} probe messages left in the mailbox of {{ $labels.route }}"
"""


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}m" if s % 60 == 0 else f"{s}s"


def render(interval: float = 300, job: str = "mailctl_probe", slow: float = 120) -> str:
    """The rule file for a probe run every `interval` seconds.

    Failing needs two failed runs (for: 2 intervals); stale means no success
    in 6 intervals, minimum 30 min, so one slow run does not page."""
    stale = max(1800, int(interval * 6))
    repl = {
        "@FAIL_FOR@": _duration(max(60, interval * 2)),
        "@STALE@": str(stale),
        "@STALE_FOR@": _duration(stale),
        "@SLOW@": f"{slow:g}",
        "@JOB@": job,
    }
    text = _RULES
    for key, value in repl.items():
        text = text.replace(key, value)
    return text
