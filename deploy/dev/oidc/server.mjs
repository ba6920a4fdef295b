// A development and test OpenID Connect provider that behaves like ProConnect, built on
// the certified `oidc-provider` package. Loopback only, http, in-memory sessions. Never for
// production: anyone who reaches it can sign in as anyone.
//
// Environment (all optional):
//   OIDC_PORT            port on 127.0.0.1 (default 8090; 0 picks a free one)
//   OIDC_ISSUER_PATH     issuer path, e.g. /api/v2 as ProConnect (default: none)
//   OIDC_DATA_DIR        keys, cookie keys and ready.json (default: ./.data next to this file)
//   OIDC_CLIENTS         JSON array of client metadata, or OIDC_CLIENTS_FILE (a JSON file)
//   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_RP_URL, OIDC_POST_LOGOUT_PATHS
//                        the default demo clients when no OIDC_CLIENTS is given
//   OIDC_AGENTS_FILE     demo agents (default ./agents.json)
//   OIDC_STRICT          1 (default): ProConnect's rules on /authorize and /session/end
//   OIDC_TEST_CONTROLS   1: enables /__test/* (key rotation, token tampering). Never in the demo.
//   OIDC_LOG             requests (default) | quiet
//
// See README.md for the login form fields and the test controls.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as jose from 'jose';
import Provider, { errors } from 'oidc-provider';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;

const HOST = '127.0.0.1';
const REQUESTED_PORT = parsePort(env.OIDC_PORT ?? '8090');
const PREFIX = normalisePrefix(env.OIDC_ISSUER_PATH ?? '');
const DATA_DIR = path.resolve(env.OIDC_DATA_DIR || path.join(HERE, '.data'));
const AGENTS_FILE = path.resolve(env.OIDC_AGENTS_FILE || path.join(HERE, 'agents.json'));
const STRICT = (env.OIDC_STRICT ?? '1') !== '0';
const TEST_CONTROLS = env.OIDC_TEST_CONTROLS === '1';
const QUIET = env.OIDC_LOG === 'quiet';
const DEFAULT_IDP_ID = 'ba0528fa-572d-48f2-b3d8-2754ae656fe3'; // "FI de démonstration"
const ACR_VALUES = ['eidas1', 'eidas2', 'eidas3'];
const SIGNING_ALGS = ['RS256', 'ES256'];
// A secret that marks the provider's own loopback calls (the automatic logout confirmation).
const INTERNAL = crypto.randomBytes(24).toString('base64url');

// ProConnect's authorization parameters: the standard ones plus claims, prompt, idp_hint and
// login_hint (PKCE is accepted too). Anything else is a "Y000400 Bad Request".
const AUTHORIZE_PARAMS = new Set([
  'response_type', 'client_id', 'redirect_uri', 'scope', 'state', 'nonce',
  'claims', 'prompt', 'idp_hint', 'login_hint', 'code_challenge', 'code_challenge_method',
]);
const LOGOUT_PARAMS = new Set(['id_token_hint', 'state', 'post_logout_redirect_uri', 'client_id', 'ui_locales', 'logout_hint']);
const MIN_RANDOM = 32;

function parsePort(value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) fail(`OIDC_PORT must be a port number, not ${value}`);
  return n;
}

function normalisePrefix(value) {
  if (!value || value === '/') return '';
  const p = (value.startsWith('/') ? value : `/${value}`).replace(/\/+$/, '');
  if (!/^(\/[A-Za-z0-9._~-]+)+$/.test(p)) fail(`OIDC_ISSUER_PATH must be a plain path like /api/v2, not ${value}`);
  return p;
}

function fail(message) {
  console.error(`oidc-dev: ${message}`);
  process.exit(2);
}

function log(message) {
  if (!QUIET) console.log(`oidc-dev: ${message}`);
}

// ---------------------------------------------------------------------------------------
// Keys, kept in the data directory so that a restart signs with the same keys.

fs.mkdirSync(DATA_DIR, { recursive: true, mode: 0o700 });
const JWKS_FILE = path.join(DATA_DIR, 'jwks.json');
const COOKIES_FILE = path.join(DATA_DIR, 'cookie-keys.json');
const READY_FILE = path.join(DATA_DIR, 'ready.json');

function writeSecret(file, value) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

