"""A capturing SMTP server for the demo and the tests (aiosmtpd).

It listens on loopback, accepts mail and writes every message to SMTP_MAILDIR:

    <received>-<seq>.eml   the message exactly as received (RFC 5322 bytes, after
                           SMTP dot-unstuffing), with no header added;
    <received>-<seq>.json  its envelope: mail_from, rcpt_tos (the accepted
                           recipients), rejected_rcpts, auth_user, tls, peer, size.

The .json is written before the .eml, and each file is renamed into place, so a
reader that sees an .eml also sees its complete sidecar. Files are not flushed to disk
unless SMTP_FSYNC=1: a capture server shares the machine's disk with PostgreSQL, and two
fsyncs per message (on the event loop) both cap it near 25 messages/s and slow the
database's commits, which a remote relay would not do.

Everything is configured by the environment (see README.md beside this file):

    SMTP_HOST            listen address (default 127.0.0.1)
    SMTP_PORT            listen port (default 2525)
    SMTP_MAILDIR         where messages go (required)
    SMTP_AUTH            "user:password": AUTH PLAIN/LOGIN required before MAIL
    SMTP_TLS             off (default), starttls, or implicit (smtps)
    SMTP_REQUIRE_TLS     1: with starttls, refuse MAIL/AUTH until STARTTLS
    SMTP_TLS_CERT/_KEY   PEM files for TLS (start.sh makes them when unset)
    SMTP_REJECT          comma-separated patterns (fnmatch, case-insensitive):
                         RCPT TO matching one gets 550 5.1.1 (permanent)
    SMTP_DEFER           same, but 450 4.2.1 (temporary): for retry tests
    SMTP_PIDFILE         written with the pid once listening, removed on exit
    SMTP_FSYNC           1: fsync each file before renaming it (default 0)
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import json
import logging
import os
import signal
import ssl
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

log = logging.getLogger("aiguillage-smtp")


def patterns(name: str) -> list[str]:
    return [p.strip().lower() for p in os.environ.get(name, "").split(",") if p.strip()]


def matches(address: str, pats: list[str]) -> bool:
    address = address.strip("<>").lower()
    return any(fnmatch.fnmatchcase(address, p) for p in pats)


class CaptureHandler:
    def __init__(self, maildir: Path, reject: list[str], defer: list[str]) -> None:
        self.maildir = maildir
        self.reject = reject
        self.defer = defer
        self.seq = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if matches(address, self.reject):
            envelope.__dict__.setdefault("rejected_rcpts", []).append(address)
            log.info("RCPT %s refused: 550 (SMTP_REJECT)", address)
            return f"550 5.1.1 <{address}>: recipient rejected (SMTP_REJECT)"
        if matches(address, self.defer):
            log.info("RCPT %s deferred: 450 (SMTP_DEFER)", address)
            return f"450 4.2.1 <{address}>: mailbox temporarily unavailable (SMTP_DEFER)"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        now = datetime.now(timezone.utc)
        stem = f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{os.getpid()}-{next(self.seq):06d}"
        content = envelope.original_content or b""
        login = session.login_data
        meta = {
            "eml": f"{stem}.eml",
            "received_at": now.isoformat().replace("+00:00", "Z"),
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "rejected_rcpts": envelope.__dict__.get("rejected_rcpts", []),
            "auth_user": login.decode("utf-8", "replace") if isinstance(login, bytes) else login,
            "tls": session.ssl is not None or IMPLICIT_TLS,
            "peer": list(session.peer) if session.peer else None,
            "helo": session.host_name,
            "size": len(content),
        }
        write_atomic(self.maildir / f"{stem}.json", json.dumps(meta, indent=2).encode() + b"\n")
        write_atomic(self.maildir / f"{stem}.eml", content)
        log.info("stored %s.eml from %s to %s", stem, envelope.mail_from, envelope.rcpt_tos)
        return "250 2.0.0 OK: queued as " + stem


FSYNC = os.environ.get("SMTP_FSYNC", "0") == "1"


def write_atomic(path: Path, data: bytes) -> None:
    # A rename makes the whole file appear at once to readers, with or without fsync;
    # fsync only adds surviving a power cut, which a capture server does not need.
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if FSYNC:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def make_authenticator(user: str, password: str):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode("utf-8", "replace") == user
            and auth_data.password.decode("utf-8", "replace") == password
        )
        log.info("AUTH %s for %r: %s", mechanism,
                 getattr(auth_data, "login", b"").decode("utf-8", "replace"),
                 "ok" if ok else "refused")
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False: aiosmtpd answers 535 5.7.8 itself.
        return AuthResult(success=False, handled=False)

    return authenticate


IMPLICIT_TLS = False


def main() -> int:
    global IMPLICIT_TLS
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # aiosmtpd logs every connection and command at INFO; keep only warnings from it.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # AUTH without TLS is what SMTP_AUTH without SMTP_TLS asks for, on loopback only.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.getLogger("mail.log").addFilter(
        lambda record: "auth_require_tls == False" not in record.getMessage()
    )

    host = os.environ.get("SMTP_HOST", "127.0.0.1")
    port = int(os.environ.get("SMTP_PORT", "2525"))
    maildir = os.environ.get("SMTP_MAILDIR")
    if not maildir:
        print("SMTP_MAILDIR is not set", file=sys.stderr)
        return 2
    maildir_path = Path(maildir)
    maildir_path.mkdir(parents=True, exist_ok=True)

    tls_mode = os.environ.get("SMTP_TLS", "off").lower()
    if tls_mode not in ("off", "starttls", "implicit"):
        print(f"SMTP_TLS must be off, starttls or implicit, not {tls_mode!r}", file=sys.stderr)
        return 2
    context = None
    if tls_mode != "off":
        cert, key = os.environ.get("SMTP_TLS_CERT"), os.environ.get("SMTP_TLS_KEY")
        if not cert or not key:
            print("SMTP_TLS needs SMTP_TLS_CERT and SMTP_TLS_KEY", file=sys.stderr)
            return 2
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    IMPLICIT_TLS = tls_mode == "implicit"

    auth = os.environ.get("SMTP_AUTH", "")
    authenticator = None
    if auth:
        if ":" not in auth:
            print("SMTP_AUTH must be user:password", file=sys.stderr)
            return 2
        user, password = auth.split(":", 1)
        authenticator = make_authenticator(user, password)

    handler = CaptureHandler(maildir_path, patterns("SMTP_REJECT"), patterns("SMTP_DEFER"))

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname="localhost",
            ident="Aiguillage capture SMTP",
            decode_data=False,
            enable_SMTPUTF8=True,
            tls_context=context if tls_mode == "starttls" else None,
            require_starttls=tls_mode == "starttls"
            and os.environ.get("SMTP_REQUIRE_TLS", "0") == "1",
            # Over STARTTLS, AUTH is offered only once the channel is encrypted (as a
            # real relay does); without TLS, or under implicit TLS, it is offered at once.
            auth_require_tls=tls_mode == "starttls",
            auth_required=authenticator is not None,
            authenticator=authenticator,
            auth_exclude_mechanism=[],
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            factory,
            host=host,
            port=port,
            ssl=context if IMPLICIT_TLS else None,
            reuse_address=True,
        )
    )
    pidfile = os.environ.get("SMTP_PIDFILE")
    if pidfile:
        # Written once the socket listens: start.sh waits for it.
        write_atomic(Path(pidfile), f"{os.getpid()}\n".encode())
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "listening on %s:%d (tls=%s, auth=%s, reject=%s, defer=%s); messages in %s",
        host, port, tls_mode, "required" if authenticator else "off",
        ",".join(handler.reject) or "-", ",".join(handler.defer) or "-", maildir_path,
    )
    started = time.monotonic()
    loop.run_until_complete(stop.wait())
    server.close()
    loop.run_until_complete(server.wait_closed())
    if pidfile:
        try:
            if Path(pidfile).read_text().strip() == str(os.getpid()):
                os.unlink(pidfile)
        except FileNotFoundError:
            pass
    log.info("stopped after %.0f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
