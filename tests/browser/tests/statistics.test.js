// The public page /statistiques (issue 25) in Debian's Chromium, against the real binary:
// without signing in, at 375 and 1280 px, with JavaScript and without, axe-core on each;
// the département filter, "secret" where statistical secrecy hides a figure, the files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newContext, axeViolations, describeViolations, screenshots } from '../lib/browser.js';
import { startSystem } from '../lib/system.js';

let browser;
let system;

before(async () => {
  system = await startSystem();
  browser = await launch();
  // Insights' facts, as the projection writes them: fourteen months of referrals in
  // Charente (16), a few in Vienne (86) and three in Charente-Maritime (17) this month.
  // Some were offered to two places (reoriented).
  await system.sql(`
    WITH r AS (
      SELECT gen_random_uuid() AS id, t.territory,
             -- Months are subtracted in Paris wall time, then placed: in UTC, one month
             -- before "1 December 00:00 Paris" (30 November 23:00) would be 30 October.
             (date_trunc('month', now() AT TIME ZONE 'Europe/Paris') - make_interval(months => m))
               AT TIME ZONE 'Europe/Paris' + make_interval(hours => 5 + i * 7) AS at, i, m
      FROM (VALUES ('16', 0, 13), ('86', 1, 5)) AS t(territory, first_m, last_m),
           generate_series(t.first_m, t.last_m) AS m,
           generate_series(0, 20 + ((m * 37) % 40) / (1 + t.first_m * 3)) AS i
      UNION ALL
      SELECT gen_random_uuid(), '17', date_trunc('month', now() AT TIME ZONE 'Europe/Paris') AT TIME ZONE 'Europe/Paris'
               + make_interval(mins => i), i, 0
      FROM generate_series(0, 2) AS i
    ), ins AS (
      INSERT INTO insights.referrals (referral_id, territory, submitted_at, status, first_offered_at, accepted_at, offers)
      SELECT id, territory, at, CASE WHEN i % 6 = 5 THEN 'waitlisted' ELSE 'accepted' END,
             CASE WHEN i % 6 <> 5 THEN at + interval '1 hour' END,
             CASE WHEN i % 6 <> 5 THEN at + make_interval(hours => 20 + (i * 13) % 70) END,
             CASE WHEN i % 6 = 5 THEN 0 WHEN i % 4 = 1 THEN 2 ELSE 1 END
      FROM r WHERE at < now() RETURNING referral_id, offers, first_offered_at
    )
    INSERT INTO insights.events (event_id, referral_id, kind, structure_id, at)
    SELECT gen_random_uuid(), referral_id, 'offered', 'lieu-' || n, first_offered_at
    FROM ins, generate_series(1, ins.offers) AS n`);
});

after(async () => {
  await browser?.close();
  await system?.stop();
});

/** axe at both widths: zero WCAG 2.1 A/AA violations; then the photographs. */
async function check(page, name) {
  for (const width of [375, 1280]) {
    await page.setViewportSize({ width, height: 800 });
    const violations = await axeViolations(page);
    assert.deepEqual(violations, [], `${name} at ${width} px: ${describeViolations(violations)}`);
  }
  await screenshots(page, name);
}

for (const javaScriptEnabled of [true, false]) {
  test(`the public statistics, no sign-in, JavaScript ${javaScriptEnabled ? 'on' : 'off'}`, async () => {
    const context = await newContext(browser, { javaScriptEnabled, locale: 'fr-FR' });
    const page = await context.newPage();
    await page.goto(`${system.base}/connexion`);
    await page.getByRole('link', { name: 'Statistiques publiques' }).first().click();
    await page.waitForURL((u) => u.pathname === '/statistiques');
    await page.getByRole('heading', { level: 1, name: 'Statistiques publiques des orientations' }).waitFor();
    const table = page.getByRole('table', { name: 'Orientations par mois' });
    await table.waitFor();
    assert.equal(await table.getByRole('row').count(), 15, 'a header and fourteen months');
    assert.ok(await page.getByRole('img', { name: /^Orientations, acceptées et réorientées par mois/ }).isVisible());
    await check(page, javaScriptEnabled ? 'statistiques' : 'statistiques-sans-js');

    // Charente-Maritime's three referrals this month: secret, and why.
    await page.getByLabel('Département').selectOption('17');
    await page.getByRole('button', { name: 'Afficher' }).click();
    await page.waitForURL((u) => u.searchParams.get('departement') === '17');
    const row = table.getByRole('row', { name: /provisoire/ });
    assert.match(await row.innerText(), /secret/);
    assert.ok(await page.getByText(/par secret statistique, aucun effectif de 1 à 4/).isVisible());
    await check(page, javaScriptEnabled ? 'statistiques-17' : 'statistiques-17-sans-js');

    // A département that does not exist: the error beside the field.
    await page.goto(`${system.base}/statistiques?departement=Charente`);
    assert.equal(await page.locator('#departement-error').innerText(), 'Choisissez un département de la liste.');
    await check(page, javaScriptEnabled ? 'statistiques-erreur' : 'statistiques-erreur-sans-js');

    // The files, as linked.
    for (const name of ['Télécharger (CSV)', 'Télécharger (JSON)']) {
      const href = await page.getByRole('link', { name }).getAttribute('href');
      const response = await page.request.get(`${system.base}${href}`);
      assert.equal(response.status(), 200, name);
      assert.equal(response.headers()['cache-control'], 'public, max-age=3600');
    }
    await context.close();
  });
}