async function newSigningKey(alg) {
  const { privateKey } = alg === 'RS256'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  const thumbprint = await jose.calculateJwkThumbprint(jwk);
  const day = new Date().toISOString().slice(0, 10).replaceAll('-', '');
  return { ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-${day}-${thumbprint.slice(0, 12)}` };
}

async function loadKeys() {
  if (fs.existsSync(JWKS_FILE)) {
    const { keys } = JSON.parse(fs.readFileSync(JWKS_FILE, 'utf8'));
    if (Array.isArray(keys) && SIGNING_ALGS.every((alg) => keys.some((k) => k.alg === alg && k.d))) {
      return keys;
    }
    fail(`${JWKS_FILE} has no private RS256 and ES256 keys; remove it to generate new ones`);
  }
  const keys = [await newSigningKey('RS256'), await newSigningKey('ES256')];
  writeSecret(JWKS_FILE, { keys });
  log(`generated signing keys in ${JWKS_FILE}`);
  return keys;
}

function loadCookieKeys() {
  if (fs.existsSync(COOKIES_FILE)) return JSON.parse(fs.readFileSync(COOKIES_FILE, 'utf8'));
  const keys = [crypto.randomBytes(32).toString('base64url')];
  writeSecret(COOKIES_FILE, keys);
  return keys;
}

function publicJwk(jwk) {
  const { d, p, q, dp, dq, qi, ...pub } = jwk;
  return pub;
}

// ---------------------------------------------------------------------------------------
// Agents: the demo ones from the JSON file, plus the "new" ones a test signs in with.

function loadAgents() {
  const raw = JSON.parse(fs.readFileSync(AGENTS_FILE, 'utf8'));
  const list = Array.isArray(raw) ? raw : raw.agents;
  if (!Array.isArray(list) || list.length === 0) fail(`${AGENTS_FILE} has no agents`);
  const byId = new Map();
  const bySub = new Map();
  for (const a of list) {
    for (const field of ['id', 'sub', 'given_name', 'usual_name', 'email']) {
      if (typeof a[field] !== 'string' || !a[field]) fail(`agent ${JSON.stringify(a.id)} lacks ${field}`);
    }
    if (a.siret !== undefined && !/^\d{14}$/.test(a.siret)) fail(`agent ${a.id}: siret must be 14 digits`);
    if (byId.has(a.id) || bySub.has(a.sub)) fail(`agent ${a.id}: duplicate id or sub`);
    const agent = { idp_id: DEFAULT_IDP_ID, acr: 'eidas1', ...a, demo: true };
    byId.set(a.id, agent);
    bySub.set(a.sub, agent);
  }
  return { byId, bySub };
}

const agents = loadAgents();

function agentByEmail(email) {
  const wanted = email.trim().toLowerCase();
  for (const a of agents.bySub.values()) if (a.email.toLowerCase() === wanted) return a;
  return undefined;
}

function agentClaims(agent) {
  const claims = {
    sub: agent.sub,
    given_name: agent.given_name,
    usual_name: agent.usual_name,
    email: agent.email,
    uid: agent.uid ?? agent.sub,
    idp_id: agent.idp_id,
    idp_acr: agent.acr,
  };
  if (agent.siret) claims.siret = agent.siret;
  return claims;
}

// ---------------------------------------------------------------------------------------
// Clients.

function isLoopback(url) {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
  } catch {
    return false;
  }
}

function defaultClients() {
  const id = env.OIDC_CLIENT_ID || 'aiguillage-demo';
  const secret = env.OIDC_CLIENT_SECRET || 'aiguillage-demo-secret-dev-only-0000000000';
  const rp = (env.OIDC_RP_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const postLogout = (env.OIDC_POST_LOGOUT_PATHS || '/,/connexion').split(',').map((p) => `${rp}${p.trim()}`);
  // Loopback redirect URIs of a "native" client match on any port (RFC 8252, 7.3), so the
  // demo keeps working when AIGUILLAGE_LISTEN changes port.
  const applicationType = isLoopback(rp) ? 'native' : 'web';
  const base = {
    application_type: applicationType,
    redirect_uris: [`${rp}/auth/callback`],
    post_logout_redirect_uris: postLogout,
  };
  return [
    {
      ...base,
      client_id: id,
      client_secret: secret,
      client_name: 'Aiguillage (démo)',
      token_endpoint_auth_method: 'client_secret_post',
    },
    {
      ...base,
      client_id: `${id}-jwt`,
      client_secret: `${secret}-jwt`,
      client_name: 'Aiguillage (démo, userinfo JWT)',
      token_endpoint_auth_method: 'client_secret_basic',
      userinfo_signed_response_alg: 'RS256',
    },
  ];
}

function loadClients() {
  let clients;
  if (env.OIDC_CLIENTS) clients = JSON.parse(env.OIDC_CLIENTS);
  else if (env.OIDC_CLIENTS_FILE) clients = JSON.parse(fs.readFileSync(env.OIDC_CLIENTS_FILE, 'utf8'));
  else clients = defaultClients();
  if (!Array.isArray(clients) || clients.length === 0) fail('OIDC_CLIENTS must be a non-empty JSON array');
  return clients.map((c) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'RS256',
    ...c,
  }));
}

const clients = loadClients();

// ---------------------------------------------------------------------------------------
// Storage shared by every Provider instance of this process (a key rotation builds a new
// instance; sessions, codes and tokens must survive it).

const store = new Map();
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

function storeGet(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt && entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.value;
}

function storeSet(key, value, expiresIn) {
  store.set(key, { value, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : 0 });
}

setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of store) if (entry.expiresAt && entry.expiresAt <= now) store.delete(key);
}, 60_000).unref();

class SharedMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    if (this.model === 'Session') storeSet(`sessionUid:${payload.uid}`, id, expiresIn);
    if (GRANTABLE.has(this.model) && payload.grantId) {
      const grantKey = `grant:${payload.grantId}`;
      const members = storeGet(grantKey) ?? [];
      members.push(key);
      storeSet(grantKey, members, expiresIn);
    }
    if (payload.userCode) storeSet(`userCode:${payload.userCode}`, id, expiresIn);
    storeSet(key, structuredClone(payload), expiresIn);
  }

  async find(id) {
    return storeGet(this.key(id));
  }

  async findByUid(uid) {
    const id = storeGet(`sessionUid:${uid}`);
    return id ? this.find(id) : undefined;
  }

  async findByUserCode(userCode) {
    const id = storeGet(`userCode:${userCode}`);
    return id ? this.find(id) : undefined;
  }

  async consume(id) {
    const payload = storeGet(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = `grant:${grantId}`;
    for (const key of storeGet(grantKey) ?? []) store.delete(key);
    store.delete(grantKey);
  }
}

// ---------------------------------------------------------------------------------------
// Pages (French, no JavaScript).

function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} — fournisseur d'identité de démonstration</title>
<style>
body{font-family:system-ui,sans-serif;max-width:42rem;margin:1rem auto;padding:0 1rem;line-height:1.5;color:#161616}
header p{background:#fee;border-left:4px solid #c00;padding:.5rem 1rem}
label{display:block;margin-top:.75rem;font-weight:600}
input,select{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}
button{font-size:1rem;margin-top:1rem;padding:.5rem 1rem}
form{margin-bottom:1.5rem}
[role=alert]{border-left:4px solid #c00;padding:.25rem 1rem;background:#fff4f4}
:focus{outline:3px solid #0a76f6;outline-offset:2px}
</style>
</head>
<body>
<a href="#contenu">Aller au contenu</a>
<header><p>Fournisseur d'identité de <strong>démonstration</strong> (ProConnect simulé), pour le développement et les tests. Ne jamais l'utiliser en production.</p></header>
<main id="contenu">
${body}
</main>
</body>
</html>`;
}

function send(res, status, html, headers = {}) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(html);
}

