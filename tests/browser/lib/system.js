// The whole system for a browser test: the development OpenID provider
// (deploy/dev/oidc) and the real aiguillage binary (target/debug, or AIGUILLAGE_BIN) on
// free loopback ports, with a database and a namespace of their own, on the machine's
// PostgreSQL and RabbitMQ. `stop()` kills both and drops the database.
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..', '..');
const BIN = process.env.AIGUILLAGE_BIN ?? path.join(repo, 'target', 'debug', 'aiguillage');
const PG_BASE = process.env.AIGUILLAGE_TEST_POSTGRES ?? `postgres://${os.userInfo().username}@%2Fvar%2Frun%2Fpostgresql`;

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function until(what, check, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `env`: more variables for the server (e.g. `AIGUILLAGE_STATE_BRAND`). */
export async function startSystem(env = {}) {
  const id = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const database = `aig_browser_${id}`;
  const namespace = `b${id}`;
  const rpPort = await freePort();
  const base = `http://127.0.0.1:${rpPort}`;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'aiguillage-oidc-'));
  const oidcDir = path.join(repo, 'deploy', 'dev', 'oidc');
  const logs = { oidc: '', server: '' };

  const oidc = spawn(process.execPath, [path.join(oidcDir, 'server.mjs')], {
    cwd: oidcDir,
    env: { ...process.env, OIDC_PORT: '0', OIDC_DATA_DIR: dataDir, OIDC_RP_URL: base, OIDC_LOG: 'quiet' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  oidc.stdout.on('data', (d) => (logs.oidc += d));
  oidc.stderr.on('data', (d) => (logs.oidc += d));
  const ready = await until('the OpenID provider', async () => JSON.parse(await readFile(path.join(dataDir, 'ready.json'), 'utf8')));
  const issuer = ready.issuer;

  const serverEnv = {
    ...process.env,
    DATABASE_URL: `${PG_BASE}/${database}`,
    AIGUILLAGE_NAMESPACE: namespace,
    AIGUILLAGE_LISTEN: `127.0.0.1:${rpPort}`,
    AIGUILLAGE_OIDC_ISSUER: issuer,
    AIGUILLAGE_OIDC_CLIENT_ID: 'aiguillage-demo',
    AIGUILLAGE_OIDC_CLIENT_SECRET: 'aiguillage-demo-secret-dev-only-0000000000',
    AIGUILLAGE_AUTH_REFRESH: '1s',
    AIGUILLAGE_DB_POOL_SIZE: '8',
    // A throw-away master key for the throw-away database (personal data is sealed with it).
    AIGUILLAGE_MASTER_KEY: process.env.AIGUILLAGE_MASTER_KEY ?? randomBytes(32).toString('base64'),
    RUST_LOG: 'warn',
    ...env,
  };
  const cli = async (...args) => (await run(BIN, args, { env: serverEnv })).stdout.trim();
  await cli('migrate');
  const server = spawn(BIN, ['serve', '--services', 'all'], { env: serverEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout.on('data', (d) => (logs.server += d));
  server.stderr.on('data', (d) => (logs.server += d));
  await until('the server', async () => (await fetch(`${base}/readyz`)).ok);
  const admin = await cli('token', 'issue', '--role', 'admin', '--label', 'browser tests');

  const api = async (method, p, body, token = admin) => {
    const r = await fetch(`${base}${p}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };

  /** One SQL statement on the system's database, as psql prints it unaligned (`-At`). */
  const sql = async (statement) =>
    (await run('psql', [`${PG_BASE}/${database}`, '-v', 'ON_ERROR_STOP=1', '-Atc', statement])).stdout.trim();

  /** Waits until the matcher, which learns of structures from the bus, proposes `structure` for administrative help in Angoulême. */
  const untilMatched = (structure) =>
    until(`${structure} in the matcher`, async () => {
      const r = await api('POST', '/api/v1/match/preview', { commune_code: '16015', needs: ['aide_demarches_administratives'] });
      return r.candidates.some((c) => c.structure_id === structure);
    });

  return {
    base,
    issuer,
    cli,
    api,
    sql,
    untilMatched,
    until,
    logs,
    async stop() {
      server.kill('SIGTERM');
      oidc.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r)).catch(() => {});
      await rm(dataDir, { recursive: true, force: true });
      try {
        await run('psql', [`${PG_BASE}/postgres`, '-qc', `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`]);
      } catch {
        // best effort
      }
    },
  };
}
