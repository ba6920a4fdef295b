"""Self-test of the capture SMTP server through start.sh and stop.sh, with the standard
library's smtplib as the client: plain SMTP, AUTH PLAIN and LOGIN, STARTTLS (verified
against the generated CA), implicit TLS, refused and deferred recipients, the files
written, and a kill and restart on the same port.

    python3 deploy/dev/smtp/selftest.py

Each case uses its own state directory and a free port, so it does not disturb a
server already running on 2525. Ends with a line "N passed, N failed".
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from email.message import EmailMessage
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server under a temporary state directory."""

    def __init__(self, tmp: Path, **settings: str) -> None:
        self.port = free_port()
        self.state = tmp / "state"
        self.maildir = tmp / "mail"
        self.settings = settings

    def env(self, **more: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SMTP_PORT=str(self.port),
            SMTP_STATE_DIR=str(self.state),
            SMTP_MAILDIR=str(self.maildir),
        )
        env.update(self.settings)
        env.update(more)
        return env

    def start(self, **more: str) -> str:
        out = subprocess.run(
            [str(HERE / "start.sh")], env=self.env(**more), check=True,
            capture_output=True, text=True, timeout=300,
        )
        return out.stdout

    def stop(self) -> None:
        subprocess.run([str(HERE / "stop.sh")], env=self.env(), check=True,
                       capture_output=True, timeout=30)

    @property
    def pid(self) -> int:
        return int((self.state / "server.pid").read_text())

    @property
    def ca(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.state / "tls" / "ca.pem"))

    def messages(self) -> list[tuple[bytes, dict]]:
        out = []
        for eml in sorted(self.maildir.glob("*.eml")):
            out.append((eml.read_bytes(), json.loads(eml.with_suffix(".json").read_text())))
        return out


def message(to: str = "mediateur@example.org") -> EmailMessage:
    m = EmailMessage()
    m["From"] = "Aiguillage <ne-pas-repondre@localhost>"
    m["To"] = to
    m["Subject"] = "Nouvelle orientation à Angoulême"
    # A line starting with a dot checks the dot-unstuffing; the accents check 8-bit data.
    m.set_content("Bonjour,\n.une ligne qui commence par un point\nÀ bientôt\n", cte="8bit")
    return m


class SmtpServerTest(unittest.TestCase):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = Path(self._tmp.name)
        self.servers: list[Server] = []

    def tearDown(self) -> None:
        for s in self.servers:
            s.stop()
        self._tmp.cleanup()

    def server(self, **settings: str) -> Server:
        s = Server(self.tmp, **settings)
        self.servers.append(s)
        return s

    def test_plain_message_and_envelope_are_written(self) -> None:
        s = self.server()
        out = s.start()
        self.assertIn(str(s.maildir), out)
        sent = message()
        with smtplib.SMTP("127.0.0.1", s.port) as c:
            c.send_message(sent, to_addrs=["mediateur@example.org", "bcc@example.org"])
        [(eml, meta)] = s.messages()
        self.assertEqual(eml.replace(b"\r\n", b"\n"), sent.as_bytes())
        self.assertEqual(meta["rcpt_tos"], ["mediateur@example.org", "bcc@example.org"])
        self.assertEqual(meta["mail_from"], "ne-pas-repondre@localhost")
        self.assertIsNone(meta["auth_user"])
        self.assertFalse(meta["tls"])

    def test_refused_recipient_gets_550_and_the_others_still_get_mail(self) -> None:
        s = self.server(SMTP_REJECT="*@rejected.example", SMTP_DEFER="*@later.example")
        s.start()
        with smtplib.SMTP("127.0.0.1", s.port) as c:
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
                c.send_message(message("a@rejected.example"))
            self.assertEqual(e.exception.recipients["a@rejected.example"][0], 550)
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
                c.send_message(message("b@later.example"))
            self.assertEqual(e.exception.recipients["b@later.example"][0], 450)
            refused = c.send_message(message(), to_addrs=["ok@example.org", "A@Rejected.Example"])
            self.assertEqual(refused["A@Rejected.Example"][0], 550)
        [(_, meta)] = s.messages()
        self.assertEqual(meta["rcpt_tos"], ["ok@example.org"])
        self.assertEqual(meta["rejected_rcpts"], ["A@Rejected.Example"])

    def test_auth_is_required_and_checked(self) -> None:
        s = self.server(SMTP_AUTH="aiguillage:s3cret")
        s.start()
        with smtplib.SMTP("127.0.0.1", s.port) as c:
            with self.assertRaises(smtplib.SMTPSenderRefused) as e:
                c.send_message(message())
            self.assertEqual(e.exception.smtp_code, 530)
        with smtplib.SMTP("127.0.0.1", s.port) as c:
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                c.login("aiguillage", "wrong")
        for mechanism in ("PLAIN", "LOGIN"):
            with smtplib.SMTP("127.0.0.1", s.port) as c:
                c.ehlo()
                c.user, c.password = "aiguillage", "s3cret"
                c.auth(mechanism, getattr(c, f"auth_{mechanism.lower()}"))
                c.send_message(message())
        metas = [m for _, m in s.messages()]
        self.assertEqual([m["auth_user"] for m in metas], ["aiguillage", "aiguillage"])

    def test_starttls_with_auth(self) -> None:
        s = self.server(SMTP_TLS="starttls", SMTP_AUTH="aiguillage:s3cret", SMTP_REQUIRE_TLS="1")
        out = s.start()
        self.assertIn("ca.pem", out)
        with smtplib.SMTP("localhost", s.port) as c:
            c.ehlo()
            self.assertTrue(c.has_extn("starttls"))
            self.assertFalse(c.has_extn("auth"), "AUTH must wait for TLS")
            with self.assertRaises(smtplib.SMTPSenderRefused) as e:
                c.send_message(message())
            self.assertEqual(e.exception.smtp_code, 530)
        with smtplib.SMTP("localhost", s.port) as c:
            c.starttls(context=s.ca)  # verifies the chain and the name "localhost"
            c.login("aiguillage", "s3cret")
            c.send_message(message())
        with smtplib.SMTP("127.0.0.1", s.port) as c:
            c.starttls(context=s.ca)  # the certificate also names 127.0.0.1
            c.login("aiguillage", "s3cret")
        [(_, meta)] = s.messages()
        self.assertTrue(meta["tls"])
        self.assertEqual(meta["auth_user"], "aiguillage")

    def test_implicit_tls(self) -> None:
        s = self.server(SMTP_TLS="implicit", SMTP_AUTH="u:p")
        out = s.start()
        self.assertIn("smtps://u:***@", out)
        with smtplib.SMTP_SSL("localhost", s.port, context=s.ca) as c:
            c.login("u", "p")
            c.send_message(message())
        [(_, meta)] = s.messages()
        self.assertTrue(meta["tls"])

    def test_idempotent_start_kill_and_restart_on_the_same_port(self) -> None:
        s = self.server()
        s.start()
        first = s.pid
        s.start()
        self.assertEqual(s.pid, first, "a second start with the same settings keeps the server")
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(first, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        with self.assertRaises(OSError):
            smtplib.SMTP("127.0.0.1", s.port, timeout=2)
        s.start()
        self.assertNotEqual(s.pid, first)
        with smtplib.SMTP("127.0.0.1", s.port) as c:
            c.send_message(message())
        restarted = s.pid
        s.start(SMTP_REJECT="*@rejected.example")
        self.assertNotEqual(s.pid, restarted, "new settings restart the server")
        s.stop()
        self.assertFalse((s.state / "server.pid").exists())
        self.assertEqual(len(s.messages()), 1)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
