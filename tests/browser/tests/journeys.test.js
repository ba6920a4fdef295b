// The three journeys of UI.md in Debian's Chromium, against the real binary, PostgreSQL,
// RabbitMQ and the development OpenID provider: the referrer submits, the mediator sees
// the offer without the name, accepts, sees the contact details, records a contact and
// closes, the referrer sees "Clôturée", the coordinator's counts change. axe-core runs on
// every page in every state (errors included), the referral form gets a keyboard-only
// pass, everything runs again with JavaScript disabled, and each page is photographed
// at 375 and 1280 px.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newContext, axeViolations, describeViolations, screenshots } from '../lib/browser.js';
import { startSystem } from '../lib/system.js';

let browser;
let system;
let organisation;
const STRUCTURE = 'lieu-journey-angouleme';

before(async () => {
  system = await startSystem();
  browser = await launch();
  const org = await system.api('POST', '/api/v1/organisations', {
    name: "CCAS d'Angoulême",
    kind: 'social_service',
    territory: '16',
  });
  organisation = org.id;
  await system.api('PUT', `/api/v1/structures/${STRUCTURE}`, {
    name: 'Médiathèque Alpha',
    services: ['aide_demarches_administratives', 'maitrise_outils_numeriques'],
    address: { street: '1 rue de la Gare', postcode: '16000', commune: 'Angoulême', commune_code: '16015' },
    location: { lat: 45.6484, lon: 0.1562 },
    opening_hours: 'Mo-Fr 09:00-12:00,14:00-18:00; PH off',
    weekly_capacity: 20,
    accepting: true,
    contact: { phone: '05 45 00 00 00', email: 'mediatheque@example.org' },
  });
  await system.cli('account', 'grant', '--email', 'claire.dubois@ccas-angouleme.example', '--role', 'referrer', '--organisation', org.id);
  await system.cli('account', 'grant', '--email', 'karim.benali@regie-urbaine-angouleme.example', '--role', 'mediator', '--structure', STRUCTURE);
  await system.cli('account', 'grant', '--email', 'sophie.martin@departement-charente.example', '--role', 'coordinator', '--territory', '16');
  await system.cli('account', 'grant', '--email', 'camille.lefevre@aiguillage.example', '--role', 'admin');
  await system.cli('account', 'grant', '--email', 'nadia.roussel@departement-charente.example', '--role', 'dpo');
  await system.untilMatched(STRUCTURE);
});

after(async () => {
  await browser?.close();
  await system?.stop();
});

/** Zero WCAG 2.1 A/AA violations, and the photographs. */
async function check(page, name) {
  const violations = await axeViolations(page);
  assert.deepEqual(violations, [], `${name}: ${describeViolations(violations)}`);
  await screenshots(page, name);
}

