"""What mail apps are told: the settings table, Thunderbird autoconfig, Microsoft
autodiscover (POX) and the servers in a DCLOGIN code, from one source.

Where the servers come from, first match wins: `console.mail_apps` (per domain
or "*"), `accounts.login`, the sandbox serving a dms folder, the SRV records
of the provider's DNS profile (`_imaps._tcp`, `_submissions._tcp`, ...), and
last `mail.<domain>` (the profiles' default MX host) on 993 and 465. So what
`dns records` tells a domain to publish and what the console answers agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

AUTOCONFIG_PATHS = ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml")
AUTODISCOVER_PATHS = ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml")
MAX_AUTODISCOVER_BODY = 64 * 1024

# SRV service -> (protocol, security)
_SRV = {"_imaps._tcp": ("imap", "ssl"), "_imap._tcp": ("imap", "starttls"),
        "_submissions._tcp": ("smtp", "ssl"), "_submission._tcp": ("smtp", "starttls")}
_RANK = {"ssl": 0, "starttls": 1, "plain": 2}


@dataclass(frozen=True, slots=True)
class Server:
    host: str
    port: int
    security: str  # ssl | starttls | plain

    @property
    def security_label(self) -> str:
        return {"ssl": "SSL/TLS", "starttls": "STARTTLS", "plain": "none"}[self.security]


@dataclass(frozen=True, slots=True)
class MailServers:
    domain: str
    imap: Server
    smtp: Server
    accept_invalid: bool = False  # self-signed (the sandbox)
    source: str = "default"  # config | accounts | sandbox | profile | default


def from_profile(domain: str, records: list[tuple[str, str]], mx_host: str
                 ) -> MailServers:
    """Servers from a profile's SRV records [(name, "prio weight port target.")], each
    already filled in; the most secure of each protocol wins."""
    found: dict[str, Server] = {}
    for name, value in records:
        kind = _SRV.get(name)
        if kind is None:
            continue
        parts = value.split()
        if len(parts) != 4 or not parts[2].isdigit():
            continue
        proto, security = kind
        server = Server(parts[3].rstrip("."), int(parts[2]), security)
        old = found.get(proto)
        if old is None or _RANK[security] < _RANK[old.security]:
            found[proto] = server
    if not found:
        return MailServers(domain, Server(mx_host, 993, "ssl"), Server(mx_host, 465, "ssl"))
    imap = found.get("imap") or Server(mx_host, 993, "ssl")
    smtp = found.get("smtp") or Server(mx_host, 465, "ssl")
    return MailServers(domain, imap, smtp, source="profile")


def _socket_type(security: str) -> str:
    return {"ssl": "SSL", "starttls": "STARTTLS", "plain": "plain"}[security]


def autoconfig_xml(servers: MailServers) -> str:
    """Thunderbird's clientConfig v1.1; the username is the whole address."""
    d = escape(servers.domain)

    def block(tag: str, kind: str, s: Server) -> str:
        return (f'    <{tag} type="{kind}">\n'
                f"      <hostname>{escape(s.host)}</hostname>\n"
                f"      <port>{s.port}</port>\n"
                f"      <socketType>{_socket_type(s.security)}</socketType>\n"
                "      <authentication>password-cleartext</authentication>\n"
                "      <username>%EMAILADDRESS%</username>\n"
                f"    </{tag}>\n")

    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<clientConfig version="1.1">\n'
            f'  <emailProvider id="{d}">\n'
            f"    <domain>{d}</domain>\n"
            f"    <displayName>{d}</displayName>\n"
            f"    <displayShortName>{d}</displayShortName>\n"
            + block("incomingServer", "imap", servers.imap)
            + block("outgoingServer", "smtp", servers.smtp)
            + "  </emailProvider>\n</clientConfig>\n")


def autodiscover_xml(servers: MailServers, address: str) -> str:
    """Outlook's POX answer: one IMAP and one SMTP protocol block."""
    a = escape(address)

    def proto(kind: str, s: Server) -> str:
        tls = ("      <SSL>on</SSL>\n" if s.security == "ssl" else
               "      <SSL>off</SSL>\n      <Encryption>TLS</Encryption>\n"
               if s.security == "starttls" else "      <SSL>off</SSL>\n")
        return ("    <Protocol>\n"
                f"      <Type>{kind}</Type>\n"
                f"      <Server>{escape(s.host)}</Server>\n"
                f"      <Port>{s.port}</Port>\n"
                "      <DomainRequired>off</DomainRequired>\n"
                f"      <LoginName>{a}</LoginName>\n"
                "      <SPA>off</SPA>\n"
                f"{tls}"
                "      <AuthRequired>on</AuthRequired>\n"
                "    </Protocol>\n")

    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/'
            'responseschema/2006">\n'
            '  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
            'responseschema/2006a">\n'
            "  <Account>\n"
            "    <AccountType>email</AccountType>\n"
            "    <Action>settings</Action>\n"
            + proto("IMAP", servers.imap) + proto("SMTP", servers.smtp)
            + "  </Account>\n  </Response>\n</Autodiscover>\n")


def autodiscover_address(body: bytes) -> str | None:
    """The EMailAddress of an autodiscover request, or None if there is none to read.

    Parsed with defusedxml: the body comes from anyone on the internet."""
    import defusedxml.ElementTree as ET
    from defusedxml import DefusedXmlException

    try:
        root = ET.fromstring(body)
    except (ET.ParseError, DefusedXmlException, ValueError):
        return None
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "EMailAddress" and el.text:
            return el.text.strip()
    return None


def domain_from_host(host: str) -> str:
    """`autoconfig.example.org:443` -> `example.org` (and a bare domain as is)."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    name = name.strip().lower().rstrip(".")
    for prefix in ("autoconfig.", "autodiscover."):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name
