// Issue 23 in Debian's Chromium: a structure without an account answers through the link
// of its e-mail, against the real binary, PostgreSQL, RabbitMQ and the capture SMTP
// server (the link is read from the e-mail the notifications service sends). Accepting
// (then a contact and the closing), refusing, a used link and an expired one (with
// "Recevoir un nouveau lien", whose e-mail brings a link that works), each with and
// without JavaScript, axe-core on every page and state, photographed at 375 and 1280 px.
// The forms' CSRF check (the page's Origin under `Referrer-Policy: same-origin`) is
// Chromium's own here. No token in any line the server logged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newContext, axeViolations, describeViolations, screenshots } from '../lib/browser.js';
import { startSystem } from '../lib/system.js';
import { startSmtp } from '../lib/smtp.js';

let browser;
let system;
let smtp;
let referrer;
const STRUCTURE = 'lieu-sans-compte-angouleme';
const STRUCTURE_NAME = 'Espace numérique du Champ de Mars';
const ADDRESS = 'accueil@champ-de-mars.example';
/** Every token of the run, to look for in the server's logs. */
const tokens = [];

before(async () => {
  smtp = await startSmtp();
  // Info level: every line the services write about links is there to be searched.
  system = await startSystem({ RUST_LOG: 'info', AIGUILLAGE_SMTP_URL: smtp.url });
  browser = await launch();
  const org = await system.api('POST', '/api/v1/organisations', {
    name: "CCAS d'Angoulême",
    kind: 'social_service',
    territory: '16',
  });
  // A place with a public address and no mediator: offers reach it by e-mail only.
  await system.api('PUT', `/api/v1/structures/${STRUCTURE}`, {
    name: STRUCTURE_NAME,
    services: ['aide_demarches_administratives'],
    address: { street: '2 place du Champ de Mars', postcode: '16000', commune: 'Angoulême', commune_code: '16015' },
    location: { lat: 45.6496, lon: 0.1575 },
    weekly_capacity: 20,
    accepting: true,
    contact: { phone: '05 45 00 00 10', email: ADDRESS },
  });
  referrer = await system.cli('token', 'issue', '--role', 'referrer', '--organisation', org.id);
  await system.untilMatched(STRUCTURE);
});

after(async () => {
  await browser?.close();
  await system?.stop();
  await smtp?.stop();
});

/** The links of the e-mails the structure's address received so far, oldest first. */
async function links() {
  const pattern = new RegExp(`${system.base.replace(/[.]/g, '\\.')}/reponse/([A-Za-z0-9_-]+)`);
  return (await smtp.messages())
    .filter((m) => m.to.includes(ADDRESS))
    .map((m) => m.text.match(pattern)?.[1])
    .filter(Boolean);
}

/** The link of the next e-mail to the structure's address, after the `seen` first ones. */
async function nextLink(seen) {
  const token = await system.until('an e-mail with a link to the structure', async () => (await links())[seen]);
  tokens.push(token);
  return token;
}

/** A referral for `lastName`, offered to the structure, and the link of its e-mail. */
async function offeredLink(lastName) {
  const seen = (await links()).length;
  const submitted = await system.api('POST', '/api/v1/referrals', {
    person: { first_name: 'Awa', last_name: lastName, phone: '+33622334455', email: null,
              contact_preference: 'phone', commune_code: '16015', languages: ['fr'], accessibility: [] },
    needs: ['aide_demarches_administratives'], modes: ['in_person'], urgency: 'normal', note: null,
    consent: { obtained: true, method: 'oral', at: new Date().toISOString() },
  }, referrer);
  await system.until('the offer to the structure', async () => {
    const r = await system.api('GET', `/api/v1/referrals/${submitted.id}`);
    return r.status === 'offered' && r.current_offer?.structure_id === STRUCTURE;
  });
  const token = await nextLink(seen);
  return { id: submitted.id, token, url: `${system.base}/reponse/${token}` };
}