function sendJson(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(value, null, 2)}\n`);
}

function badRequestPage(problems) {
  return page('Requête invalide', `<h1>Requête invalide</h1>
<div role="alert"><p>Y000400 : Bad Request Exception. Le fournisseur de service a envoyé une requête que ProConnect refuserait :</p>
<ul>${problems.map((p) => `<li>${esc(p)}</li>`).join('')}</ul></div>`);
}

function loginPage(details, client, { error, values = {} } = {}) {
  const action = `${PREFIX}/interaction/${encodeURIComponent(details.uid)}`;
  const hint = typeof details.params.login_hint === 'string' ? details.params.login_hint : '';
  const hinted = hint ? agentByEmail(hint) : undefined;
  const options = [...agents.byId.values()].map((a) => {
    const selected = (values.agent ?? hinted?.id) === a.id ? ' selected' : '';
    return `<option value="${esc(a.id)}"${selected}>${esc(`${a.given_name} ${a.usual_name}`)} — ${esc(a.label ?? a.email)}</option>`;
  }).join('\n');
  const field = (id, name, label, extra = '') => `<label for="${id}">${label}</label>
<input id="${id}" name="${name}" value="${esc(values[name] ?? '')}" ${extra}>`;
  return page('Connexion', `<h1>Se connecter à ${esc(client?.clientName || client?.clientId || 'un service')}</h1>
${error ? `<div role="alert"><p>${esc(error)}</p></div>` : ''}
<form method="post" action="${action}/login">
<label for="agent">Agent</label>
<select id="agent" name="agent" required>
${options}
</select>
<button type="submit">Se connecter</button>
</form>

<h2>Avec une adresse e-mail</h2>
<form method="post" action="${action}/login">
<label for="email">Adresse e-mail</label>
<input id="email" name="email" type="email" autocomplete="email" required value="${esc(values.email ?? hint)}">
<button type="submit">Continuer avec cette adresse</button>
</form>

<h2>Une autre identité (tests)</h2>
<form method="post" action="${action}/login">
${field('new-sub', 'sub', 'Identifiant (sub)', 'required')}
${field('new-email', 'email', 'Courriel', 'type="email" required')}
${field('new-given-name', 'given_name', 'Prénom')}
${field('new-usual-name', 'usual_name', "Nom d'usage")}
${field('new-siret', 'siret', 'SIRET', 'inputmode="numeric" pattern="[0-9]{14}"')}
${field('new-acr', 'acr', "Niveau d'authentification (acr)", 'placeholder="eidas1"')}
${field('new-uid', 'uid', 'UID chez le fournisseur')}
${field('new-idp-id', 'idp_id', "Fournisseur d'identité (idp_id)")}
<button type="submit">Créer cette identité</button>
</form>

