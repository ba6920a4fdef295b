// Issue 28's page /territoire/simulation in Debian's Chromium, against the real binary:
// the coordinator picks the period, changes a place's "Places par semaine", closes
// another, adds a place with "Commune du nouveau lieu" (first without one: the error
// beside the field), then "Simuler" shows the table "Comparaison", the chart, the maps and
// the tables by commune and by place. With JavaScript and without (everything is a form
// posted back to the page), axe-core at 375 and 1280 px in each state, photographed.
// Then a scenario saved under a name ("Nom du scénario", first left empty: the error
// beside it), listed under "Scénarios enregistrés", and run again from the list with
// "Rejouer « … »": the form holds it again (places per week, the place closed, the place
// added) and the table "Comparaison" shows it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newContext, axeViolations, describeViolations, screenshots, CHROMIUM_ARGS } from '../lib/browser.js';
import { startSystem } from '../lib/system.js';

let browser;
let system;
const ALPHA = 'lieu-simulation-angouleme';
const COGNAC = 'lieu-simulation-cognac';
/** Referrals from Angoulême, for a place with one place a week: one is offered, the rest wait. */
const REFERRALS = 5;

before(async () => {
  system = await startSystem();
  browser = await launch({ args: [...CHROMIUM_ARGS, '--lang=fr-FR'] });
  const org = await system.api('POST', '/api/v1/organisations', {
    name: "CCAS d'Angoulême",
    kind: 'social_service',
    territory: '16',
  });
  const place = (name, street, postcode, commune, code, location) => ({
    name,
    services: ['aide_demarches_administratives', 'maitrise_outils_numeriques'],
    address: { street, postcode, commune, commune_code: code },
    location,
    opening_hours: 'Mo-Fr 09:00-12:00,14:00-18:00; PH off',
    weekly_capacity: 1,
    accepting: true,
    contact: { phone: '05 45 00 00 00', email: 'lieu@example.org' },
  });
  await system.api('PUT', `/api/v1/structures/${ALPHA}`,
    place('Médiathèque Alpha', '1 rue de la Gare', '16000', 'Angoulême', '16015', { lat: 45.6484, lon: 0.1562 }));
  await system.api('PUT', `/api/v1/structures/${COGNAC}`,
    place('Espace numérique de Cognac', '2 place François Ier', '16100', 'Cognac', '16102', { lat: 45.696, lon: -0.3376 }));
  await system.cli('account', 'grant', '--email', 'sophie.martin@departement-charente.example', '--role', 'coordinator', '--territory', '16');
  await system.untilMatched(ALPHA);
  await system.until('Cognac in the matcher', async () => {
    const r = await system.api('POST', '/api/v1/match/preview', { commune_code: '16102', needs: ['aide_demarches_administratives'] });
    return r.candidates.some((c) => c.structure_id === COGNAC);
  });

  // What the simulation replays: the matcher's profiles of this period's referrals. The
  // first is offered to Médiathèque Alpha and accepted there (the fidelity line compares
  // with it); the others wait for a place.
  const referrer = await system.cli('token', 'issue', '--role', 'referrer', '--organisation', org.id);
  const mediator = await system.cli('token', 'issue', '--role', 'mediator', '--structure', ALPHA);
  const ids = [];
  for (let i = 0; i < REFERRALS; i++) {
    const r = await system.api('POST', '/api/v1/referrals', {
      person: { first_name: 'Awa', last_name: `Simulation${i}`, phone: '+33622334455', email: null,
                contact_preference: 'phone', commune_code: '16015', languages: ['fr'], accessibility: [] },
      needs: ['aide_demarches_administratives'], modes: ['in_person'], urgency: 'normal',
      note: null, consent: { obtained: true, method: 'oral', at: new Date().toISOString() },
    }, referrer);
    await system.until(`referral ${i} matched`, async () => (await system.api('GET', `/api/v1/referrals/${r.id}`)).status !== 'submitted');
    ids.push(r.id);
  }
  const offered = [];
  for (const id of ids) {
    if ((await system.api('GET', `/api/v1/referrals/${id}`)).status === 'offered') offered.push(id);
  }
  assert.equal(offered.length, 1, 'one place a week: one offer');
  await system.api('POST', `/api/v1/referrals/${offered[0]}/accept`, {}, mediator);
  await system.until('the acceptance in the matcher', async () =>
    (await system.sql("SELECT count(*) FROM matcher.reservations WHERE state = 'consumed'")) === '1');
  await system.until('the profiles', async () =>
    Number(await system.sql('SELECT count(*) FROM matcher.profiles WHERE needs IS NOT NULL')) === REFERRALS);
});