/** Zero WCAG 2.1 A/AA violations, and the photographs. */
async function check(page, name) {
  const violations = await axeViolations(page);
  assert.deepEqual(violations, [], `${name}: ${describeViolations(violations)}`);
  await screenshots(page, name);
}

/** What every answer of a link's page carries, and no token in its title. */
function linkHeaders(response, token) {
  const h = response.headers();
  assert.equal(h['cache-control'], 'no-store');
  assert.equal(h['referrer-policy'], 'same-origin');
  assert.equal(h['x-robots-tag'], 'noindex');
  return response.frame().page().title().then((title) => assert.ok(!title.includes(token), `token in the title: ${title}`));
}

async function heading(page) {
  return (await page.getByRole('heading', { level: 1 }).innerText()).trim();
}

for (const javaScript of [true, false]) {
  const tag = javaScript ? 'js' : 'nojs';

  test(`accept through a link, then a contact and the closing (${tag})`, async () => {
    const last = javaScript ? 'Diallo' : 'Traoré';
    const link = await offeredLink(last);
    const context = await newContext(browser, { javaScriptEnabled: javaScript });
    const page = await context.newPage();
    const posts = [];
    page.on('request', (r) => r.method() === 'POST' && posts.push(r.headers()));

    let response = await page.goto(link.url);
    assert.equal(response.status(), 200);
    await linkHeaders(response, link.token);
    assert.match(await heading(page), /^Proposition/);
    assert.match(await page.locator('main').innerText(), new RegExp(`Pour ${STRUCTURE_NAME}`));
    const offer = await page.locator('main').innerText();
    assert.ok(!offer.includes(last) && !offer.includes('22 33'), 'no identity before acceptance');
    assert.equal(await page.getByRole('link', { name: 'Créer un compte pour votre structure' }).getAttribute('href'), '/connexion?next=/compte');
    await check(page, `${tag}-reponse-proposition`);

    // "Refuser" without a reason: the page again, the message beside the field.
    await page.getByRole('button', { name: 'Refuser' }).click();
    await page.waitForLoadState();
    assert.match(await page.title(), /^Erreur/);
    const described = await page.getByLabel(/^Motif du refus/).getAttribute('aria-describedby');
    assert.ok(described?.includes('reason-error'), `the error is linked to the field: ${described}`);
    await check(page, `${tag}-reponse-proposition-erreur`);

    await page.getByRole('button', { name: 'Accepter' }).click();
    await page.waitForURL(`${link.url}?acceptee=1`);
    await page.getByText(`Suivi de Awa ${last}`).waitFor();
    assert.match(await page.locator('main').innerText(), /Téléphone : \+33622334455/);
    await check(page, `${tag}-reponse-suivi`);
    // The form posts came from this page with its origin, under same-origin.
    assert.ok(posts.length >= 2 && posts.every((h) => h.origin === system.base), JSON.stringify(posts.map((h) => h.origin)));

    await page.getByLabel(/^Type de contact/).selectOption('first_contact');
    await page.getByRole('button', { name: 'Enregistrer un contact' }).click();
    await page.waitForURL(`${link.url}?contact=1`);
    await page.getByText('Le contact est enregistré.').waitFor();
    // "Clôturer" without an outcome, then with one.
    await page.getByRole('button', { name: 'Clôturer' }).click();
    await page.waitForLoadState();
    assert.match(await page.title(), /^Erreur/);
    await check(page, `${tag}-reponse-suivi-erreur`);
    await page.getByLabel(/^Résultat/).selectOption('completed');
    await page.getByRole('button', { name: 'Clôturer' }).click();
    await page.waitForURL(`${system.base}/reponse/cloturee`);
    await check(page, `${tag}-reponse-cloturee`);

    const r = await system.api('GET', `/api/v1/referrals/${link.id}`);
    assert.equal(r.status, 'closed');
    assert.equal(r.outcome, 'completed');
    await context.close();
  });

  test(`refuse through a link, and the used link (${tag})`, async () => {
    const link = await offeredLink(javaScript ? 'Koné' : 'Camara');
    const context = await newContext(browser, { javaScriptEnabled: javaScript });
    const page = await context.newPage();
    await page.goto(link.url);
    await page.getByLabel(/^Motif du refus/).selectOption('no_capacity');
    await page.getByLabel(/^Commentaire/).fill('Plus de créneau avant trois semaines.');
    await page.getByRole('button', { name: 'Refuser' }).click();
    await page.waitForURL(`${system.base}/reponse/refusee`);
    assert.match(await page.locator('main').innerText(), /La proposition est refusée/);
    await check(page, `${tag}-reponse-refusee`);
    const r = await system.api('GET', `/api/v1/referrals/${link.id}`);
    assert.ok(r.history.some((h) => h.status === 'declined' && h.reason === 'no_capacity'), JSON.stringify(r.history));

    // The link again: it has served.
    const response = await page.goto(link.url);
    assert.equal(response.status(), 410);
    await linkHeaders(response, link.token);
    assert.match(await heading(page), /^Ce lien n'est plus valable/);
    assert.equal(await page.getByRole('button', { name: 'Recevoir un nouveau lien' }).count(), 0, 'nothing to renew');
    await check(page, `${tag}-reponse-lien-utilise`);

    // A link that never was: a page that says nothing more.
    const unknown = await page.goto(`${system.base}/reponse/${'A'.repeat(43)}`);
    assert.equal(unknown.status(), 404);
    assert.match(await heading(page), /^Lien introuvable/);
    await check(page, `${tag}-reponse-inconnue`);
    await context.close();
  });

  test(`an expired link, and "Recevoir un nouveau lien" (${tag})`, async () => {
    const last = javaScript ? 'Sylla' : 'Touré';
    const link = await offeredLink(last);
    const context = await newContext(browser, { javaScriptEnabled: javaScript });
    const page = await context.newPage();
    await page.goto(link.url);
    await page.getByRole('button', { name: 'Accepter' }).click();
    await page.waitForURL(`${link.url}?acceptee=1`);
    // Nine days without use (AIGUILLAGE_ANSWER_LINK_TTL is 8 days).
    await system.sql(`UPDATE referrals.referrals SET accepted_at = now() - interval '9 days' WHERE id = '${link.id}'`);
    await system.sql(`UPDATE referrals.answer_links SET created_at = now() - interval '9 days', last_used_at = now() - interval '9 days' WHERE referral_id = '${link.id}'`);

    let response = await page.goto(link.url);
    assert.equal(response.status(), 410);
    await linkHeaders(response, link.token);
    assert.match(await heading(page), /^Ce lien n'est plus valable/);
    assert.ok(!(await page.locator('main').innerText()).includes(last), 'nothing of the person');
    const seen = (await links()).length;
    await check(page, `${tag}-reponse-expiree`);
    await page.getByRole('button', { name: 'Recevoir un nouveau lien' }).click();
    await page.waitForLoadState();
    await page.getByText("Un nouveau lien a été envoyé à l'adresse de la structure").waitFor();
    await check(page, `${tag}-reponse-nouveau-lien`);
    // The new link comes by e-mail to the same address, and opens the follow-up.
    const renewed = await nextLink(seen);
    assert.notEqual(renewed, link.token);
    response = await page.goto(`${system.base}/reponse/${renewed}`);
    assert.equal(response.status(), 200);
    await page.getByText(`Suivi de Awa ${last}`).waitFor();
    // Once an hour: a second request, from the old link, says so.
    await page.goto(link.url);
    await page.getByRole('button', { name: 'Recevoir un nouveau lien' }).click();
    await page.waitForLoadState();
    await page.getByText("Un lien a déjà été envoyé il y a moins d'une heure").waitFor();
    await check(page, `${tag}-reponse-nouveau-lien-deja`);
    await context.close();
  });
}

test('no token in any line the server logged', () => {
  assert.ok(tokens.length >= 6, `${tokens.length} links`);
  assert.ok(system.logs.server.length > 0, 'the server logged something at info level');
  for (const token of tokens) {
    assert.ok(!system.logs.server.includes(token), 'a token in the logs');
  }
});