<form method="post" action="${action}/abort">
<button type="submit">Annuler</button>
</form>`);
}

// ---------------------------------------------------------------------------------------
// Test controls: key rotation and token tampering.

const TAMPER_MODES = new Set([
  'wrong_nonce', 'expired', 'wrong_audience', 'wrong_issuer', 'alg_none',
  'hs256_with_public_key', 'unknown_kid', 'bad_signature', 'wrong_sub',
]);
let tamper = null; // { mode, target, remaining }
let tamperedCount = 0;
const rogueKeys = new Map(); // alg -> private JWK not in the JWKS

let keys = []; // private JWKs, signing keys first
let ISSUER = '';
let current = null; // the Provider serving requests

function signingKids() {
  return Object.fromEntries(SIGNING_ALGS.map((alg) => [alg, keys.find((k) => k.alg === alg)?.kid]));
}

function testState() {
  return {
    issuer: ISSUER,
    tamper,
    tampered: tamperedCount,
    signing_kids: signingKids(),
    published_kids: keys.map((k) => k.kid),
  };
}

async function resign(header, payload, jwk) {
  const key = await jose.importJWK(jwk, header.alg);
  return new jose.CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(header)
    .sign(key);
}

async function rogueKey(alg) {
  if (!rogueKeys.has(alg)) rogueKeys.set(alg, await newSigningKey(alg));
  return rogueKeys.get(alg);
}

async function tamperJwt(jwt, mode) {
  const header = jose.decodeProtectedHeader(jwt);
  const payload = jose.decodeJwt(jwt);
  const own = keys.find((k) => k.kid === header.kid);
  if (!own) throw new Error(`tamper: no key ${header.kid}`);
  const now = Math.floor(Date.now() / 1000);
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  switch (mode) {
    case 'wrong_nonce':
      return resign(header, { ...payload, nonce: `falsifie-${crypto.randomBytes(24).toString('base64url')}` }, own);
    case 'expired':
      return resign(header, { ...payload, iat: now - 3600, exp: now - 1800 }, own);
    case 'wrong_audience':
      return resign(header, { ...payload, aud: 'un-autre-client' }, own);
    case 'wrong_issuer':
      return resign(header, { ...payload, iss: 'https://imposteur.example/api/v2' }, own);
    case 'wrong_sub':
      return resign(header, { ...payload, sub: `autre-${crypto.randomUUID()}` }, own);
    case 'alg_none':
      return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
    case 'hs256_with_public_key': {
      // The classic key confusion: an HMAC whose secret is the public key as PEM text, for a
      // verifier that hands "the key" to whichever algorithm the header names.
      const pem = crypto.createPublicKey({ key: publicJwk(own), format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: own.kid })}.${b64(payload)}`;
      return `${input}.${crypto.createHmac('sha256', pem).update(input).digest('base64url')}`;
    }
    case 'unknown_kid': {
      const rogue = await rogueKey(own.alg);
      return resign({ ...header, kid: `inconnue-${rogue.kid}` }, payload, rogue);
    }
    case 'bad_signature':
      return resign(header, payload, await rogueKey(own.alg));
    default:
      throw new Error(`tamper: unknown mode ${mode}`);
  }
}

function takeTamper(target) {
  if (!TEST_CONTROLS || !tamper || tamper.target !== target) return null;
  const { mode } = tamper;
  tamper.remaining -= 1;
  if (tamper.remaining <= 0) tamper = null;
  tamperedCount += 1;
  return mode;
}

async function tamperMiddleware(ctx, next) {
  await next();
  const route = ctx.oidc?.route;
  if (route === 'token' && ctx.status === 200 && ctx.body && typeof ctx.body.id_token === 'string') {
    const mode = takeTamper('id_token');
    if (mode) {
      ctx.body = { ...ctx.body, id_token: await tamperJwt(ctx.body.id_token, mode) };
      log(`test: id_token tampered (${mode})`);
    }
  } else if (route === 'userinfo' && ctx.status === 200 && typeof ctx.body === 'string' && ctx.type === 'application/jwt') {
    const mode = takeTamper('userinfo');
    if (mode) {
      ctx.body = await tamperJwt(ctx.body, mode);
      log(`test: userinfo JWT tampered (${mode})`);
    }
  }
}

async function rotateKeys(keepOld) {
  const fresh = [await newSigningKey('RS256'), await newSigningKey('ES256')];
  const next = keepOld ? [...fresh, ...keys] : fresh;
  writeSecret(JWKS_FILE, { keys: next });
  keys = next;
  current = buildProvider();
  log(`test: signing keys rotated (${keepOld ? 'old keys still published' : 'old keys dropped'})`);
}

