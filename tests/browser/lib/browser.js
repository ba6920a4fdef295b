// Debian's Chromium, driven by playwright-core: nothing here downloads a browser.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import AxeBuilder from '@axe-core/playwright';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Where screenshots and other outputs go (git-ignored). */
export const OUTPUT_DIR = process.env.BROWSER_OUTPUT_DIR ?? path.resolve(here, '..', 'output');

/** The executable: Debian's wrapper script, which sets Chromium's own flags and paths. */
export const CHROMIUM = process.env.AIGUILLAGE_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Flags for a machine with no network but loopback, running as root in CI. Without the
 * background-networking ones Chromium keeps trying to reach Google's hosts. Playwright
 * adds its own (--headless, --no-sandbox when chromiumSandbox is false, and a fresh
 * temporary --user-data-dir that it deletes at close: launch() refuses one in args).
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export function launch(options = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    ...options,
  });
}

const noScriptContexts = new WeakSet();

/**
 * A browser context; { javaScriptEnabled: false } makes one where pages run no script
 * at all (Chromium's own switch, as for a person who turned JavaScript off), which
 * axeViolations then knows about.
 */
export async function newContext(browser, options = {}) {
  const context = await browser.newContext(options);
  if (options.javaScriptEnabled === false) noScriptContexts.add(context);
  return context;
}

/** The WCAG levels issue 13 requires: zero violations of these. */
export const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

/**
 * axe-core's violations on the page as it is now, restricted to WCAG_TAGS.
 *
 * axe runs as a script in the page, and in a context with JavaScript disabled its timers
 * never fire, so analyze() would hang. For such a page, axe runs on a copy of its DOM
 * (as rendered without JavaScript, <noscript> content included) in a scripting context
 * where a Content-Security-Policy stops every script of the page itself, with the same
 * viewport, cookies and base URL, so that styles load and contrast is measured as seen.
 */
export async function axeViolations(page) {
  if (!noScriptContexts.has(page.context())) {
    return (await new AxeBuilder({ page }).withTags(WCAG_TAGS).analyze()).violations;
  }
  const html = noScriptSnapshot(await page.content(), page.url());
  const context = await page.context().browser().newContext({ viewport: page.viewportSize() });
  try {
    await context.addCookies(await page.context().cookies());
    const copy = await context.newPage();
    await copy.setContent(html, { waitUntil: 'load' });
    return (await new AxeBuilder({ page: copy }).withTags(WCAG_TAGS).analyze()).violations;
  } finally {
    await context.close();
  }
}

function noScriptSnapshot(html, url) {
  const head = `<meta http-equiv="Content-Security-Policy" content="script-src 'none'"><base href="${url.replace(/"/g, '&quot;')}">`;
  return html
    .replace(/<head([^>]*)>/i, (m) => m + head)
    // With scripting on, <noscript> would be raw text: keep what a no-JS reader sees.
    .replace(/<noscript(\s[^>]*)?>/gi, '<div data-noscript="">')
    .replace(/<\/noscript>/gi, '</div>');
}

/** A readable summary of violations, for assertion messages. */
export function describeViolations(violations) {
  return violations
    .map((v) => `${v.id} (${v.impact}): ${v.help}\n` + v.nodes.map((n) => `    ${n.target.join(' ')}`).join('\n'))
    .join('\n');
}

/** The widths issue 13 asks screenshots at: a phone and a desktop. */
export const WIDTHS = [375, 1280];

/**
 * Full-page screenshots of the page at each width, as OUTPUT_DIR/screenshots/NAME-WIDTH.png.
 * Returns the paths written.
 */
export async function screenshots(page, name, widths = WIDTHS) {
  const dir = path.join(OUTPUT_DIR, 'screenshots');
  await mkdir(dir, { recursive: true });
  const written = [];
  for (const width of widths) {
    await page.setViewportSize({ width, height: 800 });
    const file = path.join(dir, `${name}-${width}.png`);
    await page.screenshot({ path: file, fullPage: true });
    written.push(file);
  }
  return written;
}