async function signIn(context, agent, next) {
  const page = await context.newPage();
  await page.goto(`${system.base}/connexion?next=${encodeURIComponent(next)}`);
  await page.getByRole('link', { name: /^S'identifier avec ProConnect/i }).click();
  await page.getByLabel('Agent').selectOption(agent);
  await page.getByRole('button', { name: 'Se connecter' }).click();
  await page.waitForURL((u) => u.origin === system.base && !u.pathname.startsWith('/auth/'));
  return page;
}

async function signOut(page) {
  await page.getByRole('button', { name: 'Se déconnecter' }).click();
  await page.waitForURL((u) => u.pathname === '/connexion');
}

async function journey(javaScript) {
  const tag = javaScript ? 'js' : 'nojs';
  const last = javaScript ? 'Garnier' : 'Lambert';
  const context = await newContext(browser, { javaScriptEnabled: javaScript });
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));

  // 1. The referrer submits: first with mistakes, then right.
  let page = await signIn(context, 'claire', '/orientations/nouvelle');
  assert.equal(new URL(page.url()).pathname, '/orientations/nouvelle');
  await check(page, `${tag}-nouvelle`);
  if (javaScript) {
    const font = await page.evaluate(() => getComputedStyle(document.body).fontFamily);
    assert.ok(!/marianne/i.test(font), `system fonts without the State brand: ${font}`);
  }
  await page.getByLabel(/^Prénom/).fill('Inès');
  await page.getByLabel(/^Nom/).fill(last);
  await page.getByLabel(/^Commune/).fill('Nullepartville');
  await page.getByRole('button', { name: "Envoyer l'orientation" }).click();
  await page.waitForLoadState();
  assert.match(await page.title(), /^Erreur/);
  await page.getByRole('alert').getByRole('link').first().waitFor();
  const commune = page.getByLabel(/^Commune/);
  assert.equal(await page.getByLabel(/^Prénom/).inputValue(), 'Inès', 'nothing typed is lost');
  const described = await commune.getAttribute('aria-describedby');
  assert.ok(described?.includes('commune-error'), `the error is linked to the field: ${described}`);
  await check(page, `${tag}-nouvelle-erreurs`);

  await commune.fill(javaScript ? 'angouleme' : '16000');
  await page.getByLabel(/^Téléphone/).fill('06 12 34 56 78');
  await page.getByRole('group', { name: /^Besoins/ }).getByLabel('Aide aux démarches administratives').check();
  await page.getByLabel(/^Consentement/).check();
  await page.getByLabel(/^Mode de recueil du consentement/).selectOption('oral');
  await page.getByRole('button', { name: "Envoyer l'orientation" }).click();
  await page.waitForURL(/\/orientations\/[0-9a-f-]{36}$/);
  const referral = new URL(page.url()).pathname.split('/').pop();
  assert.ok(!(await page.title()).includes(last), 'no personal data in the title');
  // The matcher proposes asynchronously, and without JavaScript the page does not update:
  // reload until it says so.
  await system.until('the offer on the referral page', async () => {
    await page.reload();
    return (await page.getByText(/Proposée à Médiathèque Alpha/).count()) > 0;
  });
  await check(page, `${tag}-orientation`);
  await page.goto(`${system.base}/orientations`);
  await check(page, `${tag}-orientations`);
  await signOut(page);

  // 2. The mediator: the offer without the name, accept, contact, close.
  page = await signIn(context, 'karim', '/propositions');
  await check(page, `${tag}-propositions`);
  await page.locator(`a[href="/propositions/${referral}"]`).click();
  await page.waitForURL(new RegExp(`/propositions/${referral}$`));
  const offer = await page.locator('main').innerText();
  assert.ok(!offer.includes(last) && !offer.includes('06 12'), 'no identity before acceptance');
  await check(page, `${tag}-proposition`);
  await page.getByRole('button', { name: 'Refuser' }).click();
  await page.waitForLoadState();
  await page.getByLabel(/^Motif du refus/).waitFor();
  await check(page, `${tag}-proposition-erreur`);
  await page.getByRole('button', { name: 'Accepter' }).click();
  await page.waitForURL(new RegExp(`/suivis/${referral}\\?acceptee=1$`));
  assert.ok((await page.locator('main').innerText()).includes(last), 'the contact details after acceptance');
  await check(page, `${tag}-suivi`);
  await page.getByLabel(/^Type de contact/).selectOption('first_contact');
  await page.getByRole('button', { name: 'Enregistrer un contact' }).click();
  await page.waitForURL(new RegExp(`/suivis/${referral}\\?contact=1$`));
  await page.getByLabel(/^Résultat/).selectOption('completed');
  await page.getByRole('button', { name: 'Clôturer' }).click();
  await page.waitForURL(new RegExp(`/suivis/${referral}\\?cloturee=1$`));
  await page.goto(`${system.base}/ma-structure`);
  await check(page, `${tag}-ma-structure`);
  await signOut(page);

  // 3. The referrer sees "Clôturée".
  page = await signIn(context, 'claire', `/orientations/${referral}`);
  await page.getByText(/^Statut : Clôturée/).waitFor();
  await signOut(page);

  // 4. The coordinator's counts.
  page = await signIn(context, 'sophie', '/territoire');
  await check(page, `${tag}-territoire`);
  await page.goto(`${system.base}/territoire/entonnoir?du=2020-01-01&au=2099-12-31`);
  const closed = page.getByRole('table', { name: 'Entonnoir' }).getByRole('row', { name: /^Clôturées/ });
  await closed.waitFor();
  assert.ok(Number((await closed.getByRole('cell').first().innerText()).trim()) >= 1);
  await check(page, `${tag}-entonnoir`);
  await page.goto(`${system.base}/territoire/offre-et-demande`);
  await check(page, `${tag}-offre-et-demande`);
  await page.goto(`${system.base}/territoire/structures/${STRUCTURE}/rapport`);
  await check(page, `${tag}-rapport`);
  for (const p of ['/territoire/import', '/admin/structures', '/admin/comptes']) {
    await page.goto(`${system.base}${p}`);
    await check(page, `${tag}${p.replaceAll('/', '-')}`);
  }
  // A structure by hand: the empty form, its errors, and the form of an existing one.
  await page.goto(`${system.base}/admin/structures`);
  await page.getByRole('link', { name: 'Ajouter une structure' }).click();
  await page.waitForURL((u) => u.pathname === '/admin/structures/nouvelle');
  await check(page, `${tag}-admin-structure-nouvelle`);
  await page.getByRole('button', { name: 'Ajouter la structure' }).click();
  await page.waitForLoadState();
  await page.getByRole('alert').getByRole('link').first().waitFor();
  await check(page, `${tag}-admin-structure-erreurs`);
  await page.goto(`${system.base}/admin/structures`);
  await page.getByRole('link', { name: /^Modifier Médiathèque Alpha/ }).click();
  await page.waitForURL((u) => u.pathname === `/admin/structures/${STRUCTURE}/modifier`);
  assert.equal(await page.getByLabel(/^Nom/).inputValue(), 'Médiathèque Alpha');
  await check(page, `${tag}-admin-structure-modifier`);
  await signOut(page);

  // The admin's pages.
  page = await signIn(context, 'camille', '/admin/organisations');
  await check(page, `${tag}-admin-organisations`);
  await page.getByRole('button', { name: "Créer l'organisation" }).click();
  await page.waitForLoadState();
  await check(page, `${tag}-admin-organisations-erreur`);
  await context.close();

  // Nothing from another host (the provider's pages are where sign-in goes, not loads),
  // and no font at all: the neutral mode uses the system's fonts.
  const elsewhere = requests.filter((u) => !u.startsWith(`${system.base}/`) && !u.startsWith(system.issuer) && !u.startsWith('data:'));
  assert.deepEqual(elsewhere, [], 'nothing loaded from another host');
  assert.deepEqual(requests.filter((u) => /\.(woff2?|ttf|otf)([?#]|$)/.test(u) || u.includes('/fonts/')), [], 'no font file');
  assert.ok(requests.some((u) => u.includes('/static/dsfr/')), 'the DSFR from this server');
}

test('the three journeys, end to end, with JavaScript', async () => {
  await journey(true);
});

test('the same journeys with JavaScript disabled', async () => {
  await journey(false);
});

test('the sign-in page, the waiting page and the footer pages pass axe', async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  for (const p of ['/connexion', '/accessibilite', '/donnees-personnelles', '/mentions-legales']) {
    await page.goto(`${system.base}${p}`);
    await check(page, `public${p.replaceAll('/', '-')}`);
  }
  // A failed sign-in (a forged state) is a French page with a way back.
  await page.goto(`${system.base}/auth/callback?code=forged&state=forged`);
  await page.getByRole('link', { name: /connexion/i }).first().waitFor();
  await check(page, 'erreur-connexion');
  const claire = await signIn(context, 'claire', '/compte');
  await check(claire, 'compte-claire');
  await signOut(claire);
  const lea = await signIn(context, 'lea', '/');
  await lea.getByRole('heading', { level: 1, name: /^Votre compte est en attente/ }).waitFor();
  await check(lea, 'attente');
  await lea.getByRole('button', { name: 'Demander un accès' }).click();
  await lea.waitForLoadState();
  await check(lea, 'attente-erreur');
  await context.close();
});

test('the data protection officer finds who read a referral in the journal, and a wrong filter says why beside the field', async () => {
  const referrer = await system.cli('token', 'issue', '--role', 'referrer', '--organisation', organisation);
  const submitted = await system.api('POST', '/api/v1/referrals', {
    person: { first_name: 'Prénomjournal', last_name: 'Nomjournal', phone: '+33611112222', email: null,
              contact_preference: 'phone', commune_code: '16015', languages: ['fr'], accessibility: [] },
    needs: ['aide_demarches_administratives'], modes: ['in_person'], urgency: 'normal', note: null,
    consent: { obtained: true, method: 'oral', at: new Date().toISOString() },
  }, referrer);
  await system.api('GET', `/api/v1/referrals/${submitted.id}`, undefined, referrer);
  const context = await newContext(browser);
  const page = await signIn(context, 'nadia', '/');
  await page.getByRole('link', { name: 'Consulter le journal des accès aux données personnelles' }).click();
  await page.waitForURL((u) => u.pathname === '/journal');
  await check(page, 'journal');
  await page.getByLabel(/^Orientation/).fill(submitted.id);
  await page.getByRole('button', { name: 'Filtrer le journal' }).click();
  await page.waitForURL((u) => u.searchParams.get('orientation') === submitted.id);
  const rows = page.getByRole('table', { name: /^Entrées du journal/ }).getByRole('row');
  assert.equal(await rows.count(), 3, 'the header, the submission and the read');
  await rows.nth(2).getByText('Lecture des données de la personne').waitFor();
  assert.equal(await page.getByText(/Prénomjournal|Nomjournal/).count(), 0, 'no value of the person');
  await check(page, 'journal-orientation');
  await page.getByLabel(/^Orientation/).fill('pas-un-identifiant');
  await page.getByRole('button', { name: 'Filtrer le journal' }).click();
  await page.waitForLoadState();
  assert.match(await page.title(), /^Erreur/);
  const described = await page.getByLabel(/^Orientation/).getAttribute('aria-describedby');
  assert.ok(described?.includes('orientation-error'), `the error is linked to the field: ${described}`);
  await check(page, 'journal-erreur');
  await context.close();
});

test('the referral form by keyboard alone: focus order and a visible focus ring', async () => {
  const context = await newContext(browser);
  const page = await signIn(context, 'claire', '/orientations/nouvelle');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'Aller au contenu');
  const order = [];
  for (let i = 0; i < 60 && !order.includes('Envoyer l\'orientation'); i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el) return null;
      const style = getComputedStyle(el);
      const label = el.id ? document.querySelector(`label[for="${el.id}"]`)?.textContent?.trim() : null;
      return { name: label ?? el.textContent?.trim() ?? '', outline: style.outlineStyle, width: style.outlineWidth };
    });
    if (!focused) continue;
    assert.notEqual(focused.outline, 'none', `a visible focus ring on ${focused.name}`);
    order.push(focused.name);
  }
  const at = (name) => order.findIndex((n) => n.startsWith(name));
  for (const [a, b] of [['Prénom', 'Nom'], ['Nom', 'Téléphone'], ['Téléphone', 'Adresse e-mail'], ['Commune', 'Consentement'], ['Consentement', "Envoyer l'orientation"]]) {
    assert.ok(at(a) >= 0 && at(a) < at(b), `${a} before ${b} in ${JSON.stringify(order)}`);
  }
  await context.close();
});