// ---------------------------------------------------------------------------------------
// The provider.

const cookieKeys = loadCookieKeys();

function requestedAcrs(params) {
  if (typeof params.claims !== 'string') return null;
  try {
    const acr = JSON.parse(params.claims)?.id_token?.acr;
    if (!acr?.essential) return null;
    if (Array.isArray(acr.values)) return acr.values;
    if (typeof acr.value === 'string') return [acr.value];
  } catch {
    // oidc-provider rejects a malformed claims parameter itself.
  }
  return null;
}

function buildProvider() {
  const provider = new Provider(ISSUER, {
    clients: structuredClone(clients),
    adapter: SharedMemoryAdapter,
    jwks: { keys: structuredClone(keys) },
    cookies: {
      keys: cookieKeys,
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    async findAccount(ctx, sub) {
      const agent = agents.bySub.get(sub);
      if (!agent) return undefined;
      return { accountId: sub, claims: async () => agentClaims(agent) };
    },
    // ProConnect's scopes, one claim each.
    claims: {
      openid: ['sub'],
      email: ['email'],
      given_name: ['given_name'],
      usual_name: ['usual_name'],
      siret: ['siret'],
      uid: ['uid'],
      idp_id: ['idp_id'],
      idp_acr: ['idp_acr'],
      acr: null,
      amr: null,
      auth_time: null,
      sid: null,
    },
    scopes: ['openid'],
    acrValues: ACR_VALUES,
    responseTypes: ['code'],
    subjectTypes: ['public'],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    enabledJWA: {
      idTokenSigningAlgValues: SIGNING_ALGS,
      userinfoSigningAlgValues: SIGNING_ALGS,
    },
    // ProConnect does not require PKCE; it accepts it.
    pkce: { methods: ['S256'], required: () => false },
    allowOmittingSingleRegisteredRedirectUri: false,
    extraParams: ['idp_hint'],
    features: {
      devInteractions: { enabled: false },
      // Pushed authorization requests would skirt the checks on /authorize.
      pushedAuthorizationRequests: { enabled: false },
      claimsParameter: { enabled: true },
      jwtUserinfo: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.body = page('Déconnexion', `<h1>Se déconnecter ?</h1>${form}
<button type="submit" form="op.logoutForm" name="logout" value="yes">Se déconnecter</button>
<button type="submit" form="op.logoutForm">Rester connecté</button>`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.body = page('Déconnecté', '<h1>Vous êtes déconnecté</h1><p>Vous pouvez fermer cette page.</p>');
        },
      },
    },
    // Every client is first party: consent is given on its behalf (see loadExistingGrant).
    async loadExistingGrant(ctx) {
      const { session, client } = ctx.oidc;
      if (!session.accountId) return undefined;
      const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
      let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
      if (!grant || grant.accountId !== session.accountId) {
        grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      }
      grant.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
      if (ctx.oidc.requestParamClaims) grant.addOIDCClaims([...ctx.oidc.requestParamClaims]);
      await grant.save();
      return grant;
    },
    interactions: {
      url: (ctx, interaction) => `${PREFIX}/interaction/${interaction.uid}`,
    },
    routes: {
      authorization: '/authorize',
      token: '/token',
      userinfo: '/userinfo',
      jwks: '/jwks',
      end_session: '/session/end',
      revocation: '/token/revocation',
    },
    // ProConnect's lifetimes: code 30 s, tokens 60 s, session 12 h.
    ttl: {
      AuthorizationCode: 30,
      AccessToken: 60,
      IdToken: 60,
      Interaction: 3600,
      Session: 12 * 3600,
      Grant: 12 * 3600,
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Erreur', `<h1>Erreur d'authentification</h1>
<div role="alert"><p><strong>${esc(out.error)}</strong></p><p>${esc(out.error_description ?? '')}</p></div>`);
    },
  });
  // oidc-provider 8 lets a native client's loopback redirect_uri use any port (RFC 8252,
  // 7.3) but matches post_logout_redirect_uri exactly; version 9 treats both alike. Do as 9,
  // so a relying party on a random test port can be registered once, without its port.
  const exact = provider.Client.prototype.postLogoutRedirectUriAllowed;
  provider.Client.prototype.postLogoutRedirectUriAllowed = function postLogoutRedirectUriAllowed(value) {
    if (exact.call(this, value)) return true;
    if (this.applicationType !== 'native' || !isLoopback(value)) return false;
    const withoutPort = (uri) => {
      const u = new URL(uri);
      u.port = '';
      return u.href;
    };
    return this.postLogoutRedirectUris.some((allowed) => isLoopback(allowed) && withoutPort(allowed) === withoutPort(value));
  };
  provider.use(tamperMiddleware);
  provider.on('server_error', (ctx, err) => console.error(`oidc-dev: server error on ${ctx.path}: ${err.stack ?? err}`));
  return provider;
}

// ---------------------------------------------------------------------------------------
// Interactions: the login page, automatic consent, cancel.

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readForm(req) {
  return new URLSearchParams(await readBody(req));
}

function resolveLogin(form) {
  const get = (name) => (form.get(name) ?? '').trim();
  const sub = get('sub');
  if (sub) {
    const email = get('email');
    if (sub.length > 255 || !/^[\x21-\x7e]+$/.test(sub)) return { error: "L'identifiant (sub) doit faire de 1 à 255 caractères ASCII visibles." };
    if (!/^[^\s@]+@[^\s@]+$/.test(email)) return { error: 'Le courriel est obligatoire et doit être une adresse e-mail.' };
    const siret = get('siret');
    if (siret && !/^\d{14}$/.test(siret)) return { error: 'Le SIRET doit faire 14 chiffres.' };
    const existing = agents.bySub.get(sub);
    if (existing?.demo) return { error: 'Cet identifiant est celui d’un agent de démonstration ; choisissez-le dans la liste.' };
    const agent = {
      id: `new:${sub}`,
      sub,
      email,
      given_name: get('given_name') || 'Agent',
      usual_name: get('usual_name') || 'De Test',
      siret: siret || undefined,
      uid: get('uid') || undefined,
      idp_id: get('idp_id') || DEFAULT_IDP_ID,
      acr: get('acr') || 'eidas1',
      demo: false,
    };
    agents.bySub.set(sub, agent);
    return { agent, how: 'new identity' };
  }
  const id = get('agent');
  if (id) {
    const agent = agents.byId.get(id);
    return agent ? { agent, how: `demo agent ${id}` } : { error: `Aucun agent « ${id} ».` };
  }
  const email = get('email');
  if (email) {
    const agent = agentByEmail(email);
    return agent ? { agent, how: agent.demo ? `demo agent ${agent.id} by e-mail` : 'new identity by e-mail' } : { error: 'Aucun agent avec cette adresse e-mail.' };
  }
  return { error: 'Choisissez un agent, ou donnez une adresse e-mail.' };
}

async function interaction(req, res, pathname) {
  const m = pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?$/);
  if (!m) return send(res, 404, page('Introuvable', '<h1>Page introuvable</h1>'));
  const [, uid, action] = m;
  const provider = current;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    if (err instanceof errors.SessionNotFound || err?.name === 'SessionNotFound') {
      return send(res, 400, page('Session expirée', `<h1>Session de connexion introuvable ou expirée</h1>
<div role="alert"><p>Recommencez la connexion depuis le service.</p></div>`));
    }
    throw err;
  }
  if (details.uid !== uid) return send(res, 400, page('Erreur', '<h1>Cette connexion ne correspond pas à votre navigateur</h1>'));
  const client = await provider.Client.find(details.params.client_id);

  if (req.method === 'GET' && !action) {
    if (details.prompt.name === 'login') return send(res, 200, loginPage(details, client));
    if (details.prompt.name === 'consent') {
      // First-party clients: consent without asking.
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      const { missingOIDCScope, missingOIDCClaims } = details.prompt.details;
      if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
      if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
      const grantId = await grant.save();
      return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
    return send(res, 400, page('Erreur', `<h1>Étape inconnue : ${esc(details.prompt.name)}</h1>`));
  }
  if (req.method !== 'POST') return send(res, 405, page('Erreur', '<h1>Méthode non permise</h1>'), { allow: 'GET, POST' });

  if (action === 'abort') {
    log('sign-in cancelled');
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: "L'agent a annulé la connexion",
    }, { mergeWithLastSubmission: false });
  }
  if (action !== 'login' || details.prompt.name !== 'login') {
    return send(res, 400, page('Erreur', '<h1>Cette étape de connexion est déjà passée</h1>'));
  }
  const form = await readForm(req);
  const { agent, how, error } = resolveLogin(form);
  if (error) return send(res, 400, loginPage(details, client, { error, values: Object.fromEntries(form) }));

  const wanted = requestedAcrs(details.params);
  if (wanted && !wanted.includes(agent.acr)) {
    log(`sign-in refused: acr ${agent.acr} is not among the requested ones (${how})`);
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: `Le niveau d'authentification demandé (${wanted.join(', ')}) n'est pas atteint (${agent.acr})`,
    }, { mergeWithLastSubmission: false });
  }
  log(`signed in: ${how}`);
  return provider.interactionFinished(req, res, {
    login: { accountId: agent.sub, acr: agent.acr, amr: ['pwd'], remember: true },
  }, { mergeWithLastSubmission: false });
}

// ---------------------------------------------------------------------------------------
// ProConnect's rules, checked before oidc-provider sees the request.

function authorizeProblems(query) {
  const problems = [];
  for (const name of new Set(query.keys())) {
    if (!AUTHORIZE_PARAMS.has(name)) problems.push(`paramètre non autorisé : ${name}`);
    else if (query.getAll(name).length > 1) problems.push(`paramètre répété : ${name}`);
  }
  for (const name of ['state', 'nonce']) {
    const value = query.get(name);
    if (!value) problems.push(`${name} manquant`);
    else if (value.length < MIN_RANDOM) problems.push(`${name} trop court (${value.length} caractères, au moins ${MIN_RANDOM})`);
    else if (value.length > 512 || !/^[\x20-\x7e]+$/.test(value)) problems.push(`${name} doit être ASCII, 512 caractères au plus`);
  }
  const loginHint = query.get('login_hint');
  if (loginHint && !/^[^\s@]+@[^\s@]+$/.test(loginHint)) problems.push('login_hint doit être une adresse e-mail');
  return problems;
}

function logoutProblems(query) {
  const problems = [];
  for (const name of new Set(query.keys())) {
    if (!LOGOUT_PARAMS.has(name)) problems.push(`paramètre non autorisé : ${name}`);
  }
  for (const name of ['id_token_hint', 'state', 'post_logout_redirect_uri']) {
    if (!query.get(name)) problems.push(`${name} manquant`);
  }
  return problems;
}

// oidc-provider asks the browser to confirm some steps with a form that posts itself with
// JavaScript: the logout confirmation, and the end of the previous session when an agent
// signs in as someone else. ProConnect answers with plain redirects (a 303 back to the
// service at logout). So for these two routes the provider calls itself with the browser's
// cookies, posts the confirmation on the agent's behalf, and relays the final answer.
const RELAYED_HEADERS = ['content-type', 'location', 'cache-control', 'pragma', 'www-authenticate'];

function relay(res, upstream, body, cookies) {
  const headers = {};
  for (const name of RELAYED_HEADERS) {
    const value = upstream.headers.get(name);
    if (value) headers[name] = value;
  }
  if (cookies.length) headers['set-cookie'] = cookies;
  res.writeHead(upstream.status, headers);
  res.end(body);
}

async function autoConfirm(req, res, pathAndQuery) {
  const base = `http://${HOST}:${server.address().port}`;
  const headers = { 'x-oidc-dev-internal': INTERNAL };
  for (const name of ['cookie', 'accept', 'accept-language', 'user-agent']) {
    if (req.headers[name]) headers[name] = req.headers[name];
  }
  const first = await fetch(`${base}${pathAndQuery}`, { headers, redirect: 'manual' });
  const html = await first.text();
  const firstCookies = first.headers.getSetCookie();
  const confirm = html.match(/<form[^>]*method="post" action="([^"]*\/session\/end\/confirm)"/)?.[1];
  const xsrf = html.match(/name="xsrf" value="([^"]+)"/)?.[1];
  if (first.status !== 200 || !confirm || !xsrf) return relay(res, first, html, firstCookies);

  const jar = new Map((req.headers.cookie ?? '').split(/;\s*/).filter(Boolean).map((c) => {
    const i = c.indexOf('=');
    return [c.slice(0, i), c.slice(i + 1)];
  }));
  for (const c of firstCookies) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    jar.set(pair.slice(0, i), pair.slice(i + 1));
  }
  const second = await fetch(new URL(confirm, base), {
    method: 'POST',
    redirect: 'manual',
    headers: {
      ...headers,
      cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ xsrf, logout: 'yes' }).toString(),
  });
  return relay(res, second, await second.text(), [...firstCookies, ...second.headers.getSetCookie()]);
}

