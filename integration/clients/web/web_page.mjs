// Drives Debian's chromium (never a downloaded browser) through the
// giftlock page with playwright-core, for tests/web_page.rs:
//
//   node web_page.mjs CONFIG.json > report.json
//
// CONFIG: {url, port, chromium, profile, out, secret, wrong_secret,
//          rebind_host, list_command: [argv...]}
//
// It signs in (a wrong secret first), saves the HTML and a screenshot of
// every page under OUT, reads the masked mail list, reveals one message
// with a wrong secret three times (timing each answer) and every message
// with the right one (the first
// until the codes hide again), opens and closes the unlock window (asking
// python imaplib's LIST through list_command each time), tries a cross-site
// POST, a same-origin POST without the CSRF token and a DNS-rebound host
// name, checks the browser's storage, signs out and closes the browser.
// Every request for anything but the page (a masked message's remote
// images, styles, frames) is recorded and aborted, and so is every
// Content-Security-Policy violation the browser reports: the masked view
// must cause none.
//
// The report (stdout) holds the codes the page revealed: the test keeps it
// out of the trees it greps for codes. Saved HTML must never hold a code.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const report = { responses: [], saved: [], messages: [], foreign_requests: [], csp_violations: [] };
mkdirSync(config.out, { recursive: true });

const listMailboxes = () => {
  const [program, ...args] = config.list_command;
  const out = execFileSync(program, args, { encoding: 'utf8', timeout: 60000 });
  return JSON.parse(out.trim().split('\n').pop()).mailboxes;
};

