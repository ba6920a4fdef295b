"""A capturing SMS provider for the demo and the tests (Python standard library only).

It speaks the Brevo-compatible transactional SMS API of the contract (docs/API.md,
"Appointments, and telling the person") on loopback, and writes every accepted message
to SMS_DIR instead of sending it:

    POST /v3/transactionalSMS/sms
    api-key: <SMS_API_KEY>
    {"sender": "Aiguillage", "recipient": "33612345678", "content": "...",
     "type": "transactional", "tag": "appointment"}

    201 {"reference", "messageId", "smsCount", "usedCredits", "remainingCredits"}
    400 {"code": "invalid_parameter" | "bad_request", "message"}   bad input, SMS_REJECT
    401 {"code": "unauthorized", "message"}                         no or wrong api-key
    503 {"code": "service_unavailable", "message"}                  SMS_FAIL

Each accepted message is one file <received>-<pid>-<seq>.json (see README.md), written
under a temporary name and renamed into place, so a reader never sees half a file.

Everything is configured by the environment (see README.md beside this file):

    SMS_HOST          listen address, loopback only (default 127.0.0.1)
    SMS_PORT          listen port (default 8095)
    SMS_DIR           where messages go (required)
    SMS_API_KEY       the api-key every request must carry (required)
    SMS_REJECT        comma-separated patterns (fnmatch) of recipients refused with
                      400 invalid_parameter: a permanent refusal
    SMS_FAIL          same, answered 503: a temporary failure, for retry tests
    SMS_HANG          same, answered only after SMS_HANG_SECONDS (default 30): for the
                      client's timeout
    SMS_FSYNC         1: fsync each file before renaming it (default 0)
    SMS_PIDFILE       written with the pid once listening, removed on exit
"""

from __future__ import annotations

import fnmatch
import hmac
import ipaddress
import itertools
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("aiguillage-sms")

PATH = "/v3/transactionalSMS/sms"
MAX_BODY = 64 * 1024

# GSM 03.38 default alphabet (one septet each) and its extension table (an escape and
# the character: two septets each). 0x09 is the capital C with cedilla, as in the
# Unicode mapping of the standard (GSM0338.TXT); the small ç is not in the alphabet.
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "\x0c^{}\\[~]|€"
assert len(GSM_BASIC) == 128, len(GSM_BASIC)
# The escape itself is not text.
GSM_BASIC_SET = frozenset(GSM_BASIC) - {"\x1b"}
GSM_EXTENSION_SET = frozenset(GSM_EXTENSION)


def gsm7_septets(text: str) -> list[int] | None:
    """The septets of each character, or None if one is outside GSM 03.38."""
    out = []
    for c in text:
        if c in GSM_BASIC_SET:
            out.append(1)
        elif c in GSM_EXTENSION_SET:
            out.append(2)
        else:
            return None
    return out