async function testControl(req, res, pathname) {
  if (!TEST_CONTROLS) return send(res, 404, page('Introuvable', '<h1>Page introuvable</h1>'));
  let body = {};
  if (req.method === 'POST') {
    const text = await readBody(req);
    try {
      body = text.trim() ? JSON.parse(text) : {};
    } catch {
      return sendJson(res, 400, { error: 'the body must be JSON' });
    }
  }
  switch (`${req.method} ${pathname}`) {
    case 'GET /__test/state':
      return sendJson(res, 200, testState());
    case 'POST /__test/rotate-key':
      await rotateKeys(body.keep_old !== false);
      return sendJson(res, 200, testState());
    case 'POST /__test/tamper': {
      const { mode, target = 'id_token', count = 1 } = body;
      if (!TAMPER_MODES.has(mode)) return sendJson(res, 400, { error: `mode must be one of ${[...TAMPER_MODES].join(', ')}` });
      if (!['id_token', 'userinfo'].includes(target)) return sendJson(res, 400, { error: 'target must be id_token or userinfo' });
      if (target === 'userinfo' && mode === 'wrong_nonce') return sendJson(res, 400, { error: 'a userinfo response has no nonce' });
      if (!Number.isInteger(count) || count < 1) return sendJson(res, 400, { error: 'count must be a positive integer' });
      tamper = { mode, target, remaining: count };
      log(`test: next ${count} ${target} will be tampered (${mode})`);
      return sendJson(res, 200, testState());
    }
    case 'POST /__test/reset':
      tamper = null;
      log('test: reset');
      return sendJson(res, 200, testState());
    default:
      return sendJson(res, 404, { error: 'unknown test control' });
  }
}

