// The web view in headless Chromium (tests/http.rs runs this). It loads
// every page with the token the Rust side made, checks each against what
// the Rust side read from the database (WEB_RESOURCE: a committed VPC's id,
// WEB_APPLY: its apply's id), clicks from the history to the apply and
// its actions, and saves a screenshot of each page in WEB_SHOTS. Any
// request to another origin fails the run: nothing may load from outside.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const base = need('WEB_BASE');
const token = need('WEB_TOKEN');
const resource = need('WEB_RESOURCE');
const applyId = need('WEB_APPLY');
const shots = need('WEB_SHOTS');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
mkdirSync(shots, { recursive: true });

const check = (ok, what) => {
  if (!ok) throw new Error(`check failed: ${what}`);
};

const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
const saved = [];
try {
  const context = await browser.newContext({
    extraHTTPHeaders: { Authorization: `Bearer ${token}` },
    viewport: { width: 1280, height: 900 },
  });
  const page = await context.newPage();
  const outside = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(base)) outside.push(r.url());
  });
  const shot = async (name) => {
    const path = `${shots}/${name}.png`;
    await page.screenshot({ path, fullPage: true });
    saved.push(path);
  };
  const visit = async (path) => {
    const answer = await page.goto(base + path);
    check(answer.status() === 200, `${path} answers 200, not ${answer.status()}`);
  };

  await visit('/');
  check((await page.locator('#sections a').count()) === 4, 'the index links four sections');
  await shot('index');

  await page.click('nav >> text=Inventory');
  check(new URL(page.url()).pathname === '/inventory', 'the navigation leads to the inventory');
  await page.click('#tables >> text=aws.vpc');
  check((await page.locator('#rows').textContent()).includes(resource), `aws.vpc lists ${resource}`);
  await page.fill('input[name=q]', resource);
  await Promise.all([page.waitForURL(/\?q=/), page.press('input[name=q]', 'Enter')]);
  check((await page.locator('#count').textContent()) === 'Rows: 1', 'the search finds one row');
  await shot('inventory-vpc-search');
  await page.fill('input[name=q]', 'no-such-value-anywhere');
  await Promise.all([page.waitForURL(/no-such-value/), page.press('input[name=q]', 'Enter')]);
  check((await page.locator('#count').textContent()) === 'Rows: 0', 'a search that matches nothing shows no row');

  await visit('/drift');
  await shot('drift');
  await visit('/stacks');
  await shot('stacks');

  await visit('/applies');
  await shot('applies');
  await page.click(`#applies a:text-is("${applyId}")`);
  check(decodeURIComponent(new URL(page.url()).pathname) === `/applies/${applyId}`, 'the link leads to the apply');
  const actions = await page.locator('#actions-table').textContent();
  check(actions.includes(resource) && actions.includes('aws.vpc'), `its actions name ${resource}`);
  check(await page.locator('svg#graph').isVisible(), 'the graph is drawn');
  check((await page.locator('svg#graph g.node').count()) === 2, 'the graph has the VPC and the subnet');
  check((await page.locator('svg#graph line').count()) === 1, 'the subnet waits for its VPC');
  check((await page.locator('#revert-sql').textContent()).includes('DELETE FROM aws.vpc'), 'the revert plan deletes the VPC');
  await shot('apply');

  check(outside.length === 0, `requests left the server: ${outside.join(', ')}`);

  // A person's browser sends no header: it signs in at /login (a cookie).
  const plain = await browser.newContext();
  const person = await plain.newPage();
  const refused = await person.goto(base + '/inventory');
  check(refused.status() === 401, `without a token the inventory is refused, not ${refused.status()}`);
  await person.goto(base + '/login');
  await person.fill('#token', token);
  await Promise.all([person.waitForURL(base + '/'), person.click('#login button[type=submit]')]);
  check((await person.locator('#sections a').count()) === 4, 'signed in, the index shows');
  await person.screenshot({ path: `${shots}/login.png` });
  saved.push(`${shots}/login.png`);
} finally {
  await browser.close();
}
console.log(JSON.stringify({ screenshots: saved }));
