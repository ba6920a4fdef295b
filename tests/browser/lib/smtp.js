// The capture SMTP server of deploy/dev/smtp (aiosmtpd), on a free loopback port with a
// folder of its own: what the notifications service sends, read back as the person at
// the structure's desk would read it. `stop()` stops it and removes the folder.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from './system.js';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const scripts = path.resolve(here, '..', '..', '..', 'deploy', 'dev', 'smtp');

/** Quoted-printable to UTF-8 text. */
function quotedPrintable(body) {
  const s = body.replace(/=\r?\n/g, '');
  const bytes = [];
  for (let i = 0; i < s.length; i++) {
    const hex = s.slice(i + 1, i + 3);
    if (s[i] === '=' && /^[0-9A-F]{2}$/i.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(s[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The text of every part of a message, decoded (base64 or quoted-printable). */
export function textOf(eml) {
  const parts = [];
  const part = /Content-Transfer-Encoding:\s*([\w-]+)\r?\n(?:[^\r\n]+\r?\n)*\r?\n([\s\S]*?)(?=\r?\n--|$)/gi;
  for (const [, encoding, body] of eml.matchAll(part)) {
    if (/^base64$/i.test(encoding)) parts.push(Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8'));
    else if (/^quoted-printable$/i.test(encoding)) parts.push(quotedPrintable(body));
    else parts.push(body);
  }
  return parts.length > 0 ? parts.join('\n') : eml;
}

export async function startSmtp() {
  const port = await freePort();
  const state = await mkdtemp(path.join(os.tmpdir(), 'aiguillage-smtp-'));
  const maildir = path.join(state, 'mail');
  const env = { ...process.env, SMTP_PORT: String(port), SMTP_STATE_DIR: state, SMTP_MAILDIR: maildir };
  await run(path.join(scripts, 'start.sh'), [], { env });
  return {
    url: `smtp://127.0.0.1:${port}`,
    /** Every message so far, in order: `{ to: [addresses], text }`. */
    async messages() {
      let names = [];
      try {
        names = (await readdir(maildir)).filter((n) => n.endsWith('.eml')).sort();
      } catch {
        return [];
      }
      return Promise.all(names.map(async (n) => {
        const envelope = JSON.parse(await readFile(path.join(maildir, n.replace(/\.eml$/, '.json')), 'utf8'));
        return { to: envelope.rcpt_tos.map((a) => a.toLowerCase()), text: textOf(await readFile(path.join(maildir, n), 'utf8')) };
      }));
    },
    async stop() {
      await run(path.join(scripts, 'stop.sh'), [], { env }).catch(() => {});
      await rm(state, { recursive: true, force: true });
    },
  };
}