function indexPage() {
  const list = [...agents.byId.values()].map((a) => `<li>${esc(`${a.given_name} ${a.usual_name}`)} — ${esc(a.label ?? '')} (${esc(a.email)})</li>`).join('');
  return page('Accueil', `<h1>Fournisseur d'identité de démonstration</h1>
<p>Émetteur (issuer) : <code>${esc(ISSUER)}</code></p>
<p><a href="${PREFIX}/.well-known/openid-configuration">Configuration OpenID (discovery)</a></p>
<h2>Agents de démonstration</h2><ul>${list}</ul>`);
}

async function handle(req, res) {
  const url = new URL(req.url, `http://${HOST}`);
  const internal = req.headers['x-oidc-dev-internal'] === INTERNAL;
  res.on('finish', () => {
    if (!internal) log(`${req.method} ${url.pathname} ${res.statusCode}`);
  });
  if (!current) return send(res, 503, page('Démarrage', '<h1>Démarrage en cours</h1>'));
  if (url.pathname.startsWith('/__test/')) return testControl(req, res, url.pathname);

  let pathname = url.pathname;
  if (PREFIX) {
    if (pathname !== PREFIX && !pathname.startsWith(`${PREFIX}/`)) return send(res, 404, page('Introuvable', '<h1>Page introuvable</h1>'));
    req.originalUrl = req.url;
    req.url = req.url.slice(PREFIX.length) || '/';
    pathname = pathname.slice(PREFIX.length) || '/';
  }
  if (pathname === '/' && req.method === 'GET') return send(res, 200, indexPage());
  if (pathname.startsWith('/interaction/')) return interaction(req, res, pathname);
  if (STRICT && req.method === 'POST' && pathname === '/authorize') {
    return send(res, 405, badRequestPage(['ProConnect attend une requête GET sur le point d’autorisation']), { allow: 'GET' });
  }
  if (STRICT && req.method === 'GET' && pathname === '/authorize') {
    const problems = authorizeProblems(url.searchParams);
    if (problems.length) {
      log(`authorization refused: ${problems.join('; ')}`);
      return send(res, 400, badRequestPage(problems));
    }
  }
  if (req.method === 'GET' && pathname === '/session/end' && !internal) {
    if (STRICT) {
      const problems = logoutProblems(url.searchParams);
      if (problems.length) {
        log(`logout refused: ${problems.join('; ')}`);
        return send(res, 400, badRequestPage(problems));
      }
    }
    return autoConfirm(req, res, url.pathname + url.search);
  }
  if (req.method === 'GET' && /^\/authorize\/[A-Za-z0-9_-]+$/.test(pathname) && !internal) {
    return autoConfirm(req, res, url.pathname + url.search);
  }
  return current.callback()(req, res);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error(`oidc-dev: ${err.stack ?? err}`);
    if (!res.headersSent) send(res, 500, page('Erreur', '<h1>Erreur interne du fournisseur de démonstration</h1>'));
    else res.end();
  });
});