def segments(text: str) -> int:
    """How many SMS the text takes, as a handset or provider splits it: GSM-7 is 160
    septets in one SMS, else 153 per part (an escape and its character never split);
    anything else is UCS-2, 70 UTF-16 units in one, else 67 per part (a surrogate pair
    never split). contracts::gsm::segments counts the same way."""
    units = gsm7_septets(text)
    single, part = 160, 153
    if units is None:
        units = [len(c.encode("utf-16-le")) // 2 for c in text]
        single, part = 70, 67
    if sum(units) <= single:
        return 1
    count, used = 1, 0
    for u in units:
        if used + u > part:
            count, used = count + 1, 0
        used += u
    return count


def patterns(name: str) -> list[str]:
    return [p.strip() for p in os.environ.get(name, "").split(",") if p.strip()]


def matches(recipient: str, pats: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(recipient, p) for p in pats)


SENDER_ALPHA = re.compile(r"[A-Za-z0-9]{1,11}")
SENDER_NUMERIC = re.compile(r"[0-9]{1,15}")
# E.164 without the "+": a country code (never starting with 0) and the number, 8 to
# 15 digits in all.
RECIPIENT = re.compile(r"[1-9][0-9]{7,14}")
FSYNC = os.environ.get("SMS_FSYNC", "0") == "1"


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if FSYNC:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


class Invalid(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validate(body: object) -> dict:
    """The request's fields, as Brevo checks them; Invalid otherwise."""
    if not isinstance(body, dict):
        raise Invalid("bad_request", "Input must be a JSON object")
    sender = body.get("sender")
    if not isinstance(sender, str) or not sender:
        raise Invalid("invalid_parameter", "sender is missing")
    if not (SENDER_ALPHA.fullmatch(sender) or SENDER_NUMERIC.fullmatch(sender)):
        raise Invalid(
            "invalid_parameter",
            "sender must be at most 11 alphanumeric characters (or 15 digits)",
        )
    recipient = body.get("recipient")
    if not isinstance(recipient, str) or not recipient:
        raise Invalid("invalid_parameter", "recipient is missing")
    if not RECIPIENT.fullmatch(recipient):
        raise Invalid(
            "invalid_parameter",
            "recipient must be the mobile number with its country code, digits only "
            "(33612345678)",
        )
    content = body.get("content")
    if not isinstance(content, str) or not content:
        raise Invalid("invalid_parameter", "content is missing")
    kind = body.get("type", "transactional")
    if kind not in ("transactional", "marketing"):
        raise Invalid("invalid_parameter", "type must be transactional or marketing")
    tag = body.get("tag")
    if tag is not None and not isinstance(tag, str):
        raise Invalid("invalid_parameter", "tag must be a string")
    return {"sender": sender, "recipient": recipient, "content": content, "type": kind, "tag": tag}


class Capture:
    """What the handlers share: settings, the folder, the counters."""

    def __init__(self, directory: Path, api_key: str) -> None:
        self.directory = directory
        self.api_key = api_key.encode()
        self.reject = patterns("SMS_REJECT")
        self.fail = patterns("SMS_FAIL")
        self.hang = patterns("SMS_HANG")
        self.hang_seconds = float(os.environ.get("SMS_HANG_SECONDS", "30"))
        self.lock = threading.Lock()
        self.seq = itertools.count(1)
        self.last_id = 0
        self.credits = 100_000.0

    def next_id(self) -> tuple[int, int]:
        # Increasing microseconds since the epoch: unique across restarts too.
        with self.lock:
            self.last_id = max(self.last_id + 1, time.time_ns() // 1000)
            return self.last_id, next(self.seq)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AiguillageCaptureSMS/1"
    capture: Capture

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base's name)
        # The request line only carries the path; no number or content is logged.
        log.debug("%s %s", self.address_string(), format % args)

    def answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status: int, code: str, message: str) -> None:
        self.answer(status, {"code": code, "message": message})

    def read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.error(411, "bad_request", "Content-Length is required")
            self.close_connection = True
            return None
        n = int(length)
        if n > MAX_BODY:
            # Read what was sent (up to a limit) so that the client sees the answer
            # rather than a reset connection.
            if n <= 16 * MAX_BODY:
                self.rfile.read(n)
            self.error(413, "bad_request", "the request body is too large")
            self.close_connection = True
            return None
        return self.rfile.read(n)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.not_here()

    def do_PUT(self) -> None:  # noqa: N802
        self.not_here()

    def do_DELETE(self) -> None:  # noqa: N802
        self.not_here()

    def not_here(self) -> None:
        body = self.headers.get("Content-Length")
        if body and body.isdigit() and int(body) <= MAX_BODY:
            self.rfile.read(int(body))
        if self.path.split("?")[0] == PATH:
            self.error(405, "method_not_allowed", "use POST")
        else:
            self.error(404, "not_found", "Not found")

    def do_POST(self) -> None:  # noqa: N802
        raw = self.read_body()
        if raw is None:
            return
        if self.path.split("?")[0] != PATH:
            self.error(404, "not_found", "Not found")
            return
        key = self.headers.get("api-key")
        if key is None:
            self.error(401, "unauthorized", "Key not found")
            return
        if not hmac.compare_digest(key.encode(), self.capture.api_key):
            self.error(401, "unauthorized", "Key not found")
            return
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self.error(400, "bad_request", "Input must be a valid JSON object")
            return
        try:
            sms = validate(body)
        except Invalid as e:
            self.error(400, e.code, e.message)
            return
        recipient = sms["recipient"]
        masked = "*" * (len(recipient) - 2) + recipient[-2:]
        if matches(recipient, self.capture.reject):
            log.info("refused %s: 400 (SMS_REJECT)", masked)
            self.error(400, "invalid_parameter", "Invalid phone number (SMS_REJECT)")
            return
        if matches(recipient, self.capture.fail):
            log.info("failed %s: 503 (SMS_FAIL)", masked)
            self.error(503, "service_unavailable", "The service is temporarily unavailable (SMS_FAIL)")
            return
        if matches(recipient, self.capture.hang):
            log.info("holding %s for %.0f s (SMS_HANG)", masked, self.capture.hang_seconds)
            time.sleep(self.capture.hang_seconds)
            self.error(503, "service_unavailable", "answered too late (SMS_HANG)")
            return
        self.store(sms)

    def store(self, sms: dict) -> None:
        message_id, seq = self.capture.next_id()
        now = datetime.now(timezone.utc)
        stem = f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{os.getpid()}-{seq:06d}"
        content = sms["content"]
        units = gsm7_septets(content)
        count = segments(content)
        used = float(count)
        with self.capture.lock:
            self.capture.credits -= used
            remaining = self.capture.credits
        record = {
            "file": f"{stem}.json",
            "messageId": message_id,
            "reference": f"capture-{message_id}",
            "received_at": now.isoformat().replace("+00:00", "Z"),
            "sender": sms["sender"],
            "recipient": sms["recipient"],
            "content": content,
            "type": sms["type"],
            "tag": sms["tag"],
            "gsm7": units is not None,
            "septets": sum(units) if units is not None else None,
            "segments": count,
            "peer": list(self.client_address),
        }
        write_atomic(self.capture.directory / f"{stem}.json", json.dumps(record, indent=2, ensure_ascii=False).encode() + b"\n")
        log.info("stored %s.json (messageId %d, %d segment(s), gsm7=%s)", stem, message_id, count, units is not None)
        self.answer(
            201,
            {
                "reference": record["reference"],
                "messageId": message_id,
                "smsCount": count,
                "usedCredits": used,
                "remainingCredits": remaining,
            },
        )


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    host = os.environ.get("SMS_HOST", "127.0.0.1")
    if not loopback(host):
        print(f"SMS_HOST must be a loopback address, not {host!r}", file=sys.stderr)
        return 2
    port = int(os.environ.get("SMS_PORT", "8095"))
    directory = os.environ.get("SMS_DIR")
    if not directory:
        print("SMS_DIR is not set", file=sys.stderr)
        return 2
    api_key = os.environ.get("SMS_API_KEY", "")
    if not api_key:
        print("SMS_API_KEY is not set", file=sys.stderr)
        return 2
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)

    capture = Capture(path, api_key)
    handler = type("CaptureHandler", (Handler,), {"capture": capture})
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((host, port), handler)

    pidfile = os.environ.get("SMS_PIDFILE")
    if pidfile:
        # Written once the socket listens: start.sh waits for it.
        write_atomic(Path(pidfile), f"{os.getpid()}\n".encode())

    def stop(signum, frame) -> None:
        # shutdown() waits for serve_forever to return: not from its own thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "listening on http://%s:%d (reject=%s, fail=%s, hang=%s); messages in %s",
        host, port, ",".join(capture.reject) or "-", ",".join(capture.fail) or "-",
        ",".join(capture.hang) or "-", path,
    )
    started = time.monotonic()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
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
