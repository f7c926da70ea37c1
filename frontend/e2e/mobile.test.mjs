// End-to-end test of watching and driving tasks from a phone (issue 7), against a
// running `anycode serve --lan --lan-address 127.0.0.2`: 127.0.0.2 (a loopback
// alias, nothing leaves the machine) plays the phone's view of the computer's LAN
// address, so the LAN listener and the Host allowlist are exercised for real.
//
// The desk (a desktop-sized browser with the token link) pairs phones through
// Settings: a control phone and a watch phone (390×844, touch, mobile). The control
// phone types through the on-screen keyboard and key bar; the watch phone's typing
// is checked on the server side (worktree diff, the terminal's recording) to never
// reach the TTY; LAN mode off/on makes the phone reconnect by itself with the
// output it missed; revoking the control phone closes its socket.
//
//   ANYCODE_URL=http://127.0.0.1:PORT ANYCODE_TOKEN=…   (the server; the token from its data dir's `token` file)
//   ANYCODE_LAN_HOST=127.0.0.2                    (the address given to --lan-address)
//   ANYCODE_E2E_REPO=/path/to/a/git/repo           (added as a project)
//   ANYCODE_ARTIFACTS=dir                          (screenshots; default e2e/artifacts)
//   CHROMIUM=/usr/bin/chromium

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, shot, BASE_URL, TOKEN, loginUrl } from './common.mjs';

const URL_WITH_TOKEN = BASE_URL && TOKEN ? BASE_URL : '';
const LAN_HOST = process.env.ANYCODE_LAN_HOST;
const REPO = process.env.ANYCODE_E2E_REPO;
const KEEP = process.env.ANYCODE_E2E_KEEP === '1';
const JSQR = createRequire(import.meta.url).resolve('jsqr/dist/jsQR.js');


const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  userAgent:
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36',
};

const missing = [!URL_WITH_TOKEN && 'ANYCODE_URL and ANYCODE_TOKEN', !LAN_HOST && 'ANYCODE_LAN_HOST', !REPO && 'ANYCODE_E2E_REPO'].filter(Boolean);

let browser;
const log = [];

before(async () => {
  if (missing.length) return;
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  if (log.length) console.log(`browser log:\n  ${log.slice(-40).join('\n  ')}`);
  await browser?.close().catch(() => {});
});

function watchPage(page, who) {
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') log.push(`[${who} console.${m.type()}] ${m.text()}`);
  });
  page.on('pageerror', (e) => log.push(`[${who} pageerror] ${e.message}`));
}


/** Lines of the xterm buffer of terminal `id` in `page` (window.__anycode test hook). */
const bufferLines = (page, id) =>
  page.evaluate((tid) => {
    const term = window.__anycode?.terminals.get(tid);
    if (!term) return null;
    const b = term.buffer.active;
    const out = [];
    for (let i = 0; i < b.length; i++) out.push(b.getLine(i)?.translateToString(true) ?? '');
    return out;
  }, id);

async function waitForBuffer(page, id, predicate, what, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  let lines = null;
  while (Date.now() < deadline) {
    lines = await bufferLines(page, id);
    if (lines && predicate(lines)) return lines;
    await page.waitForTimeout(150);
  }
  const tail = (lines ?? []).filter((l) => l.trim()).slice(-12).join('\n    ');
  const state = await page.getByTestId(`terminal-${id}`).getAttribute('data-state').catch(() => null);
  throw new Error(`timed out waiting for ${what} in terminal ${id} (socket: ${state}); last lines:\n    ${tail}`);
}

const socketState = (page, id) => page.getByTestId(`terminal-${id}`).getAttribute('data-state');

async function waitForState(page, id, want, timeout = 20_000) {
  await page.waitForFunction(
    ([tid, states]) => states.includes(document.querySelector(`[data-testid="terminal-${tid}"]`)?.getAttribute('data-state')),
    [id, Array.isArray(want) ? want : [want]],
    { timeout },
  );
}