server.listen(REQUESTED_PORT, HOST, async () => {
  const { port } = server.address();
  ISSUER = `http://${HOST}:${port}${PREFIX}`;
  keys = await loadKeys();
  current = buildProvider();
  fs.rmSync(READY_FILE, { force: true });
  writeSecret(READY_FILE, { issuer: ISSUER, port, pid: process.pid, test_controls: TEST_CONTROLS });
  console.log(`oidc-dev: ready, issuer ${ISSUER}`);
  console.log(`oidc-dev: discovery ${ISSUER}/.well-known/openid-configuration`);
  for (const c of clients) {
    console.log(`oidc-dev: client ${c.client_id} secret ${c.client_secret} (${c.token_endpoint_auth_method ?? 'client_secret_basic'}${c.userinfo_signed_response_alg ? `, userinfo JWT ${c.userinfo_signed_response_alg}` : ''}) redirect ${c.redirect_uris.join(' ')}`);
  }
  console.log(`oidc-dev: demo agents: ${[...agents.byId.values()].map((a) => `${a.id} <${a.email}>`).join(', ')}`);
  if (TEST_CONTROLS) console.log(`oidc-dev: TEST CONTROLS ON at http://${HOST}:${port}/__test/ (never in the demo)`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    fs.rmSync(READY_FILE, { force: true });
    process.exit(0);
  });
}
