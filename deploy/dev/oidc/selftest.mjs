// End-to-end check of the development provider, with no relying party: it starts the
// provider on free ports and plays the relying party and the browser over plain HTTP
// (fetch and a small cookie jar). Signatures are checked with node:crypto, not with the
// provider's own JWT library. Run: node selftest.mjs (exit code 0 when everything passes).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RP = 'http://127.0.0.1:45678'; // nobody listens there: the flows stop at the callback URL
const CLIENTS = [
  {
    client_id: 'st-post',
    client_secret: 'st-post-secret-0123456789abcdef0123456789',
    application_type: 'native',
    // Registered without a port: a loopback redirect of a native client matches any port.
    redirect_uris: ['http://127.0.0.1/auth/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1/connexion'],
    token_endpoint_auth_method: 'client_secret_post',
  },
  {
    client_id: 'st-jwt',
    client_secret: 'st-jwt-secret-0123456789abcdef0123456789ab',
    application_type: 'native',
    redirect_uris: ['http://127.0.0.1/auth/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1/connexion'],
    token_endpoint_auth_method: 'client_secret_basic',
    userinfo_signed_response_alg: 'RS256',
  },
  {
    client_id: 'st-es256',
    client_secret: 'st-es256-secret-0123456789abcdef0123456789',
    application_type: 'native',
    redirect_uris: ['http://127.0.0.1/auth/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1/connexion'],
    token_endpoint_auth_method: 'client_secret_post',
    id_token_signed_response_alg: 'ES256',
    userinfo_signed_response_alg: 'ES256',
  },
];
const client = (id) => CLIENTS.find((c) => c.client_id === id);
const CLAIRE_SUB = 'a9ae905b-388f-4565-bdb5-5d2c5f362b74';

let passed = 0;
const results = [];
async function check(name, fn) {
  const started = Date.now();
  try {
    await fn();
    passed += 1;
    results.push(`ok   ${name} (${Date.now() - started} ms)`);
    console.log(`ok   ${name}`);
  } catch (err) {
    console.log(`FAIL ${name}\n${err.stack ?? err}`);
    throw err;
  }
}

// --- the provider ----------------------------------------------------------------------

const started = [];
const dirs = new Set();
async function startProvider({ dataDir, env = {} } = {}) {
  const dir = dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-selftest-'));
  dirs.add(dir);
  fs.rmSync(path.join(dir, 'ready.json'), { force: true });
  const logFile = path.join(dir, 'provider.log');
  const out = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [path.join(HERE, 'server.mjs')], {
    env: {
      PATH: process.env.PATH,
      OIDC_PORT: '0',
      OIDC_DATA_DIR: dir,
      OIDC_CLIENTS: JSON.stringify(CLIENTS),
      OIDC_TEST_CONTROLS: '1',
      ...env,
    },
    stdio: ['ignore', out, out],
  });
  started.push(child);
  const deadline = Date.now() + 15_000;
  let ready;
  while (!ready) {
    if (child.exitCode !== null) throw new Error(`provider exited: ${fs.readFileSync(logFile, 'utf8')}`);
    if (Date.now() > deadline) throw new Error(`provider not ready: ${fs.readFileSync(logFile, 'utf8')}`);
    try {
      ready = JSON.parse(fs.readFileSync(path.join(dir, 'ready.json'), 'utf8'));
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const discovery = await (await fetch(`${ready.issuer}/.well-known/openid-configuration`)).json();
  return {
    ...ready,
    dir,
    discovery,
    base: `http://127.0.0.1:${ready.port}`,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    },
  };
}