after(async () => {
  await browser?.close();
  await system?.stop();
});

/** axe at both widths: zero WCAG 2.1 A/AA violations; then the photographs. */
// A place's row in the table of places: its fields are named as their columns
// ("Places par semaine", "Fermé"), the place being the row's header.
function place(page, name) {
  return page.getByRole('row').filter({ has: page.getByRole('rowheader', { name }) });
}

async function check(page, name) {
  for (const width of [375, 1280]) {
    await page.setViewportSize({ width, height: 800 });
    const violations = await axeViolations(page);
    assert.deepEqual(violations, [], `${name} at ${width} px: ${describeViolations(violations)}`);
  }
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

/** `YYYY-MM-DD` in Paris, `days` from today. */
function parisDay(days) {
  const d = new Date(Date.now() + days * 86_400_000);
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris' }).format(d);
}

/** The numbers of a row of the table "Comparaison": as things are, with the scenario. */
async function figures(table, name) {
  const cells = table.getByRole('row', { name }).getByRole('cell');
  const text = await cells.allInnerTexts();
  return text.slice(0, 2).map((t) => Number.parseInt(t, 10));
}

for (const javaScriptEnabled of [true, false]) {
  test(`the coordinator simulates a period with other capacities, JavaScript ${javaScriptEnabled ? 'on' : 'off'}`, async () => {
    const tag = javaScriptEnabled ? 'simulation' : 'simulation-sans-js';
    const context = await newContext(browser, { javaScriptEnabled, locale: 'fr-FR', timezoneId: 'Europe/Paris' });
    const page = await signIn(context, 'sophie', '/territoire');
    await page.getByRole('navigation', { name: 'Menu principal' }).getByRole('link', { name: 'Simulation' }).click();
    await page.waitForURL((u) => u.pathname === '/territoire/simulation');
    await page.getByRole('heading', { level: 1, name: /^Simulation/ }).waitFor();
    const alpha = place(page, 'Médiathèque Alpha').getByLabel('Places par semaine', { exact: true });
    assert.equal(await alpha.inputValue(), '1', "prefilled with the place's places per week");
    await check(page, `${tag}-vide`);

    // The period (today's referrals: the default is the last three whole months), a
    // place with more places, another closed.
    await page.getByLabel('Du', { exact: true }).fill(parisDay(-30));
    await page.getByLabel('Au', { exact: true }).fill(parisDay(0));
    await alpha.fill('4');
    await place(page, 'Espace numérique de Cognac').getByLabel('Fermé', { exact: true }).check();

    // "Ajouter un lieu" without its commune: the error beside the field, nothing lost.
    await page.getByRole('button', { name: 'Ajouter un lieu' }).click();
    await page.locator('#commune_nouveau-error').waitFor();
    assert.match(await page.title(), /^Erreur/);
    const commune = page.getByLabel('Commune du nouveau lieu');
    assert.ok((await commune.getAttribute('aria-describedby'))?.includes('commune_nouveau-error'), 'the error is linked to its field');
    await page.getByRole('alert').getByRole('link', { name: /commune du nouveau lieu/i }).waitFor();
    assert.equal(await alpha.inputValue(), '4', 'nothing typed is lost');
    assert.ok(await place(page, 'Espace numérique de Cognac').getByLabel('Fermé', { exact: true }).isChecked());
    assert.equal(await page.getByLabel('Au', { exact: true }).inputValue(), parisDay(0));
    await check(page, `${tag}-erreur`);

    await commune.fill('16000');
    await page.getByLabel('Nom du nouveau lieu').fill('Permanence de la gare');
    await page.getByRole('group', { name: 'Services du nouveau lieu' }).getByLabel('Aide aux démarches administratives').check();
    await page.getByLabel('Capacité du nouveau lieu').fill('2');
    await page.getByRole('button', { name: 'Ajouter un lieu' }).click();
    await page.getByText(/^Lieu ajouté au scénario : Permanence de la gare, à Angoulême/).waitFor();
    await page.getByRole('button', { name: 'Retirer Permanence de la gare' }).waitFor();
    assert.equal(await commune.inputValue(), '', 'the fields are ready for another place');
    assert.equal(await alpha.inputValue(), '4');
    await check(page, `${tag}-lieu-ajoute`);

    // "Simuler": the table "Comparaison", as things are and with the scenario.
    await page.getByRole('button', { name: 'Simuler', exact: true }).click();
    const table = page.getByRole('table', { name: 'Comparaison' });
    await table.waitFor();
    assert.equal(new URL(page.url()).pathname, '/territoire/simulation');
    const [referralsNow, referralsThen] = await figures(table, /^Orientations \d/);
    assert.equal(referralsNow, REFERRALS);
    assert.equal(referralsThen, REFERRALS);
    const [placedNow, placedThen] = await figures(table, /^Placées \d/);
    assert.ok(placedThen > placedNow, `more places, more referrals placed: ${placedNow} then ${placedThen}`);
    const [unplacedNow, unplacedThen] = await figures(table, /^Non placées \d/);
    assert.ok(unplacedThen < unplacedNow, `fewer left without a place: ${unplacedNow} then ${unplacedThen}`);
    for (const row of [/^Part placée/, /^Placées à moins de 30 km/, /^Distance médiane/, /^Attente médiane \(jours\)/, /^Attente p90 \(jours\)/, /^Pic de la liste d'attente/]) {
      await table.getByRole('row', { name: row }).waitFor();
    }
    await page.getByText(/retrouve la première proposition réelle pour \d+ % des orientations acceptées/).waitFor();
    assert.ok(await page.getByRole('img', { name: new RegExp(`^Placées : ${placedNow} actuellement, ${placedThen} avec le scénario`) }).isVisible());
    assert.ok(await page.getByRole('img', { name: /^Deux cartes du département/ }).isVisible());
    await page.getByRole('table', { name: 'Par commune' }).getByRole('row', { name: /^Angoulême \(16015\)/ }).waitFor();
    const loads = page.getByRole('table', { name: /^Charge des lieux/ });
    await loads.getByRole('row', { name: /^Permanence de la gare \(nouveau lieu\)/ }).waitFor();
    await loads.getByRole('row', { name: /^Espace numérique de Cognac \(fermé dans le scénario\)/ }).waitFor();
    // The scenario stays in the form, to change and simulate again.
    assert.equal(await alpha.inputValue(), '4');
    await page.getByRole('button', { name: 'Retirer Permanence de la gare' }).waitFor();
    await check(page, tag);

    // "Retirer": the place leaves the scenario.
    await page.getByRole('button', { name: 'Retirer Permanence de la gare' }).click();
    await page.getByText(/^Lieu retiré du scénario : Permanence de la gare/).waitFor();
    assert.equal(await page.getByRole('button', { name: /^Retirer/ }).count(), 0);
    await context.close();
  });
}

for (const javaScriptEnabled of [true, false]) {
  test(`the coordinator saves a scenario and runs it again from the list, JavaScript ${javaScriptEnabled ? 'on' : 'off'}`, async () => {
    const tag = javaScriptEnabled ? 'simulation-scenarios' : 'simulation-scenarios-sans-js';
    const name = javaScriptEnabled ? 'Alpha à 4 places, Cognac fermé, la gare' : 'Alpha à 4 places, sans JavaScript';
    const context = await newContext(browser, { javaScriptEnabled, locale: 'fr-FR', timezoneId: 'Europe/Paris' });
    const page = await signIn(context, 'sophie', '/territoire/simulation');
    const saved = page.getByRole('region', { name: 'Scénarios enregistrés' });
    await saved.getByRole('heading', { level: 2, name: 'Scénarios enregistrés' }).waitFor();
    const rerun = saved.getByRole('button', { name: /^Rejouer « / });
    if ((await rerun.count()) === 0) {
      await saved.getByText(/^Aucun scénario enregistré pour ce département/).waitFor();
    }
    const before = await rerun.count();

    const alpha = place(page, 'Médiathèque Alpha').getByLabel('Places par semaine', { exact: true });
    const cognac = place(page, 'Espace numérique de Cognac').getByLabel('Fermé', { exact: true });
    await page.getByLabel('Du', { exact: true }).fill(parisDay(-30));
    await page.getByLabel('Au', { exact: true }).fill(parisDay(0));
    await alpha.fill('4');
    await cognac.check();
    await page.getByLabel('Commune du nouveau lieu').fill('16000');
    await page.getByLabel('Nom du nouveau lieu').fill('Permanence de la gare');
    await page.getByRole('group', { name: 'Services du nouveau lieu' }).getByLabel('Aide aux démarches administratives').check();
    await page.getByLabel('Capacité du nouveau lieu').fill('2');
    await page.getByRole('button', { name: 'Ajouter un lieu' }).click();
    await page.getByRole('button', { name: 'Retirer Permanence de la gare' }).waitFor();

    // No name: the French message beside "Nom du scénario", nothing saved or lost.
    const field = page.getByLabel('Nom du scénario', { exact: true });
    await page.getByRole('button', { name: 'Enregistrer le scénario' }).click();
    const error = page.locator('#nom_scenario-error');
    await error.waitFor();
    assert.match(await error.innerText(), /^Indiquez le nom du scénario/);
    assert.ok((await field.getAttribute('aria-describedby'))?.includes('nom_scenario-error'), 'the error is linked to its field');
    assert.equal(await field.getAttribute('aria-invalid'), 'true');
    assert.match(await page.title(), /^Erreur/);
    const summary = page.getByRole('alert');
    await summary.getByText(/^Le scénario n'a pas été enregistré/).waitFor();
    await summary.getByRole('link', { name: /^Indiquez le nom du scénario/ }).waitFor();
    assert.equal(await alpha.inputValue(), '4', 'nothing typed is lost');
    assert.ok(await cognac.isChecked());
    assert.equal(await rerun.count(), before, 'nothing saved');
    await check(page, `${tag}-erreur`);

    // A name: saved, said, and listed first.
    await field.fill(name);
    await page.getByRole('button', { name: 'Enregistrer le scénario' }).click();
    await saved.getByRole('status').getByText(`Scénario « ${name} » enregistré`, { exact: false }).waitFor();
    assert.doesNotMatch(await page.title(), /^Erreur/);
    assert.equal(await rerun.count(), before + 1);
    const button = saved.getByRole('button', { name: `Rejouer « ${name} »`, exact: true });
    await button.waitFor();
    const item = saved.getByRole('listitem').filter({ has: page.getByRole('button', { name: `Rejouer « ${name} »`, exact: true }) });
    const day = (d) => d.split('-').reverse().join('/');
    await item.getByText(`Période du ${day(parisDay(-30))} au ${day(parisDay(0))}, 3 changements.`, { exact: false }).waitFor();
    await item.getByText(/Enregistré le \d{2}\/\d{2}\/\d{4} à \d{2}:\d{2}\./).waitFor();
    assert.equal(await alpha.inputValue(), '4', 'the form is still the scenario');
    await check(page, `${tag}-enregistre`);

    // Another day: the page as it opens, then "Rejouer" fills the form and simulates.
    await page.goto(`${system.base}/territoire/simulation`);
    assert.equal(await alpha.inputValue(), '1');
    assert.ok(!(await cognac.isChecked()));
    assert.equal(await page.getByRole('button', { name: /^Retirer/ }).count(), 0);
    await button.click();
    const table = page.getByRole('table', { name: 'Comparaison' });
    await table.waitFor();
    await page.getByText(`Résultats du scénario enregistré « ${name} »`, { exact: false }).waitFor();
    assert.equal(await alpha.inputValue(), '4', "the saved scenario's places per week");
    assert.ok(await cognac.isChecked(), 'its closed place');
    await page.getByRole('button', { name: 'Retirer Permanence de la gare' }).waitFor();
    assert.equal(await page.getByLabel('Du', { exact: true }).inputValue(), parisDay(-30));
    assert.equal(await page.getByLabel('Au', { exact: true }).inputValue(), parisDay(0));
    assert.equal(await field.inputValue(), name, 'its name, to save it again once changed');
    const [referralsNow, referralsThen] = await figures(table, /^Orientations \d/);
    assert.equal(referralsNow, REFERRALS);
    assert.equal(referralsThen, REFERRALS);
    const [placedNow, placedThen] = await figures(table, /^Placées \d/);
    assert.ok(placedThen > placedNow, `the scenario's 4 places place more: ${placedNow} then ${placedThen}`);
    const loads = page.getByRole('table', { name: /^Charge des lieux/ });
    await loads.getByRole('row', { name: /^Espace numérique de Cognac \(fermé dans le scénario\)/ }).waitFor();
    await loads.getByRole('row', { name: /^Permanence de la gare \(nouveau lieu\)/ }).waitFor();
    await check(page, tag);
    await context.close();
  });
}