test('phone: pair, drive as control, watch read-only, reconnect, revoke', { timeout: 600_000 }, async (t) => {
  if (missing.length) {
    t.skip(`set ${missing.join(', ')} (a server started with --lan --lan-address 127.0.0.2)`);
    return;
  }
  const desk = new URL(URL_WITH_TOKEN);
  const token = TOKEN;
  const lanOrigin = `http://${LAN_HOST}:${desk.port}`;

  // The owner's API, from Node: the server-side checks.
  const owner = async (method, p, body) => {
    const r = await fetch(`${desk.origin}${p}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    return { status: r.status, body: text && r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
  };

  // ---- a project and a shell task, made through the API ----
  const repoReal = fs.realpathSync(REPO);
  let project = (await owner('GET', '/api/projects')).body.find((p) => fs.realpathSync(p.path) === repoReal);
  if (!project) {
    const r = await owner('POST', '/api/projects', { path: REPO });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    project = r.body;
  }
  const run = Date.now().toString(36);
  const branch = `anycode/phone-${run}`;
  const phoneName = `Test phone ${run}`;
  const watchName = `Watch phone ${run}`;
  const created = await owner('POST', `/api/projects/${project.id}/tasks`, { title: 'Phone test', agent: 'shell', branch });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const task = created.body;
  const termId = task.terminals[0].id;
  t.diagnostic(`task ${task.id}, terminal ${termId}`);

  try {
    // ---- the desk: LAN mode is on, Settings → Pair a phone (control) ----
    const deskCtx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const deskPage = await deskCtx.newPage();
    watchPage(deskPage, 'desk');
    await deskPage.goto(await loginUrl(), { waitUntil: 'domcontentloaded' });
    await deskPage.getByTestId(`task-item-${task.id}`).waitFor({ timeout: 20_000 });
    await shot(deskPage, 'mobile-0-desk.png');
    await deskPage.getByTestId('settings-button').click();
    const toggle = deskPage.getByTestId('lan-toggle');
    await deskPage.waitForFunction(() => document.querySelector('[data-testid="lan-toggle"]')?.getAttribute('aria-checked') === 'true', null, {
      timeout: 10_000,
    });
    assert.match(await deskPage.getByTestId('lan-urls').textContent(), new RegExp(`${LAN_HOST}:${desk.port}`));

    const makeCode = async (role) => {
      await deskPage.getByTestId(`pair-role-${role}`).check();
      await deskPage.getByTestId('pair-make').click();
      await deskPage.waitForFunction(
        (r) => document.querySelector('[data-testid="pairing"] .muted')?.textContent?.toLowerCase().includes(r === 'watch' ? 'watch only' : 'control'),
        role,
        { timeout: 10_000 },
      );
      const code = (await deskPage.getByTestId('pairing-code').textContent()).trim();
      const url = (await deskPage.getByTestId('pairing-url').textContent()).trim();
      assert.match(code, /^[A-Z2-9]{3}-[A-Z2-9]{3}-[A-Z2-9]{3}$/);
      assert.equal(url, `${lanOrigin}/#/pair/${code}`);
      return { code, url };
    };
    const control = await makeCode('control');
    // The QR code decodes to the pairing URL (rendered by the browser, read by jsQR).
    await deskPage.addScriptTag({ path: JSQR });
    const decoded = await deskPage.evaluate(async () => {
      const svg = document.querySelector('[data-testid="pairing-qr"] svg');
      const img = new Image();
      img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(new XMLSerializer().serializeToString(svg))}`;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = 400;
      c.height = 400;
      const g = c.getContext('2d');
      g.fillStyle = '#fff';
      g.fillRect(0, 0, 400, 400);
      g.drawImage(img, 0, 0, 400, 400);
      return window.jsQR(g.getImageData(0, 0, 400, 400).data, 400, 400)?.data ?? null;
    });
    assert.equal(decoded, control.url, 'the QR code carries the pairing URL');
    await shot(deskPage, 'mobile-1-desk-pair.png');

    // ---- the control phone: open the link, pair ----
    const phoneCtx = await browser.newContext(PHONE);
    const phone = await phoneCtx.newPage();
    watchPage(phone, 'phone');
    await phone.goto(control.url, { waitUntil: 'domcontentloaded' });
    await phone.getByTestId('pair-page').waitFor({ timeout: 20_000 });
    assert.equal(await phone.getByTestId('pair-code').inputValue(), control.code, 'the link fills in the code');
    await phone.getByTestId('pair-name').fill(phoneName);
    await shot(phone, 'mobile-2-pair.png');
    await phone.getByTestId('pair-submit').tap();
    // Paired: the task list is the home screen.
    await phone.getByTestId(`mobile-task-${task.id}`).waitFor({ timeout: 20_000 });
    const cookies = await phoneCtx.cookies(lanOrigin);
    const device = cookies.find((c) => c.name === 'anycode_device');
    assert.ok(device && device.httpOnly && device.sameSite === 'Strict', `device cookie: ${JSON.stringify(device)}`);
    assert.equal(await phone.evaluate(() => document.cookie), '', 'the session cookie is not readable by scripts');
    await shot(phone, 'mobile-3-task-list.png');

    // A reused code is refused.
    const reuse = await fetch(`${lanOrigin}/api/pair`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ code: control.code, device_name: 'again' }),
    });
    assert.equal(reuse.status, 401);

    // ---- task → terminal, typing as control ----
    await phone.getByTestId(`mobile-task-${task.id}`).tap();
    await phone.getByTestId('task-view').waitFor({ timeout: 10_000 });
    await waitForState(phone, termId, 'open', 30_000);
    const geometry = (page) =>
      page.evaluate((id) => {
        const term = window.__anycode.terminals.get(id);
        return { cols: term.cols, rows: term.rows, fontSize: term.options.fontSize };
      }, termId);
    t.diagnostic(`phone terminal: ${JSON.stringify(await geometry(phone))}`);
    const keybar = phone.getByTestId('keybar');
    assert.ok(await keybar.isVisible(), 'the key bar is shown on a touch screen');
    const keysFit = await keybar.evaluate((e) => e.scrollWidth <= e.clientWidth);
    assert.ok(keysFit, 'every key of the key bar fits on a 390 px screen');
    await phone.locator(`[data-testid="terminal-${termId}"] .xterm`).tap();
    await phone.keyboard.type('echo control-$((40+2))', { delay: 10 });
    await phone.getByTestId('key-enter').tap();
    await waitForBuffer(phone, termId, (l) => l.some((x) => /^\s*control-42\s*$/.test(x)), 'control-42');
    // Ctrl-C from the key bar interrupts a long command; ↑ recalls the last one.
    await phone.keyboard.type('sleep 300', { delay: 10 });
    await phone.getByTestId('key-enter').tap();
    await phone.waitForTimeout(400);
    const t0 = Date.now();
    await phone.getByTestId('key-ctrl-c').tap();
    await phone.keyboard.type('echo after-$((3*3))', { delay: 10 });
    await phone.getByTestId('key-enter').tap();
    await waitForBuffer(phone, termId, (l) => l.some((x) => /^\s*after-9\s*$/.test(x)), 'after-9 (Ctrl-C worked)', 15_000);
    t.diagnostic(`Ctrl-C from the key bar: next command answered after ${Date.now() - t0} ms`);
    await phone.getByTestId('key-up').tap();
    await phone.getByTestId('key-enter').tap();
    await waitForBuffer(phone, termId, (l) => l.filter((x) => /^\s*after-9\s*$/.test(x)).length >= 2, 'after-9 twice (↑ Enter)');

    // Font size buttons.
    const fontSize = () => phone.evaluate((id) => window.__anycode.terminals.get(id).options.fontSize, termId);
    const before = await fontSize();
    await phone.getByTestId('font-larger').tap();
    await phone.getByTestId('font-larger').tap();
    assert.equal(await fontSize(), before + 2);
    await phone.getByTestId('font-smaller').tap();
    assert.equal(await fontSize(), before + 1);

    // Touch scrolling of the scrollback: a swipe down shows earlier lines.
    await phone.keyboard.type('seq 1 400', { delay: 5 });
    await phone.getByTestId('key-enter').tap();
    await waitForBuffer(phone, termId, (l) => l.some((x) => x.trim() === '400'), 'seq output');
    const viewportY = () => phone.evaluate((id) => window.__anycode.terminals.get(id).buffer.active.viewportY, termId);
    const bottom = await viewportY();
    const box = await phone.locator(`[data-testid="terminal-${termId}"] .xterm-screen`).boundingBox();
    const cdp = await phoneCtx.newCDPSession(phone);
    const x = box.x + box.width / 2;
    const y0 = box.y + 40;
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x, y: y0 }] });
    for (let i = 1; i <= 10; i++) {
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [{ x, y: y0 + i * 25 }] });
      await phone.waitForTimeout(16);
    }
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    await phone.waitForTimeout(500);
    const scrolled = await viewportY();
    t.diagnostic(`touch scroll: viewportY ${bottom} → ${scrolled}`);
    assert.ok(scrolled < bottom, `a downward swipe scrolls back (viewportY ${bottom} → ${scrolled})`);
    await shot(phone, 'mobile-4-terminal-scrolled.png');
    await phone.evaluate((id) => window.__anycode.terminals.get(id).scrollToBottom(), termId);
    await shot(phone, 'mobile-4-terminal.png');

    // The diff on a narrow screen: a change made from the phone, no sideways overflow.
    await phone.keyboard.type(
      'printf "a long line that would run off a phone screen if it did not wrap: %s\\n" $(seq 1 12 | tr "\\n" "-") > phone.txt',
      { delay: 3 },
    );
    await phone.getByTestId('key-enter').tap();
    const row = phone.getByTestId('diff-file-phone.txt');
    const deadline = Date.now() + 30_000;
    while (!(await row.isVisible())) {
      assert.ok(Date.now() < deadline, 'phone.txt should appear in the Changes panel');
      await phone.getByTestId('diff-refresh').tap();
      await phone.waitForTimeout(800);
    }
    await row.tap();
    await phone.locator('.diff-file.open .diff-code-insert').first().waitFor({ timeout: 10_000 });
    await phone.locator('.split-changes').evaluate((e) => e.scrollIntoView());
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page does not scroll sideways (overflow ${overflow}px)`);
    const patchFits = await phone.evaluate(() => {
      const p = document.querySelector('.diff-file.open .patch');
      return p ? p.scrollWidth <= p.clientWidth + 1 : false;
    });
    assert.ok(patchFits, 'the patch wraps within the screen');
    await shot(phone, 'mobile-5-diff.png');

    // A preview from the phone: `*.localhost` would be the phone itself, so the
    // preview gets a listener of its own on the LAN address (another port, another
    // origin), and the phone's device cookie never reaches the dev server.
    await phone.locator(`[data-testid="terminal-${termId}"] .xterm`).tap();
    await phone.keyboard.type(
      `node -e "require('http').createServer((q,r)=>{r.setHeader('content-type','text/html');r.end('<meta name=viewport content=width=device-width><h1 id=hello>Hello from the sandbox</h1><p id=cookie>['+(q.headers.cookie||'')+']</p>')}).listen(5179)" &`,
      { delay: 3 },
    );
    await phone.getByTestId('key-enter').tap();
    await phone.getByTestId('task-ports').tap();
    const openPort = phone.getByTestId('port-open-5179');
    for (let i = 0; i < 40 && !(await openPort.count()); i++) {
      await phone.waitForTimeout(250);
      await phone.getByTestId('ports-refresh').tap();
    }
    assert.ok(await openPort.count(), 'the dev server is listed on the phone');
    const [preview] = await Promise.all([phoneCtx.waitForEvent('page'), openPort.tap()]);
    await preview.waitForSelector('#hello', { timeout: 20_000 });
    const pu = new URL(preview.url());
    assert.equal(pu.hostname, LAN_HOST, `the preview is on the LAN address: ${preview.url()}`);
    assert.notEqual(pu.port, desk.port, 'on a port of its own');
    assert.equal(await preview.textContent('#cookie'), '[]', 'no AnyCode cookie reaches the dev server');
    await shot(preview, 'mobile-5b-preview.png');
    await preview.close();

    // ---- the watch phone ----
    const watch = await makeCode('watch');
    const watchCtx = await browser.newContext(PHONE);
    const watcher = await watchCtx.newPage();
    watchPage(watcher, 'watcher');
    await watcher.goto(watch.url, { waitUntil: 'domcontentloaded' });
    await watcher.getByTestId('pair-name').fill(watchName);
    await watcher.getByTestId('pair-submit').tap();
    await watcher.getByTestId(`mobile-task-${task.id}`).tap({ timeout: 20_000 });
    await waitForState(watcher, termId, 'open', 30_000);
    // It sees what happened before it came (scrollback replay) and live output.
    await waitForBuffer(watcher, termId, (l) => l.some((x) => /^\s*control-42\s*$/.test(x)), 'the replayed control-42');
    assert.ok(await watcher.getByTestId('watch-badge').isVisible(), 'the watch badge is shown');
    assert.equal(await watcher.getByTestId('key-enter').count(), 0, 'no typing keys for a watcher');
    assert.equal(await watcher.getByTestId('task-stop').isVisible(), false, 'no Stop button for a watcher');
    // It tries to type anyway (the UI disables input; the server drops it regardless)…
    await watcher.locator(`[data-testid="terminal-${termId}"] .xterm`).tap();
    await watcher.keyboard.type('touch watch-was-here; echo WATCHED-$((6*7))', { delay: 10 });
    await watcher.keyboard.press('Enter');
    // …and sends raw frames on its own socket, and calls mutating endpoints.
    const raw = await watcher.evaluate(async ([id, taskId]) => {
      const ws = new WebSocket(`ws://${location.host}/ws/terminals/${id}`);
      ws.binaryType = 'arraybuffer';
      await new Promise((res, rej) => {
        ws.onopen = res;
        ws.onerror = rej;
      });
      ws.send(new TextEncoder().encode('touch watch-raw-frame\r'));
      ws.send(JSON.stringify({ type: 'resize', cols: 20, rows: 5 }));
      await new Promise((r) => setTimeout(r, 300));
      ws.close();
      const post = async (p, body) => (await fetch(p, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })).status;
      return {
        stop: await post(`/api/tasks/${taskId}/stop`, {}),
        commit: await post(`/api/tasks/${taskId}/commit`, { message: 'x' }),
        pairing: await post('/api/pairing', { role: 'control' }),
      };
    }, [termId, task.id]);
    assert.deepEqual(raw, { stop: 403, commit: 403, pairing: 403 });
    await shot(watcher, 'mobile-6-watch.png');
    // The control phone's next command proves the TTY has taken everything sent before.
    await phone.locator(`[data-testid="terminal-${termId}"] .xterm`).tap();
    await phone.keyboard.type('stty size; echo sync-$((1+1))', { delay: 10 });
    await phone.getByTestId('key-enter').tap();
    const lines = await waitForBuffer(phone, termId, (l) => l.some((x) => /^\s*sync-2\s*$/.test(x)), 'sync-2');
    const size = lines.find((x) => /^\s*\d+ \d+\s*$/.test(x))?.trim();
    assert.ok(size && size !== '5 20', `the watcher's resize did not reach the TTY (stty size: ${size})`);
    // Server side: nothing of the watcher's reached the TTY.
    const diff = await owner('GET', `/api/tasks/${task.id}/diff`);
    const paths = diff.body.files.map((f) => f.path);
    assert.ok(paths.includes('phone.txt'), `the control phone's file is there: ${paths}`);
    assert.ok(!paths.some((p) => p.startsWith('watch-')), `no file of the watcher's: ${paths}`);
    const cast = await owner('GET', `/api/terminals/${termId}/recording`);
    assert.equal(cast.status, 200);
    assert.ok(cast.body.includes('sync-2'), 'the recording has the output');
    assert.ok(!cast.body.includes('WATCHED') && !cast.body.includes('watch-was-here') && !cast.body.includes('watch-raw-frame'), 'the TTY never echoed the watcher’s input');
    assert.equal((await owner('GET', `/api/tasks/${task.id}`)).body.status, 'running');

    // ---- LAN mode off and on: the phone reconnects by itself, missing nothing ----
    await toggle.click();
    await deskPage.waitForFunction(() => document.querySelector('[data-testid="lan-toggle"]')?.getAttribute('aria-checked') === 'false');
    await waitForState(phone, termId, ['reconnecting', 'closed'], 10_000);
    // Output while the phone is away, typed at the desk.
    await deskPage.keyboard.press('Escape');
    await deskPage.goto(`${desk.origin}/#/tasks/${task.id}`);
    await waitForState(deskPage, termId, 'open', 30_000);
    await deskPage.locator(`[data-testid="terminal-${termId}"] .xterm`).click();
    await deskPage.keyboard.type('echo while-away-$((5*5))', { delay: 10 });
    await deskPage.keyboard.press('Enter');
    await waitForBuffer(deskPage, termId, (l) => l.some((x) => /^\s*while-away-25\s*$/.test(x)), 'while-away-25 at the desk');
    await shot(phone, 'mobile-7-reconnecting.png');
    await deskPage.getByTestId('settings-button').click();
    await deskPage.getByTestId('lan-toggle').click();
    await deskPage.waitForFunction(() => document.querySelector('[data-testid="lan-toggle"]')?.getAttribute('aria-checked') === 'true');
    const t1 = Date.now();
    await waitForState(phone, termId, 'open', 20_000);
    await waitForBuffer(phone, termId, (l) => l.some((x) => /^\s*while-away-25\s*$/.test(x)), 'the output made while away');
    t.diagnostic(`the phone reconnected ${Date.now() - t1} ms after LAN mode came back`);
    await shot(phone, 'mobile-7-reconnected.png');

    // ---- the phone sleeps (page hidden for more than 10 s) and wakes up ----
    const setVisibility = (page, state) =>
      page.evaluate((v) => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => v });
        document.dispatchEvent(new Event('visibilitychange'));
      }, state);
    await phone.evaluate((id) => {
      const pane = document.querySelector(`[data-testid="terminal-${id}"]`);
      window.__states = [];
      new MutationObserver(() => window.__states.push(pane.getAttribute('data-state'))).observe(pane, { attributes: true });
    }, termId);
    await setVisibility(phone, 'hidden');
    await deskPage.keyboard.press('Escape');
    await deskPage.locator(`[data-testid="terminal-${termId}"] .xterm`).click();
    await deskPage.keyboard.type('echo while-asleep-$((7*7))', { delay: 10 });
    await deskPage.keyboard.press('Enter');
    await phone.waitForTimeout(10_500);
    await setVisibility(phone, 'visible');
    await waitForState(phone, termId, 'open', 20_000);
    await waitForBuffer(phone, termId, (l) => l.some((x) => /^\s*while-asleep-49\s*$/.test(x)) && l.some((x) => /^\s*control-42\s*$/.test(x)), 'output from before and during the sleep');
    const states = await phone.evaluate(() => window.__states);
    assert.ok(states.includes('reconnecting') && states.at(-1) === 'open', `after waking the phone reconnected: ${states}`);
    await deskPage.getByTestId('settings-button').click();

    // ---- revoke the control phone at the desk: its socket closes at once ----
    const listed = await owner('GET', '/api/devices');
    const mine = listed.body.find((d) => d.name === phoneName);
    assert.ok(mine && mine.role === 'control' && mine.sockets >= 1, JSON.stringify(listed.body));
    await deskPage.getByTestId(`device-${mine.id}`).waitFor();
    await shot(deskPage, 'mobile-8-desk-devices.png');
    await deskPage.getByTestId(`revoke-${mine.id}`).click();
    const t2 = Date.now();
    // The terminal's socket closes, or the whole view is gone already: the events
    // socket (closed by the revocation too) may have sent the page to pairing first.
    await phone.waitForFunction(
      (tid) => {
        const el = document.querySelector(`[data-testid="terminal-${tid}"]`);
        return !el || ['reconnecting', 'closed'].includes(el.getAttribute('data-state'));
      },
      termId,
      { timeout: 5_000 },
    );
    t.diagnostic(`revoked: the phone's socket closed after ${Date.now() - t2} ms`);
    // The phone is signed out: back to the pairing page; its cookie is refused.
    await phone.getByTestId('pair-page').waitFor({ timeout: 15_000 });
    assert.match(await phone.getByTestId('pair-notice').textContent(), /revoked/);
    assert.equal(await phone.evaluate(async () => (await fetch('/api/tasks')).status), 401);
    const after = await owner('GET', '/api/devices');
    assert.ok(!after.body.some((d) => d.id === mine.id), 'the device is gone');
    assert.ok(after.body.some((d) => d.name === watchName), 'the other device stays');
    await shot(phone, 'mobile-9-revoked.png');

    await deskCtx.close();
    await phoneCtx.close();
    await watchCtx.close();
  } finally {
    if (!KEEP) {
      await owner('DELETE', `/api/tasks/${task.id}`);
      // Revoke what this run paired (the control phone already is).
      const left = await owner('GET', '/api/devices');
      for (const d of Array.isArray(left.body) ? left.body : []) {
        if (d.name === phoneName || d.name === watchName) await owner('DELETE', `/api/devices/${d.id}`);
      }
    }
  }
});