async function control(op, action, body) {
  const res = await fetch(`${op.base}/__test/${action}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

// --- a browser: cookies, redirects followed by hand ------------------------------------

class Browser {
  constructor() {
    this.cookies = new Map(); // "host|name" -> { value, path }
  }

  cookieHeader(url) {
    const u = new URL(url);
    return [...this.cookies]
      .filter(([key, c]) => key.startsWith(`${u.host}|`) && u.pathname.startsWith(c.path))
      .map(([key, c]) => `${key.split('|')[1]}=${c.value}`)
      .join('; ');
  }

  store(url, res) {
    const u = new URL(url);
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const i = pair.indexOf('=');
      const name = pair.slice(0, i);
      const value = pair.slice(i + 1);
      const pathAttr = attrs.find((a) => a.toLowerCase().startsWith('path='));
      const expired = attrs.some((a) => /^expires=/i.test(a) && new Date(a.slice(8)) < new Date());
      const key = `${u.host}|${name}`;
      if (!value || expired) this.cookies.delete(key);
      else this.cookies.set(key, { value, path: pathAttr ? pathAttr.slice(5) : '/' });
    }
  }

  async request(url, { method = 'GET', form } = {}) {
    const headers = {};
    const cookie = this.cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    this.store(url, res);
    const text = await res.text();
    const location = res.headers.get('location');
    return { status: res.status, text, location: location ? new URL(location, url).href : null, headers: res.headers };
  }

  // Follows redirects while they stay on the provider; returns the first page that is not a
  // redirect, or the first URL outside the provider (the relying party's callback).
  async follow(op, url, init) {
    let res = await this.request(url, init);
    for (let i = 0; i < 10; i += 1) {
      if (!res.location) return { page: res, url };
      url = res.location;
      if (!url.startsWith(op.base)) return { left: new URL(url), status: res.status };
      res = await this.request(url);
    }
    throw new Error('too many redirects');
  }
}

// --- the relying party -----------------------------------------------------------------

const random = () => crypto.randomBytes(32).toString('base64url'); // 43 characters

function authorizeUrl(op, c, extra = {}) {
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: c.client_id,
    redirect_uri: `${RP}/auth/callback`,
    scope: 'openid email given_name usual_name siret uid idp_id',
    state: random(),
    nonce: random(),
    ...extra,
  });
  return { url: `${op.discovery.authorization_endpoint}?${params}`, state: params.get('state'), nonce: params.get('nonce') };
}

async function signIn(op, browser, c, login, extra = {}) {
  const req = authorizeUrl(op, c, extra);
  const first = await browser.follow(op, req.url);
  if (first.left) return { ...req, callback: first.left, loginPage: null };
  assert.equal(first.page.status, 200, first.page.text);
  const action = first.page.text.match(/<form method="post" action="([^"]+\/login)">/)?.[1];
  assert.ok(action, 'login form');
  const after = await browser.follow(op, new URL(action, op.base).href, { method: 'POST', form: login });
  assert.ok(after.left, `expected a redirect to the relying party, got ${after.page?.status} ${after.page?.text}`);
  return { ...req, callback: after.left, loginPage: first.page.text };
}

async function exchange(op, c, code) {
  const form = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: `${RP}/auth/callback` });
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (c.token_endpoint_auth_method === 'client_secret_basic') {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(c.client_id)}:${encodeURIComponent(c.client_secret)}`).toString('base64')}`;
  } else {
    form.set('client_id', c.client_id);
    form.set('client_secret', c.client_secret);
  }
  const res = await fetch(op.discovery.token_endpoint, { method: 'POST', headers, body: form.toString() });
  return { status: res.status, json: await res.json() };
}

async function userinfo(op, accessToken) {
  const res = await fetch(op.discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${accessToken}` } });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

async function jwks(op) {
  return (await (await fetch(op.discovery.jwks_uri)).json()).keys;
}

function decode(jwt) {
  const [h, p, s] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
    signature: s,
    input: `${h}.${p}`,
  };
}

