"""Self-test of the capture SMS server through start.sh and stop.sh, with the standard
library's http.client as the client: an accepted message and its file, the 400s of bad
input, the 401 of a missing or wrong key, the SMS_REJECT, SMS_FAIL and SMS_HANG
patterns, segment counting, and a kill and restart on the same port that keeps the
folder.

    python3 deploy/dev/sms/selftest.py

Each case uses its own state directory and a free port, so it does not disturb a
server already running on 8095. Ends with a line "N passed, N failed".
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY = "test-key-0123"
PATH = "/v3/transactionalSMS/sms"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server under a temporary state directory."""

    def __init__(self, tmp: Path, **settings: str) -> None:
        self.port = free_port()
        self.state = tmp / "state"
        self.dir = tmp / "sms"
        self.settings = settings

    def env(self, **more: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SMS_PORT=str(self.port),
            SMS_STATE_DIR=str(self.state),
            SMS_DIR=str(self.dir),
            SMS_API_KEY=KEY,
        )
        env.update(self.settings)
        env.update(more)
        return env

    def start(self, **more: str) -> str:
        out = subprocess.run(
            [str(HERE / "start.sh")], env=self.env(**more), check=True,
            capture_output=True, text=True, timeout=60,
        )
        return out.stdout

    def stop(self) -> None:
        subprocess.run([str(HERE / "stop.sh")], env=self.env(), check=True,
                       capture_output=True, timeout=30)

    @property
    def pid(self) -> int:
        return int((self.state / "server.pid").read_text())

    def post(self, body: object, key: str | None = KEY, raw: bytes | None = None,
             path: str = PATH, timeout: float = 10) -> tuple[int, dict]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key is not None:
            headers["api-key"] = key
        data = raw if raw is not None else json.dumps(body).encode()
        try:
            c.request("POST", path, body=data, headers=headers)
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"null")
        finally:
            c.close()

    def messages(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.dir.glob("*.json"))]