let context;
try {
  context = await chromium.launchPersistentContext(config.profile, {
    executablePath: config.chromium,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--host-resolver-rules=MAP ${config.rebind_host} 127.0.0.1`,
    ],
  });
  context.setDefaultTimeout(20000);
  const pageHosts = new Set(['127.0.0.1', config.rebind_host, 'evil.test']);
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('data:') || pageHosts.has(new URL(url).hostname)) {
      return route.fallback();
    }
    report.foreign_requests.push(url);
    return route.abort();
  });
  context.on('response', (response) => {
    if (!response.url().startsWith(config.url)) {
      return;
    }
    const h = response.headers();
    report.responses.push({
      url: response.url(),
      method: response.request().method(),
      status: response.status(),
      cache_control: h['cache-control'] ?? null,
      csp: h['content-security-policy'] ?? null,
      frame_options: h['x-frame-options'] ?? null,
      cors: Object.keys(h).filter((k) => k.startsWith('access-control-')),
    });
  });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.text().includes('Content Security Policy')) {
      report.csp_violations.push({ url: page.url(), text: message.text() });
    }
  });
  // What one message's masked view holds: its parts, its sanitised HTML
  // parts, its text, and any attribute in it that could load or run
  // something.
  const maskedView = () =>
    page.$eval('section.masked', (section) => {
      const risky = [];
      for (const el of section.querySelectorAll('*')) {
        for (const a of el.attributes) {
          const name = a.name.toLowerCase();
          if (
            name.startsWith('on') ||
            name === 'style' ||
            ['href', 'srcset', 'action', 'formaction', 'poster', 'data', 'background'].includes(name) ||
            (name === 'src' && !a.value.startsWith('data:image/'))
          ) {
            risky.push(`${el.tagName.toLowerCase()} ${name}=${a.value}`);
          }
        }
      }
      const active = section.querySelectorAll('script, style, link, iframe, object, embed, form, video, audio, source');
      return {
        parts: section.querySelectorAll('section.part').length,
        html_parts: section.querySelectorAll('div.html').length,
        text: section.textContent,
        risky,
        active: [...active].map((el) => el.tagName.toLowerCase()),
      };
    });
  const save = async (name) => {
    const html = join(config.out, `${name}.html`);
    writeFileSync(html, await page.content());
    await page.screenshot({ path: join(config.out, `${name}.png`), fullPage: true });
    report.saved.push(html);
  };

  // Not signed in: the sign-in page. A wrong secret first.
  await page.goto(`${config.url}/`);
  report.first_url = page.url();
  await save('login');
  await page.fill('form.login input[name=secret]', config.wrong_secret);
  const [wrong] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${config.url}/login` && r.request().method() === 'POST'),
    page.click('form.login button'),
  ]);
  await page.waitForLoadState();
  report.login_wrong = { status: wrong.status(), error: await page.textContent('body') };
  await save('login-refused');
  await page.fill('form.login input[name=secret]', config.secret);
  await Promise.all([page.waitForURL(`${config.url}/`), page.click('form.login button')]);
  report.cookies = (await context.cookies(config.url)).map((c) => ({
    name: c.name,
    http_only: c.httpOnly,
    same_site: c.sameSite,
    path: c.path,
  }));
  await save('status');
  report.status_text = await page.textContent('main');

  // The masked mail list, and a search.
  await page.goto(`${config.url}/mail`);
  await save('mail');
  const rows = await page.$$eval('table.mail tbody tr', (trs) =>
    trs.map((tr) => ({
      href: tr.querySelector('a').getAttribute('href'),
      subject: tr.querySelector('a').textContent,
      handles: [...tr.querySelectorAll('td.handle code')].map((c) => c.textContent),
    })),
  );
  report.rows = rows;
  await page.goto(`${config.url}/mail?q=${encodeURIComponent(rows[0].handles[0])}`);
  report.search = {
    query: rows[0].handles[0],
    hrefs: await page.$$eval('table.mail tbody tr a', (as) => as.map((a) => a.getAttribute('href'))),
  };
  await save('mail-search');

  // A wrong secret reveals nothing, and each wrong secret in a row waits
  // longer for its answer (timed from the click to the refusal shown).
  await page.goto(`${config.url}${rows[0].href}`);
  await save('message');
  const waits = [];
  for (let i = 0; i < 3; i++) {
    await page.fill('#reveal input[name=secret]', config.wrong_secret);
    const clicked = Date.now();
    await page.click('#reveal button');
    await page.waitForSelector('#reveal[data-state=refused]');
    waits.push(Date.now() - clicked);
  }
  report.wrong_reveal = {
    status: await page.textContent('#reveal-status'),
    shown: await page.$$eval('#codes li', (l) => l.length),
    waits_ms: waits,
  };
  await save('message-refused');

  // The right secret reveals each message's codes; the first stays until
  // they hide again.
  for (const [i, row] of rows.entries()) {
    await page.goto(`${config.url}${row.href}`);
    if (i > 0) {
      await save(`message-${i}`);
    }
    const masked = await maskedView();
    await page.fill('#reveal input[name=secret]', config.secret);
    await page.click('#reveal button');
    await page.waitForSelector('#reveal[data-state=shown]');
    const shownAt = Date.now();
    const codes = await page.$$eval('#codes code.code', (cs) => cs.map((c) => c.textContent));
    const entry = { href: row.href, subject: row.subject, handles: row.handles, codes, masked };
    if (i === 0) {
      // A picture of the revealed codes; its HTML is not saved.
      await page.screenshot({ path: join(config.out, 'message-revealed.png'), fullPage: true });
      report.storage = await page.evaluate(async () => ({
        local: localStorage.length,
        session: sessionStorage.length,
        indexed_db: (await indexedDB.databases()).length,
        service_workers: (await navigator.serviceWorker.getRegistrations()).length,
        caches: (await caches.keys()).length,
      }));
      await page.waitForSelector('#reveal[data-state=hidden]', { timeout: 30000 });
      entry.shown_ms = Date.now() - shownAt;
      entry.after_hide = await page.$$eval('#codes li', (l) => l.length);
      await save('message-hidden');
    }
    report.messages.push(entry);
  }

  // The audit page.
  await page.goto(`${config.url}/audit`);
  await save('audit');
  report.audit_text = await page.textContent('main');

  // Unlock and lock, seen through imaplib's LIST.
  await page.goto(`${config.url}/unlock`);
  await save('unlock');
  report.unlock = { before: listMailboxes(), warning: await page.textContent('p.warning') };
  await page.fill('form.unlock input[name=minutes]', '5');
  await page.fill('form.unlock input[name=secret]', config.secret);
  await Promise.all([page.waitForURL(`${config.url}/unlock`), page.click('#unlock')]);
  report.unlock.open_text = await page.textContent('#window');
  report.unlock.open = listMailboxes();
  await save('unlock-open');

  // A cross-site form posting to /lock, as another site would.
  const evil = await context.newPage();
  await evil.route('http://evil.test/**', (route) =>
    route.fulfill({
      contentType: 'text/html',
      body: `<form id="f" method="post" action="${config.url}/lock"><input name="csrf" value="guess"></form>
             <script>document.getElementById('f').submit()</script>`,
    }),
  );
  const [crossSite] = await Promise.all([
    evil.waitForResponse((r) => r.url() === `${config.url}/lock`),
    evil.goto('http://evil.test/'),
  ]);
  report.unlock.cross_site_status = crossSite.status();
  await evil.close();
  report.unlock.after_cross_site = listMailboxes();
  // The page's own origin and session, but no CSRF token.
  report.unlock.forged_status = await page.evaluate(
    async () => (await fetch('/lock', { method: 'POST', body: new URLSearchParams({ csrf: 'forged' }) })).status,
  );
  report.unlock.after_forged = listMailboxes();
  await Promise.all([page.waitForURL(`${config.url}/unlock`), page.click('#lock')]);
  report.unlock.locked_text = await page.textContent('#window');
  report.unlock.after_lock = listMailboxes();
  await save('unlock-locked');

  // A DNS-rebound name for the page's address.
  const rebound = await page.goto(`http://${config.rebind_host}:${config.port}/`);
  report.rebind = { status: rebound.status(), text: await page.textContent('body') };
  await page.screenshot({ path: join(config.out, 'rebind.png') });

  // Sign out.
  await page.goto(`${config.url}/`);
  await Promise.all([page.waitForURL(`${config.url}/login`), page.click('nav form button')]);
  report.after_sign_out = page.url();
  await page.goto(`${config.url}/mail`);
  report.mail_after_sign_out = page.url();
} catch (e) {
  report.error = String(e && e.stack ? e.stack : e);
} finally {
  if (context) {
    await context.close();
  }
}
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(report.error ? 2 : 0);