// Verifies the signature against the published keys, as a careful relying party does:
// the algorithm comes from the key, never from the token alone.
function signatureValid(jwt, keys) {
  const { header, signature, input } = decode(jwt);
  const jwk = keys.find((k) => k.kid === header.kid);
  if (!jwk || jwk.alg !== header.alg) return false;
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const sig = Buffer.from(signature, 'base64url');
  if (header.alg === 'RS256') return crypto.verify('sha256', Buffer.from(input), key, sig);
  if (header.alg === 'ES256') return crypto.verify('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }, sig);
  return false;
}

function callbackParams(callback) {
  return Object.fromEntries(callback.searchParams);
}

// A whole sign-in: returns the verified ID token claims and the token response.
async function fullSignIn(op, browser, c, login, extra) {
  const flow = await signIn(op, browser, c, login, extra);
  const cb = callbackParams(flow.callback);
  assert.equal(flow.callback.origin + flow.callback.pathname, `${RP}/auth/callback`);
  assert.equal(cb.state, flow.state);
  assert.ok(cb.code, `callback without code: ${flow.callback}`);
  const tokens = await exchange(op, c, cb.code);
  assert.equal(tokens.status, 200, JSON.stringify(tokens.json));
  return { flow, cb, tokens: tokens.json, idToken: decode(tokens.json.id_token) };
}

// --- the checks ------------------------------------------------------------------------

async function main() {
  const t0 = Date.now();
  const op = await startProvider();
  const now = () => Math.floor(Date.now() / 1000);

  await check('discovery has ProConnect endpoints, scopes and claims', async () => {
    const d = op.discovery;
    assert.equal(d.issuer, op.issuer);
    assert.match(op.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
    for (const e of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'end_session_endpoint']) {
      assert.ok(d[e]?.startsWith(op.issuer), e);
    }
    for (const s of ['openid', 'email', 'given_name', 'usual_name', 'siret', 'uid', 'idp_id']) assert.ok(d.scopes_supported.includes(s), s);
    for (const s of ['sub', 'email', 'given_name', 'usual_name', 'siret', 'uid', 'idp_id', 'acr', 'amr']) assert.ok(d.claims_supported.includes(s), s);
    assert.equal(d.claims_parameter_supported, true);
    assert.deepEqual(d.token_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post']);
    assert.deepEqual(d.id_token_signing_alg_values_supported, ['RS256', 'ES256']);
    assert.deepEqual(d.userinfo_signing_alg_values_supported, ['RS256', 'ES256']);
    assert.equal(d.pushed_authorization_request_endpoint, undefined);
    const keys = await jwks(op);
    assert.ok(keys.every((k) => !k.d), 'JWKS must not publish private parts');
    assert.deepEqual(keys.map((k) => k.alg).sort(), ['ES256', 'RS256']);
  });

  await check("ProConnect's rules on /authorize: state and nonce of 32+ characters, no extra parameter", async () => {
    const browser = new Browser();
    const cases = [
      [{ state: 'court' }, 'state trop court'],
      [{ nonce: 'x'.repeat(31) }, 'nonce trop court'],
      [{ acr_values: 'eidas1' }, 'paramètre non autorisé : acr_values'],
      [{ response_mode: 'query' }, 'paramètre non autorisé : response_mode'],
      [{ login_hint: 'pas-une-adresse' }, 'login_hint doit être une adresse e-mail'],
    ];
    for (const [extra, message] of cases) {
      const res = await browser.request(authorizeUrl(op, client('st-post'), extra).url);
      assert.equal(res.status, 400, JSON.stringify(extra));
      assert.ok(res.text.includes(message), `${message} in ${res.text}`);
    }
    const { url } = authorizeUrl(op, client('st-post'));
    const noNonce = new URL(url);
    noNonce.searchParams.delete('nonce');
    const res = await browser.request(noNonce.href);
    assert.equal(res.status, 400);
    assert.ok(res.text.includes('nonce manquant'));
    // Allowed extras pass: claims, prompt, idp_hint, login_hint, PKCE.
    const verifier = random();
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    const ok = await browser.request(authorizeUrl(op, client('st-post'), {
      prompt: 'login', idp_hint: 'fia1v2', login_hint: 'claire.dubois@ccas-angouleme.example',
      claims: JSON.stringify({ id_token: { amr: { essential: true } } }),
      code_challenge: challenge, code_challenge_method: 'S256',
    }).url);
    assert.equal(ok.status, 303, ok.text);
  });

  let claire;
  await check('sign-in as a demo agent (select "Agent"), code exchange (client_secret_post), RS256 ID token', async () => {
    const browser = new Browser();
    const r = await fullSignIn(op, browser, client('st-post'), { agent: 'claire' });
    const page = r.flow.loginPage;
    assert.ok(page.includes('<html lang="fr">'));
    assert.ok(page.includes('<label for="agent">Agent</label>'));
    assert.ok(page.includes('<button type="submit">Se connecter</button>'));
    assert.ok(!page.includes('<script'), 'no JavaScript');
    assert.equal(r.cb.iss, op.issuer, 'RFC 9207 iss in the callback');
    const { header, payload } = r.idToken;
    assert.equal(header.alg, 'RS256');
    assert.ok(signatureValid(r.tokens.id_token, await jwks(op)), 'signature');
    assert.equal(payload.iss, op.issuer);
    assert.equal(payload.aud, 'st-post');
    assert.equal(payload.nonce, r.flow.nonce);
    assert.equal(payload.sub, CLAIRE_SUB);
    assert.equal(payload.acr, undefined, 'acr only when asked for, as ProConnect');
    assert.ok(payload.exp > now() && payload.exp <= now() + 61, 'ID token lives 60 s');
    assert.equal(r.tokens.token_type, 'Bearer');
    assert.ok(r.tokens.expires_in <= 60);
    claire = { ...r, browser };
  });

  await check('userinfo as JSON carries the ProConnect claims', async () => {
    const info = await userinfo(op, claire.tokens.access_token);
    assert.equal(info.status, 200);
    assert.match(info.type, /^application\/json/);
    assert.deepEqual(JSON.parse(info.text), {
      sub: CLAIRE_SUB,
      email: 'claire.dubois@ccas-angouleme.example',
      given_name: 'Claire',
      usual_name: 'Dubois',
      siret: '26160011800010',
      uid: 'ccas-16-0042',
      idp_id: 'ba0528fa-572d-48f2-b3d8-2754ae656fe3',
    });
  });

  await check('a replayed code is refused', async () => {
    const again = await exchange(op, client('st-post'), claire.cb.code);
    assert.equal(again.status, 400);
    assert.equal(again.json.error, 'invalid_grant');
  });

  await check('a code for one client is refused to another; a wrong secret is refused', async () => {
    const r = await signIn(op, new Browser(), client('st-post'), { agent: 'karim' });
    const stolen = await exchange(op, client('st-es256'), r.callback.searchParams.get('code'));
    assert.equal(stolen.status, 400);
    const r2 = await signIn(op, new Browser(), client('st-post'), { agent: 'karim' });
    const bad = await exchange(op, { ...client('st-post'), client_secret: 'faux' }, r2.callback.searchParams.get('code'));
    assert.equal(bad.status, 401);
    assert.equal(bad.json.error, 'invalid_client');
  });

  await check('single sign-on: a second authorization skips the login page; prompt=login shows it again', async () => {
    const again = await signIn(op, claire.browser, client('st-post'), { agent: 'claire' });
    assert.equal(again.loginPage, null);
    assert.ok(again.callback.searchParams.get('code'));
    const forced = await signIn(op, claire.browser, client('st-post'), { agent: 'sophie' }, { prompt: 'login' });
    assert.ok(forced.loginPage);
    const t = await exchange(op, client('st-post'), forced.callback.searchParams.get('code'));
    assert.equal(decode(t.json.id_token).payload.sub, 'b2704460-d6f8-42c3-8dc1-81d40870a669');
  });

  await check('sign-in by e-mail (any case) and login_hint preselects the agent', async () => {
    const browser = new Browser();
    const hinted = await browser.follow(op, authorizeUrl(op, client('st-post'), { login_hint: 'karim.benali@regie-urbaine-angouleme.example' }).url);
    assert.ok(hinted.page.text.includes('<option value="karim" selected>'));
    const r = await fullSignIn(op, new Browser(), client('st-post'), { email: 'Karim.Benali@Regie-Urbaine-Angouleme.example' });
    assert.equal(r.idToken.payload.sub, '2d47c08f-71e5-4f08-9c40-ca32278c14fe');
    const info = JSON.parse((await userinfo(op, r.tokens.access_token)).text);
    assert.equal(info.siret, '40262787100054');
  });

  await check('an unknown agent or an empty form re-renders the page with an error (400)', async () => {
    const browser = new Browser();
    const first = await browser.follow(op, authorizeUrl(op, client('st-post')).url);
    const action = new URL(first.page.text.match(/action="([^"]+\/login)"/)[1], op.base).href;
    const unknown = await browser.request(action, { method: 'POST', form: { email: 'personne@nulle-part.example' } });
    assert.equal(unknown.status, 400);
    assert.ok(unknown.text.includes('role="alert"'));
    const empty = await browser.request(action, { method: 'POST', form: {} });
    assert.equal(empty.status, 400);
    const ok = await browser.follow(op, action, { method: 'POST', form: { agent: 'lea' } });
    assert.ok(ok.left.searchParams.get('code'));
  });

  await check('a new identity with arbitrary sub, e-mail and SIRET', async () => {
    const sub = `test-${crypto.randomUUID()}`;
    const r = await fullSignIn(op, new Browser(), client('st-post'), {
      sub, email: 'nouvel.agent@exemple.test', given_name: 'Nina', usual_name: 'Nouvelle', siret: '38973354400073',
    });
    assert.equal(r.idToken.payload.sub, sub);
    const info = JSON.parse((await userinfo(op, r.tokens.access_token)).text);
    assert.equal(info.email, 'nouvel.agent@exemple.test');
    assert.equal(info.siret, '38973354400073');
    assert.equal(info.usual_name, 'Nouvelle');
    // The same identity again by its e-mail; a demo agent's sub cannot be borrowed.
    const byEmail = await fullSignIn(op, new Browser(), client('st-post'), { email: 'nouvel.agent@exemple.test' });
    assert.equal(byEmail.idToken.payload.sub, sub);
    const browser = new Browser();
    const first = await browser.follow(op, authorizeUrl(op, client('st-post')).url);
    const action = new URL(first.page.text.match(/action="([^"]+\/login)"/)[1], op.base).href;
    const borrowed = await browser.request(action, { method: 'POST', form: { sub: CLAIRE_SUB, email: 'x@exemple.test' } });
    assert.equal(borrowed.status, 400);
    // Without a SIRET the claim is absent.
    const bare = await fullSignIn(op, new Browser(), client('st-post'), { sub: `bare-${crypto.randomUUID()}`, email: 'sans.siret@exemple.test' });
    assert.equal(JSON.parse((await userinfo(op, bare.tokens.access_token)).text).siret, undefined);
  });

  await check('userinfo as a signed JWT (application/jwt, client_secret_basic)', async () => {
    const r = await fullSignIn(op, new Browser(), client('st-jwt'), { agent: 'sophie' });
    const info = await userinfo(op, r.tokens.access_token);
    assert.equal(info.status, 200);
    assert.match(info.type, /^application\/jwt/);
    assert.ok(signatureValid(info.text, await jwks(op)));
    const { header, payload } = decode(info.text);
    assert.equal(header.alg, 'RS256');
    assert.equal(payload.iss, op.issuer);
    assert.equal(payload.aud, 'st-jwt');
    assert.equal(payload.sub, r.idToken.payload.sub);
    assert.equal(payload.siret, '22160001800016');
  });

  await check('a client registered for ES256 gets ES256 ID tokens and userinfo', async () => {
    const r = await fullSignIn(op, new Browser(), client('st-es256'), { agent: 'camille' }, {
      claims: JSON.stringify({ id_token: { acr: null } }),
    });
    assert.equal(r.idToken.header.alg, 'ES256');
    assert.ok(signatureValid(r.tokens.id_token, await jwks(op)));
    assert.equal(r.idToken.payload.acr, 'eidas2');
    const info = await userinfo(op, r.tokens.access_token);
    assert.equal(decode(info.text).header.alg, 'ES256');
    assert.ok(signatureValid(info.text, await jwks(op)));
  });

  await check('claims request: amr on demand, essential acr enforced (access_denied when not met)', async () => {
    const amr = await fullSignIn(op, new Browser(), client('st-post'), { agent: 'claire' }, {
      claims: JSON.stringify({ id_token: { amr: { essential: true }, acr: { essential: true, values: ['eidas1', 'eidas2'] } } }),
    });
    assert.deepEqual(amr.idToken.payload.amr, ['pwd']);
    assert.equal(amr.idToken.payload.acr, 'eidas1');
    const denied = await signIn(op, new Browser(), client('st-post'), { agent: 'claire' }, {
      claims: JSON.stringify({ id_token: { acr: { essential: true, value: 'eidas2' } } }),
    });
    const cb = callbackParams(denied.callback);
    assert.equal(cb.error, 'access_denied');
    assert.equal(cb.state, denied.state);
    const high = await fullSignIn(op, new Browser(), client('st-post'), { sub: `eidas2-${crypto.randomUUID()}`, email: 'fort@exemple.test', acr: 'eidas2' }, {
      claims: JSON.stringify({ id_token: { acr: { essential: true, value: 'eidas2' } } }),
    });
    assert.equal(high.idToken.payload.acr, 'eidas2');
  });

  await check('cancelling on the login page returns access_denied with the state', async () => {
    const browser = new Browser();
    const req = authorizeUrl(op, client('st-post'));
    const first = await browser.follow(op, req.url);
    const abort = new URL(first.page.text.match(/action="([^"]+\/abort)"/)[1], op.base).href;
    const out = await browser.follow(op, abort, { method: 'POST', form: {} });
    assert.equal(out.left.searchParams.get('error'), 'access_denied');
    assert.equal(out.left.searchParams.get('state'), req.state);
  });

  // Each tamper mode, through the normal flow, with what a relying party would notice.
  const tamperChecks = {
    wrong_nonce: (t, flow, keys) => {
      assert.ok(signatureValid(t.raw, keys));
      assert.notEqual(t.payload.nonce, flow.nonce);
    },
    expired: (t, flow, keys) => {
      assert.ok(signatureValid(t.raw, keys));
      assert.ok(t.payload.exp < now() - 600);
    },
    wrong_audience: (t, flow, keys) => {
      assert.ok(signatureValid(t.raw, keys));
      assert.notEqual(t.payload.aud, 'st-post');
    },
    wrong_issuer: (t, flow, keys) => {
      assert.ok(signatureValid(t.raw, keys));
      assert.notEqual(t.payload.iss, op.issuer);
    },
    alg_none: (t) => {
      assert.equal(t.header.alg, 'none');
      assert.equal(t.signature, '');
    },
    hs256_with_public_key: (t, flow, keys) => {
      assert.equal(t.header.alg, 'HS256');
      const jwk = keys.find((k) => k.kid === t.header.kid);
      assert.ok(jwk, 'the kid is a published RSA key');
      const pem = crypto.createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      const [h, p] = t.raw.split('.');
      assert.equal(t.signature, crypto.createHmac('sha256', pem).update(`${h}.${p}`).digest('base64url'));
      assert.ok(!signatureValid(t.raw, keys));
    },
    unknown_kid: (t, flow, keys) => {
      assert.ok(!keys.some((k) => k.kid === t.header.kid));
      assert.equal(t.header.alg, 'RS256');
    },
    bad_signature: (t, flow, keys) => {
      assert.ok(keys.some((k) => k.kid === t.header.kid));
      assert.ok(!signatureValid(t.raw, keys));
    },
    wrong_sub: (t, flow, keys) => {
      assert.ok(signatureValid(t.raw, keys));
      assert.notEqual(t.payload.sub, CLAIRE_SUB);
    },
  };
  for (const [mode, verify] of Object.entries(tamperChecks)) {
    await check(`tamper ${mode}: the next ID token only`, async () => {
      const set = await control(op, 'tamper', { mode });
      assert.equal(set.status, 200);
      const r = await fullSignIn(op, new Browser(), client('st-post'), { agent: 'claire' });
      const t = { ...r.idToken, raw: r.tokens.id_token };
      verify(t, r.flow, await jwks(op));
      // Claims other than the tampered one are untouched.
      if (mode !== 'wrong_nonce') assert.equal(t.payload.nonce, r.flow.nonce);
      const clean = await fullSignIn(op, new Browser(), client('st-post'), { agent: 'claire' });
      assert.ok(signatureValid(clean.tokens.id_token, await jwks(op)), 'the next one is clean');
      assert.equal(clean.idToken.payload.nonce, clean.flow.nonce);
    });
  }

  await check('tamper the userinfo JWT (alg_none, wrong_sub), count, reset, bad requests', async () => {
    await control(op, 'tamper', { mode: 'alg_none', target: 'userinfo' });
    const r = await fullSignIn(op, new Browser(), client('st-jwt'), { agent: 'claire' });
    assert.ok(signatureValid(r.tokens.id_token, await jwks(op)), 'the ID token is untouched');
    assert.equal(decode((await userinfo(op, r.tokens.access_token)).text).header.alg, 'none');
    await control(op, 'tamper', { mode: 'wrong_sub', target: 'userinfo' });
    const r2 = await fullSignIn(op, new Browser(), client('st-jwt'), { agent: 'claire' });
    const u2 = decode((await userinfo(op, r2.tokens.access_token)).text);
    assert.notEqual(u2.payload.sub, r2.idToken.payload.sub);
    await control(op, 'tamper', { mode: 'expired', count: 2 });
    for (let i = 0; i < 2; i += 1) {
      const t = await fullSignIn(op, new Browser(), client('st-post'), { agent: 'claire' });
      assert.ok(t.idToken.payload.exp < now());
    }
    const after = await fullSignIn(op, new Browser(), client('st-post'), { agent: 'claire' });
    assert.ok(after.idToken.payload.exp > now());
    await control(op, 'tamper', { mode: 'alg_none', count: 5 });
    const reset = await control(op, 'reset', {});
    assert.equal(reset.json.tamper, null);
    const clean = await fullSignIn(op, new Browser(), client('st-post'), { agent: 'claire' });
    assert.equal(clean.idToken.header.alg, 'RS256');
    assert.equal((await control(op, 'tamper', { mode: 'nope' })).status, 400);
    assert.equal((await control(op, 'tamper', { mode: 'wrong_nonce', target: 'userinfo' })).status, 400);
    assert.equal((await control(op, 'tamper', { mode: 'expired', count: 0 })).status, 400);
  });

  let kidsBeforeRestart;
  await check('key rotation: new kid signs, old one kept or dropped from the JWKS', async () => {
    const before = (await control(op, 'state')).json.signing_kids;
    const rotated = await control(op, 'rotate-key', { keep_old: true });
    const after = rotated.json.signing_kids;
    assert.notEqual(after.RS256, before.RS256);
    assert.notEqual(after.ES256, before.ES256);
    let keys = await jwks(op);
    assert.ok(keys.some((k) => k.kid === before.RS256), 'old key still published');
    assert.ok(keys.some((k) => k.kid === after.RS256), 'new key published');
    const r = await fullSignIn(op, new Browser(), client('st-post'), { agent: 'claire' });
    assert.equal(r.idToken.header.kid, after.RS256);
    assert.ok(signatureValid(r.tokens.id_token, keys));
    const es = await fullSignIn(op, new Browser(), client('st-es256'), { agent: 'claire' });
    assert.equal(es.idToken.header.kid, after.ES256);
    // The session started before the rotation still works (single sign-on).
    const sso = await signIn(op, claire.browser, client('st-post'), { agent: 'claire' });
    assert.equal(sso.loginPage, null);
    const dropped = await control(op, 'rotate-key', { keep_old: false });
    keys = await jwks(op);
    assert.equal(keys.length, 2);
    assert.ok(!keys.some((k) => k.kid === after.RS256));
    assert.ok(signatureValid((await fullSignIn(op, new Browser(), client('st-post'), { agent: 'claire' })).tokens.id_token, keys));
    kidsBeforeRestart = dropped.json.published_kids;
  });

  await check('RP-initiated logout: 303 to post_logout_redirect_uri with the state; the session is gone', async () => {
    const browser = new Browser();
    const r = await fullSignIn(op, browser, client('st-post'), { agent: 'karim' });
    const state = random();
    const url = `${op.discovery.end_session_endpoint}?${new URLSearchParams({
      id_token_hint: r.tokens.id_token, state, post_logout_redirect_uri: `${RP}/connexion`,
    })}`;
    const out = await browser.request(url);
    assert.equal(out.status, 303, out.text);
    const back = new URL(out.location);
    assert.equal(back.origin + back.pathname, `${RP}/connexion`);
    assert.equal(back.searchParams.get('state'), state);
    const again = await signIn(op, browser, client('st-post'), { agent: 'karim' });
    assert.ok(again.loginPage, 'the provider session ended: login page again');
    // ProConnect requires all three parameters; an unregistered URI is refused.
    const missing = await browser.request(`${op.discovery.end_session_endpoint}?${new URLSearchParams({ id_token_hint: r.tokens.id_token, post_logout_redirect_uri: `${RP}/connexion` })}`);
    assert.equal(missing.status, 400);
    assert.ok(missing.text.includes('state manquant'));
    const r2 = await fullSignIn(op, browser, client('st-post'), { agent: 'karim' });
    const evil = await browser.request(`${op.discovery.end_session_endpoint}?${new URLSearchParams({ id_token_hint: r2.tokens.id_token, state, post_logout_redirect_uri: 'https://evil.example/' })}`);
    assert.equal(evil.status, 400);
    assert.equal(evil.location, null);
  });

  await op.stop();

  await check('a restart with the same data directory keeps the keys', async () => {
    const again = await startProvider({ dataDir: op.dir });
    try {
      assert.deepEqual((await jwks(again)).map((k) => k.kid), kidsBeforeRestart);
    } finally {
      await again.stop();
    }
  });

  await check('without OIDC_TEST_CONTROLS=1 the test controls do not exist', async () => {
    const demo = await startProvider({ env: { OIDC_TEST_CONTROLS: '0' } });
    try {
      assert.equal((await fetch(`${demo.base}/__test/state`)).status, 404);
      assert.equal((await fetch(`${demo.base}/__test/tamper`, { method: 'POST', body: '{"mode":"alg_none"}' })).status, 404);
      const r = await fullSignIn(demo, new Browser(), client('st-post'), { agent: 'claire' });
      assert.ok(signatureValid(r.tokens.id_token, await jwks(demo)));
    } finally {
      await demo.stop();
    }
  });

  await check('issuer with a path like ProConnect (OIDC_ISSUER_PATH=/api/v2): sign-in and logout', async () => {
    const pc = await startProvider({ env: { OIDC_ISSUER_PATH: '/api/v2' } });
    try {
      assert.match(pc.issuer, /^http:\/\/127\.0\.0\.1:\d+\/api\/v2$/);
      assert.equal(pc.discovery.issuer, pc.issuer);
      assert.equal(pc.discovery.authorization_endpoint, `${pc.issuer}/authorize`);
      assert.equal((await fetch(`${pc.base}/.well-known/openid-configuration`)).status, 404);
      const browser = new Browser();
      const r = await fullSignIn(pc, browser, client('st-jwt'), { agent: 'claire' });
      assert.equal(r.idToken.payload.iss, pc.issuer);
      assert.ok(signatureValid(r.tokens.id_token, await jwks(pc)));
      const info = await userinfo(pc, r.tokens.access_token);
      assert.equal(decode(info.text).payload.iss, pc.issuer);
      const state = random();
      const out = await browser.request(`${pc.discovery.end_session_endpoint}?${new URLSearchParams({ id_token_hint: r.tokens.id_token, state, post_logout_redirect_uri: `${RP}/connexion` })}`);
      assert.equal(out.status, 303, out.text);
      assert.equal(new URL(out.location).searchParams.get('state'), state);
    } finally {
      await pc.stop();
    }
  });

  console.log(`\nselftest: ${passed} checks passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

main().then(
  () => {
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  },
  () => {
    for (const child of started) if (child.exitCode === null) child.kill('SIGTERM');
    console.log(`\nselftest: FAILED after ${passed} passing checks; provider logs in ${[...dirs].join(' ')}`);
    process.exit(1);
  },
);
