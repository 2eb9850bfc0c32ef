"""Prometheus alert rules for the reports metrics (`mailctl reports rules`).

The sender alerts compare shares, not counts, so a domain sending ten
messages a day and one sending a million page on the same condition; a floor
of `min_messages` failing messages keeps one stray forward from paging.
Staleness keys on the newest report's window: DMARC reporters send daily, so
three days without one means the rua address or the mailbox broke.
"""

from __future__ import annotations

_RULES = """\
# Alert rules for mailctl's DMARC and TLS report metrics (mailctl reports rules).
# Check:  promtool check rules FILE
groups:
  - name: mailctl-reports
    rules:
      - alert: MailSenderFailingDmarc
        # A configured sender (provider, relay, declared) whose mail fails DMARC.
        expr: >-
          (@BY@ (@M@{@CONF@, spf="fail", dkim="fail"})
          / @BY@ (@M@{@CONF@}))
          > @SHARE@
          and @BY@ (@M@{@CONF@, spf="fail", dkim="fail"}) >= @MIN@
        for: 1h
        labels: {severity: critical}
        annotations:
          summary: >-
            {{ $labels.source_class }} {{ $labels.source }} fails DMARC for {{ $labels.domain }}
          description: >-
            {{ $value | humanizePercentage }} of the mail {{ $labels.source }} sends as
            {{ $labels.domain }} fails DMARC in the receivers' reports; see
            `mailctl reports show {{ $labels.domain }}` for the cause.

      - alert: MailSenderSpfNotAligned
        # SPF does not align for a configured sender (the relay-switch incident: a new relay
        # whose include is missing). DMARC may still pass through DKIM, hence a warning.
        expr: >-
          (@BY@ (@M@{@CONF@, spf="fail"})
          / @BY@ (@M@{@CONF@}))
          > @SHARE@
          and @BY@ (@M@{@CONF@, spf="fail"}) >= @MIN@
        for: 1h
        labels: {severity: warning}
        annotations:
          summary: >-
            SPF not aligned for {{ $labels.source_class }} {{ $labels.source }}
            ({{ $labels.domain }})

      - alert: MailSenderDkimNotAligned
        expr: >-
          (@BY@ (@M@{@CONF@, dkim="fail"})
          / @BY@ (@M@{@CONF@}))
          > @SHARE@
          and @BY@ (@M@{@CONF@, dkim="fail"}) >= @MIN@
        for: 1h
        labels: {severity: warning}
        annotations:
          summary: >-
            DKIM not aligned for {{ $labels.source_class }} {{ $labels.source }}
            ({{ $labels.domain }})

      - alert: MailFormerRelayStillSending
        expr: sum by (domain, source) (@M@{source_class="former"}) >= @MIN@
        for: 1h
        labels: {severity: warning}
        annotations:
          summary: >-
            {{ $labels.source }} still sends as {{ $labels.domain }} although it is no
            longer a relay

      - alert: MailUnknownSourcesFailing
        # Spoofing, or a service someone forgot to declare.
        expr: >-
          sum by (domain) (@M@{source_class="unknown", spf="fail", dkim="fail"})
          >= @UNKNOWN@
        for: 1h
        labels: {severity: warning}
        annotations:
          summary: "{{ $value }} messages from unknown sources fail DMARC as {{ $labels.domain }}"

      - alert: MailTlsFailures
        expr: sum by (domain, mx, result) (mailctl_reports_tls_sessions{result!="success"}) > 0
        for: 1h
        labels: {severity: critical}
        annotations:
          summary: >-
            TLS failures delivering to {{ $labels.domain }} ({{ $labels.mx }}):
            {{ $labels.result }}

      - alert: MailReportsStale
        # No DMARC aggregate report for a domain that had them: rua or the mailbox broke.
        expr: >-
          time() - max by (domain) (mailctl_reports_last_report_timestamp_seconds{kind="dmarc"})
          > @STALE@
        labels: {severity: warning}
        annotations:
          summary: "No DMARC report for {{ $labels.domain }} in {{ $value | humanizeDuration }}"

      - alert: MailReportsFetchFailing
        expr: mailctl_reports_fetch_success == 0
        for: 1h
        labels: {severity: warning}
        annotations:
          summary: "Reading the report mailbox {{ $labels.mailbox }} ({{ $labels.folder }}) fails"

      - alert: MailReportsRejected
        expr: sum by (code) (mailctl_reports_rejected) > 0
        for: 1h
        labels: {severity: info}
        annotations:
          summary: >-
            {{ $value }} report(s) rejected ({{ $labels.code }}); they stay marked in
            the mailbox
"""


def render(share: float = 0.02, min_messages: int = 10, unknown: int = 100,
           stale_days: float = 3) -> str:
    repl = {"@BY@": "sum by (domain, source_class, source)", "@M@": "mailctl_reports_messages",
            "@CONF@": 'source_class=~"provider|relay|declared"', "@SHARE@": f"{share:g}",
            "@MIN@": str(min_messages), "@UNKNOWN@": str(unknown),
            "@STALE@": str(int(stale_days * 86400))}
    text = _RULES
    for key, value in repl.items():
        text = text.replace(key, value)
    return text
