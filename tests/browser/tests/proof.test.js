// Proof that the browser tooling works on this machine: Debian's Chromium through
// playwright-core, axe-core at the WCAG 2.1 AA levels, screenshots at 375 and 1280 px,
// and the same page with JavaScript disabled. The web app's own journeys (issue 13)
// go beside this file and use the same helpers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, newContext, axeViolations, describeViolations, screenshots } from '../lib/browser.js';
import { serveDirectory } from '../lib/server.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
let browser;
let site;

before(async () => {
  site = await serveDirectory(fixtures);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await site?.close();
});

test('Debian Chromium starts headless through playwright-core', async () => {
  assert.match(browser.version(), /^\d+\./);
});

test('a page from a local server: no WCAG 2.1 A/AA violation, screenshots at 375 and 1280 px', async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  await page.goto(`${site.url}/orientation.html`);
  await assert.doesNotReject(page.getByText('JavaScript actif').waitFor());
  const violations = await axeViolations(page);
  assert.deepEqual(violations, [], describeViolations(violations));
  for (const file of await screenshots(page, 'proof-orientation')) {
    assert.ok((await stat(file)).size > 1000, `${file} is written`);
  }
  await context.close();
});

test('a data: URL page works too', async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  const html = '<!doctype html><html lang="fr"><head><title>Essai</title></head><body><main><h1>Bonjour</h1></main></body></html>';
  await page.goto(`data:text/html;charset=utf-8,${encodeURIComponent(html)}`);
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Bonjour');
  assert.deepEqual(await axeViolations(page), []);
  await context.close();
});

test('axe finds the violations of an inaccessible page (the check is not vacuous)', async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  await page.goto(`${site.url}/inaccessible.html`);
  const ids = (await axeViolations(page)).map((v) => v.id).sort();
  for (const expected of ['color-contrast', 'document-title', 'html-has-lang', 'image-alt', 'label']) {
    assert.ok(ids.includes(expected), `expected ${expected} among ${ids.join(', ')}`);
  }
  await context.close();
});

test('with JavaScript disabled: the page still works, axe still runs, screenshots are written', async () => {
  const context = await newContext(browser, { javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`${site.url}/orientation.html`);
  // The page's own script did not run...
  assert.equal(await page.getByRole('status').textContent(), 'Le formulaire fonctionne sans JavaScript.');
  // ...yet axe, injected by Playwright, does, and the form submits as a plain GET.
  const violations = await axeViolations(page);
  assert.deepEqual(violations, [], describeViolations(violations));
  await screenshots(page, 'proof-orientation-sans-js');
  await page.getByLabel('Commune ou code postal').fill('Angoulême');
  await page.getByLabel('Aide aux démarches administratives').check();
  await page.getByRole('button', { name: 'Voir les lieux possibles' }).click();
  await page.waitForURL(/commune=/);
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('commune'), 'Angoulême');
  assert.deepEqual(url.searchParams.getAll('besoin'), ['aide_demarches_administratives']);
  await context.close();
});

test('with JavaScript disabled, axe still finds the violations of an inaccessible page', async () => {
  const context = await newContext(browser, { javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`${site.url}/inaccessible.html`);
  const ids = (await axeViolations(page)).map((v) => v.id);
  for (const expected of ['color-contrast', 'image-alt', 'label']) {
    assert.ok(ids.includes(expected), `expected ${expected} among ${ids.join(', ')}`);
  }
  await context.close();
});

test('keyboard: Tab reaches the commune field first, with a visible focus ring', async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  await page.goto(`${site.url}/orientation.html`);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'commune');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none');
  await context.close();
});