test('with JavaScript, the commune field suggests communes and the form says where the referral could go as it changes', async () => {
  const context = await newContext(browser);
  const page = await signIn(context, 'claire', '/orientations/nouvelle');
  const posted = [];
  page.on('request', (r) => r.method() === 'POST' && posted.push(r.postData() ?? ''));
  await page.getByLabel(/^Prénom/).fill('Zéphyrine');
  await page.getByLabel(/^Téléphone/).fill('06 98 76 54 32');
  const commune = page.getByLabel(/^Commune/);
  assert.equal(await commune.getAttribute('list'), 'commune-suggestions');
  await commune.pressSequentially('angou');
  await page.locator('#commune-suggestions option[value="16000 Angoulême"]').waitFor({ state: 'attached' });
  await commune.fill('16000 Angoulême');
  await page.getByRole('group', { name: /^Besoins/ }).getByLabel('Aide aux démarches administratives').check();
  const preview = page.locator('#apercu-direct');
  await preview.getByText(/lieux? possibles? à moins de 30 km/).waitFor();
  assert.match(await preview.innerText(), /Médiathèque Alpha/);
  assert.equal(await preview.getAttribute('role'), 'status', 'read out as it changes');
  await check(page, 'js-nouvelle-apercu');
  // A commune that is not one: the preview says why, as the server would.
  await commune.fill('Nullepartville');
  await commune.press('Tab');
  await preview.getByText(/Aucune commune ne s'appelle « Nullepartville »/).waitFor();
  assert.equal(new URL(page.url()).pathname, '/orientations/nouvelle', 'nothing was sent');
  assert.ok(posted.length >= 2, `the previews were asked: ${posted.length}`);
  for (const body of posted) {
    assert.ok(!body.includes('Z%C3%A9phyrine') && !body.includes('Zéphyrine') && !body.includes('98+76'), `no personal data in a preview: ${body}`);
  }
  await context.close();
});

test('the State brand, when the operator sets AIGUILLAGE_STATE_BRAND=true: the République française block and Marianne', async () => {
  const branded = await startSystem({ AIGUILLAGE_STATE_BRAND: 'true' });
  try {
    const context = await newContext(browser);
    const fonts = [];
    context.on('response', (r) => r.url().includes('/fonts/') && fonts.push([r.url(), r.status()]));
    const page = await context.newPage();
    await page.goto(`${branded.base}/connexion`);
    assert.match(await page.locator('header .fr-logo').innerText(), /République\s+française/i);
    const font = await page.evaluate(() => getComputedStyle(document.body).fontFamily);
    assert.match(font, /Marianne/);
    await page.evaluate(() => document.fonts.ready);
    assert.ok(fonts.some(([u, s]) => /Marianne-Regular\.woff2$/.test(u) && s === 200), `Marianne from this server: ${JSON.stringify(fonts)}`);
    assert.ok(fonts.every(([u]) => u.startsWith(`${branded.base}/static/dsfr/`)), JSON.stringify(fonts));
    await check(page, 'etat-connexion');
    await context.close();
  } finally {
    await branded.stop();
  }
});