def sms(**fields: object) -> dict:
    body = {
        "sender": "Aiguillage",
        "recipient": "33612345678",
        "content": "RDV aide numérique mardi 10 décembre à 9 h 30, Médiathèque Alpha. Tél 05 45 00 00 00",
        "type": "transactional",
        "tag": "appointment",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


class SmsServerTest(unittest.TestCase):
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

    def test_an_accepted_message_is_written_once_whole(self) -> None:
        s = self.server()
        out = s.start()
        self.assertIn(str(s.dir), out)
        self.assertIn(f"AIGUILLAGE_SMS_URL=http://127.0.0.1:{s.port}", out)
        self.assertNotIn(KEY, out, "a key given is not printed")
        status, body = s.post(sms())
        self.assertEqual(status, 201, body)
        self.assertIsInstance(body["messageId"], int)
        self.assertEqual(body["smsCount"], 1)
        self.assertIn("usedCredits", body)
        self.assertIn("remainingCredits", body)
        [m] = s.messages()
        self.assertEqual(m["messageId"], body["messageId"])
        self.assertEqual(m["recipient"], "33612345678")
        self.assertEqual(m["sender"], "Aiguillage")
        self.assertEqual(m["content"], sms()["content"])
        self.assertEqual(m["tag"], "appointment")
        self.assertEqual(m["type"], "transactional")
        self.assertTrue(m["gsm7"])
        self.assertEqual(m["segments"], 1)
        self.assertEqual(m["septets"], len(sms()["content"]))
        self.assertTrue(m["received_at"].endswith("Z"))
        self.assertEqual(list(s.dir.glob(".*")), [], "no temporary file is left")
        status, second = s.post(sms())
        self.assertEqual(status, 201)
        self.assertGreater(second["messageId"], body["messageId"])

    def test_segments_and_gsm7_are_counted_as_a_handset_would(self) -> None:
        s = self.server()
        s.start()
        cases = [
            ("a" * 160, 1, True, 160),
            ("a" * 161, 2, True, 161),
            ("a" * 306, 2, True, 306),
            ("a" * 307, 3, True, 307),
            ("€" * 80, 1, True, 160),  # the extension table: two septets each
            ("a" + "€" * 80, 2, True, 161),
            ("Cœur" + "a" * 66, 1, False, None),  # œ is not GSM-7: UCS-2, 70 in one
            ("Cœur" + "a" * 67, 2, False, None),
            ("ç", 1, False, None),  # only the capital Ç is in the alphabet
            ("Ç", 1, True, 1),
        ]
        for content, segments, gsm7, septets in cases:
            status, body = s.post(sms(content=content))
            self.assertEqual(status, 201, content)
            self.assertEqual(body["smsCount"], segments, content)
        for m, (content, segments, gsm7, septets) in zip(s.messages(), cases):
            self.assertEqual((m["content"], m["segments"], m["gsm7"], m["septets"]),
                             (content, segments, gsm7, septets))

    def test_bad_input_gets_400_invalid_parameter_and_nothing_is_written(self) -> None:
        s = self.server()
        s.start()
        for body in [
            sms(sender=None),
            sms(sender=""),
            sms(sender="Aiguillage12"),  # 12 characters
            sms(sender="Aiguil lage"),
            sms(sender="Aiguillagé"),
            sms(recipient=None),
            sms(recipient="+33612345678"),
            sms(recipient="0612345678"),
            sms(recipient="33 6 12 34 56 78"),
            sms(recipient="3361234"),
            sms(recipient="3361234567890123"),
            sms(recipient=33612345678),
            sms(content=None),
            sms(content=""),
            sms(content=12),
            sms(type="urgent"),
            sms(tag=["a"]),
        ]:
            status, answer = s.post(body)
            self.assertEqual(status, 400, body)
            self.assertEqual(answer["code"], "invalid_parameter", body)
            self.assertTrue(answer["message"])
        for raw in [b"not json", b"[1, 2]", b"\xff\xfe"]:
            status, answer = s.post(None, raw=raw)
            self.assertEqual(status, 400, raw)
            self.assertEqual(answer["code"], "bad_request")
        status, _ = s.post(sms(), raw=b"x" * (65 * 1024))
        self.assertEqual(status, 413)
        # A numeric sender of up to 15 digits is allowed, as the real API does.
        self.assertEqual(s.post(sms(sender="123456789012345"))[0], 201)
        self.assertEqual(len(s.messages()), 1)

    def test_a_missing_or_wrong_key_gets_401(self) -> None:
        s = self.server()
        s.start()
        status, body = s.post(sms(), key=None)
        self.assertEqual((status, body["code"]), (401, "unauthorized"))
        status, body = s.post(sms(), key="wrong")
        self.assertEqual((status, body["code"]), (401, "unauthorized"))
        # The key is checked before the body: a bad body without a key is still 401.
        self.assertEqual(s.post(None, key=None, raw=b"not json")[0], 401)
        self.assertEqual(s.post(sms(), path="/v3/smtp/email")[0], 404)
        self.assertEqual(s.messages(), [])

    def test_reject_fail_and_hang_patterns(self) -> None:
        s = self.server(SMS_REJECT="3361111*,33622222222", SMS_FAIL="3369999*", SMS_HANG="33677777777",
                        SMS_HANG_SECONDS="3")
        s.start()
        status, body = s.post(sms(recipient="33611112222"))
        self.assertEqual((status, body["code"]), (400, "invalid_parameter"))
        status, body = s.post(sms(recipient="33622222222"))
        self.assertEqual(status, 400)
        status, body = s.post(sms(recipient="33699990000"))
        self.assertEqual((status, body["code"]), (503, "service_unavailable"))
        with self.assertRaises(TimeoutError):
            s.post(sms(recipient="33677777777"), timeout=1)
        status, _ = s.post(sms(recipient="33612345678"))
        self.assertEqual(status, 201)
        self.assertEqual([m["recipient"] for m in s.messages()], ["33612345678"])

    def test_idempotent_start_kill_and_restart_on_the_same_port_keep_the_folder(self) -> None:
        s = self.server()
        s.start()
        first = s.pid
        s.start()
        self.assertEqual(s.pid, first, "a second start with the same settings keeps the server")
        self.assertEqual(s.post(sms())[0], 201)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(first, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        with self.assertRaises(OSError):
            s.post(sms(), timeout=2)
        s.start()
        self.assertNotEqual(s.pid, first)
        self.assertEqual(s.post(sms())[0], 201)
        restarted = s.pid
        s.start(SMS_REJECT="33700000000")
        self.assertNotEqual(s.pid, restarted, "new settings restart the server")
        self.assertEqual(s.post(sms(recipient="33700000000"))[0], 400)
        s.stop()
        self.assertFalse((s.state / "server.pid").exists())
        self.assertEqual(len(s.messages()), 2, "messages written before a restart stay")

    def test_a_port_taken_by_another_program_is_refused(self) -> None:
        s = self.server()
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            other.bind(("127.0.0.1", s.port))
            other.listen()
            with self.assertRaises(subprocess.CalledProcessError) as e:
                s.start()
            self.assertIn("taken by another program", e.exception.stderr)

    def test_only_loopback(self) -> None:
        s = self.server(SMS_HOST="0.0.0.0")
        with self.assertRaises(subprocess.CalledProcessError) as e:
            s.start()
        self.assertIn("loopback", e.exception.stderr)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
