// Issue 24 in Debian's Chromium, against the real binary: the mediator sets the
// appointment on /suivis/{id} (first a moment already past, refused beside its field),
// the referrer sees it and how the person was told on /orientations/{id}, then prints the
// person's slip /orientations/{id}/fiche, which fits one A4 page. Once the appointment's
// time has passed (set back in the database), the mediator says the person did not come
// and closing offers "Absent au rendez-vous". With and without JavaScript, axe-core on
// every page and state, photographed at 375 and 1280 px.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { launch, newContext, axeViolations, describeViolations, screenshots, OUTPUT_DIR, CHROMIUM_ARGS } from '../lib/browser.js';
import { startSystem } from '../lib/system.js';

let browser;
let system;
let referrerToken;
const STRUCTURE = 'lieu-rdv-angouleme';
const STRUCTURE_NAME = 'Médiathèque Alpha';
const NOTE = 'Travaille de nuit : ne pas appeler avant 14 h';
const NEEDS = [
  'aide_demarches_administratives', 'maitrise_outils_numeriques', 'insertion_professionnelle',
  'utilisation_securisee', 'parentalite_education', 'loisirs_creations', 'comprehension_monde_numerique',
  'acces_internet_materiel', 'acquisition_materiel_solidaire',
];

before(async () => {
  system = await startSystem();
  // Date and time fields as a French agent reads them (jj/mm/aaaa, 24 h): Chromium's own
  // locale, which takes effect where Debian's chromium-l10n is installed (else en-US).
  browser = await launch({ args: [...CHROMIUM_ARGS, '--lang=fr-FR'] });
  const org = await system.api('POST', '/api/v1/organisations', {
    name: "CCAS d'Angoulême",
    kind: 'social_service',
    territory: '16',
  });
  await system.api('PUT', `/api/v1/structures/${STRUCTURE}`, {
    name: STRUCTURE_NAME,
    services: NEEDS,
    address: { street: '1 rue de la Gare', postcode: '16000', commune: 'Angoulême', commune_code: '16015' },
    location: { lat: 45.6484, lon: 0.1562 },
    opening_hours: 'Mo 14:00-18:00; Tu-Fr 09:00-12:00,14:00-18:00; Sa 09:00-12:00; Su off; PH off',
    weekly_capacity: 20,
    accepting: true,
    contact: { phone: '05 45 00 00 00', email: 'mediatheque@example.org' },
  });
  await system.cli('account', 'grant', '--email', 'claire.dubois@ccas-angouleme.example', '--role', 'referrer', '--organisation', org.id);
  await system.cli('account', 'grant', '--email', 'karim.benali@regie-urbaine-angouleme.example', '--role', 'mediator', '--structure', STRUCTURE);
  referrerToken = await system.cli('token', 'issue', '--role', 'referrer', '--organisation', org.id);
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

/** A referral submitted through the API, once the matcher has offered it to the place. */
async function offered(lastName, preference, needs = ['aide_demarches_administratives', 'insertion_professionnelle']) {
  const r = await system.api('POST', '/api/v1/referrals', {
    person: { first_name: 'Awa', last_name: lastName, phone: '+33622334455', email: 'awa@exemple.fr',
              contact_preference: preference, commune_code: '16015', languages: ['fr'], accessibility: [] },
    needs, modes: ['in_person'], urgency: 'normal',
    note: NOTE, consent: { obtained: true, method: 'oral', at: new Date().toISOString() },
  }, referrerToken);
  await system.until('the offer to the place', async () => (await system.api('GET', `/api/v1/referrals/${r.id}`)).status === 'offered');
  return r.id;
}

/** `YYYY-MM-DD` in Paris, `days` from today. */
function parisDay(days) {
  const d = new Date(Date.now() + days * 86_400_000);
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris' }).format(d);
}

/** How many pages a PDF has: its page objects (not the `/Pages` tree nodes). */
function pdfPages(bytes) {
  return (bytes.toString('latin1').match(/\/Type\s*\/Page(?![a-zA-Z])/g) ?? []).length;
}

async function journey(javaScript) {
  const tag = javaScript ? 'js' : 'nojs';
  const last = javaScript ? 'Diallo' : 'Traoré';
  const referral = await offered(last, javaScript ? 'via_referrer' : 'phone');
  const context = await newContext(browser, { javaScriptEnabled: javaScript, locale: 'fr-FR', timezoneId: 'Europe/Paris' });

  // 1. The mediator accepts, and sets the appointment: a moment already past first.
  let page = await signIn(context, 'karim', `/propositions/${referral}`);
  await page.getByRole('button', { name: 'Accepter' }).click();
  await page.waitForURL(new RegExp(`/suivis/${referral}\\?acceptee=1$`));
  const block = page.getByRole('region', { name: 'Rendez-vous' });
  await block.getByText(/^Aucun rendez-vous n'est fixé/).waitFor();
  assert.equal(await page.getByLabel(/^Durée/).inputValue(), '60', 'one hour unless chosen');
  await check(page, `${tag}-rdv-vide`);

  await page.getByLabel(/^Date du rendez-vous/).fill(parisDay(-1));
  await page.getByLabel(/^Heure/).fill('09:30');
  await page.getByLabel(/^Lieu du rendez-vous/).fill('Salle 2');
  await page.getByRole('button', { name: 'Fixer le rendez-vous' }).click();
  await page.waitForLoadState();
  assert.match(await page.title(), /^Erreur/);
  const date = page.getByLabel(/^Date du rendez-vous/);
  assert.ok((await date.getAttribute('aria-describedby'))?.includes('rdv-date-error'), 'the error is linked to its field');
  await page.getByText('Ce moment est passé : choisissez une date et une heure à venir.').first().waitFor();
  assert.equal(await page.getByLabel(/^Lieu du rendez-vous/).inputValue(), 'Salle 2', 'nothing typed is lost');
  await check(page, `${tag}-rdv-erreur`);

  await date.fill(parisDay(3));
  await page.getByLabel(/^Heure/).fill('09:30');
  await page.getByLabel(/^Durée/).selectOption({ label: '1 h 30' });
  await page.getByRole('button', { name: 'Fixer le rendez-vous' }).click();
  await page.waitForURL(new RegExp(`/suivis/${referral}\\?rendez-vous=1$`));
  await block.getByText(/^Rendez-vous fixé le .* à 9 h 30, pour 1 h 30, Salle 2\.$/).waitFor();
  await block.getByRole('button', { name: 'Annuler le rendez-vous' }).waitFor();
  assert.equal(await page.getByLabel(/^Heure/).inputValue(), '09:30', 'the form moves the appointment set');
  await check(page, `${tag}-rdv-fixe`);
  await signOut(page);

  // 2. The referrer: when, where, how the person was told, and the slip.
  page = await signIn(context, 'claire', `/orientations/${referral}`);
  const seen = page.getByRole('region', { name: 'Rendez-vous' });
  await seen.getByText(/^Rendez-vous fixé le .* à 9 h 30, pour 1 h 30, Salle 2\.$/).waitFor();
  await system.until('how the person was told', async () => {
    await page.reload();
    return (await seen.getByText(/^Comment la personne est prévenue/).count()) > 0;
  });
  await check(page, `${tag}-orientation-rdv`);
  await page.getByRole('link', { name: 'Fiche à remettre à la personne' }).click();
  await page.waitForURL(new RegExp(`/orientations/${referral}/fiche$`));
  const slip = await page.locator('main').innerText();
  for (const words of [STRUCTURE_NAME, '1 rue de la Gare, 16000 Angoulême', '05 45 00 00 00', 'Du mardi au vendredi : de 9 h à 12 h et de 14 h à 18 h', 'à 9 h 30', 'Salle 2', "pièce d'identité"]) {
    assert.ok(slip.includes(words), `${words} on the slip: ${slip}`);
  }
  for (const secret of [NOTE, last, 'Awa', '06 22', 'awa@']) {
    assert.ok(!slip.includes(secret), `${secret} is not on the slip`);
  }
  const print = page.getByRole('button', { name: 'Imprimer' });
  assert.equal(await print.isVisible(), javaScript, 'the button works only with its script');
  await check(page, `${tag}-fiche`);
  if (javaScript) {
    // Chromium's own print pipeline, as its print preview lays the page out on A4.
    const pdf = await page.pdf({ format: 'A4', preferCSSPageSize: true, printBackground: false });
    await writeFile(path.join(OUTPUT_DIR, 'fiche.pdf'), pdf);
    assert.equal(pdfPages(pdf), 1, 'the slip is one A4 page');
    // What the printer gets, photographed at A4's width in CSS pixels.
    await page.emulateMedia({ media: 'print' });
    await page.setViewportSize({ width: 794, height: 1123 });
    await page.screenshot({ path: path.join(OUTPUT_DIR, 'screenshots', 'fiche-impression.png'), fullPage: true });
    await page.emulateMedia({ media: null });
    // The same on a phone's width: nothing wider than the screen.
    await page.setViewportSize({ width: 375, height: 800 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the slip fits 375 px (${overflow} px too wide)`);
  }
  await signOut(page);

  // 3. The appointment's time has passed: the person did not come.
  await system.sql(`UPDATE referrals.appointments SET at = now() - interval '2 hours' WHERE referral_id = '${referral}'`);
  page = await signIn(context, 'karim', `/suivis/${referral}`);
  await page.getByRole('button', { name: "La personne n'est pas venue" }).waitFor();
  await page.getByRole('button', { name: 'La personne est venue' }).waitFor();
  await check(page, `${tag}-rdv-passe`);
  await page.getByRole('button', { name: "La personne n'est pas venue" }).click();
  await page.waitForURL(new RegExp(`/suivis/${referral}\\?presence=1$`));
  await page.getByText(/^La personne n'est pas venue\. Fixez un nouveau rendez-vous/).waitFor();
  assert.equal(await page.getByLabel(/^Résultat/).inputValue(), 'no_show', 'closing offers "Absent au rendez-vous"');
  await check(page, `${tag}-rdv-absente`);
  await page.getByRole('button', { name: 'Clôturer' }).click();
  await page.waitForURL(new RegExp(`/suivis/${referral}\\?cloturee=1$`));
  assert.equal((await system.api('GET', `/api/v1/referrals/${referral}`)).outcome, 'no_show');
  await context.close();
}

test('the slip of a person with every need, at a place with long hours and a long room, is still one A4 page', async () => {
  const referral = await offered('Nguyen', 'via_referrer', NEEDS);
  const mediator = await system.cli('token', 'issue', '--role', 'mediator', '--structure', STRUCTURE);
  await system.api('POST', `/api/v1/referrals/${referral}/accept`, {}, mediator);
  await system.api('PUT', `/api/v1/referrals/${referral}/appointment`, {
    at: new Date(Date.now() + 3 * 86_400_000).toISOString(),
    duration_minutes: 120,
    place: "Salle informatique du deuxième étage, au fond du couloir à gauche après l'accueil",
  }, mediator);
  const context = await newContext(browser);
  const page = await signIn(context, 'claire', `/orientations/${referral}/fiche`);
  assert.equal((await page.locator('.aig-slip__bring li').count()), 10, 'every thing to bring, once');
  await check(page, 'fiche-pleine');
  const pdf = await page.pdf({ format: 'A4', preferCSSPageSize: true });
  await writeFile(path.join(OUTPUT_DIR, 'fiche-pleine.pdf'), pdf);
  assert.equal(pdfPages(pdf), 1, 'the fullest slip is one A4 page');
  await page.emulateMedia({ media: 'print' });
  await page.setViewportSize({ width: 794, height: 1123 });
  await page.screenshot({ path: path.join(OUTPUT_DIR, 'screenshots', 'fiche-pleine-impression.png'), fullPage: true });
  await context.close();
});

test('appointments, the referrer view and the slip, with JavaScript', async () => {
  await journey(true);
});

test('appointments, the referrer view and the slip, without JavaScript', async () => {
  await journey(false);
});
