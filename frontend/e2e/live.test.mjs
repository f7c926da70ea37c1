// Live task states in the browser (issue 8), against a running `anycode serve`:
// a shell task created, stopped, started and deleted by another client (this test's
// own HTTP calls with the token) shows up in the open page over WS /ws/events,
// without a reload and without polling GET /api/tasks.
//
// Then the attention UI: the server cannot put a task into `needs_approval`, `queued`
// or `paused` without an agent's hooks and the governor, so a second page gets
// those states injected into its real events socket (Playwright's routeWebSocket
// forwards the server's frames and adds one changed task). That checks the
// rendering — pills, the requested tool and its input, Allow/Deny, the keyboard
// shortcut, usage, queue position, Resume, the tab's count — and that Allow goes to
// POST /api/tasks/{id}/approval on the real server, whose answer the page shows.
//
//   ANYCODE_URL=http://127.0.0.1:7878 ANYCODE_TOKEN=…  ANYCODE_E2E_REPO=/path/to/repo
//   ANYCODE_ARTIFACTS=dir  CHROMIUM=/usr/bin/chromium
//
// Run: npm run e2e   (node --test e2e/)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, shot, BASE_URL, TOKEN, loginUrl } from './common.mjs';

const URL_WITH_TOKEN = BASE_URL && TOKEN ? BASE_URL : '';
const REPO = process.env.ANYCODE_E2E_REPO;
const missing = [!URL_WITH_TOKEN && 'ANYCODE_URL and ANYCODE_TOKEN', !REPO && 'ANYCODE_E2E_REPO'].filter(Boolean);

let context;
let userDataDir;
const browserLog = [];

before(async () => {
  if (missing.length) return;
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anycode-e2e-live-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 900 },
  });
});

after(async () => {
  if (browserLog.length) console.log(`browser log:\n  ${browserLog.slice(-40).join('\n  ')}`);
  await context?.close().catch(() => {});
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
});

function watchLog(page, name) {
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') browserLog.push(`[${name} console.${m.type()}] ${m.text()}`);
  });
  page.on('pageerror', (e) => browserLog.push(`[${name} pageerror] ${e.message}`));
}


// This test's own client: the token from the link, as `Authorization: Bearer`.
const base = () => new URL(URL_WITH_TOKEN).origin;
const token = () => TOKEN;
async function api(method, p, body) {
  const r = await fetch(base() + p, {
    method,
    headers: { Authorization: `Bearer ${token()}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function projectId() {
  const repoReal = fs.realpathSync(REPO);
  const find = async () =>
    (await api('GET', '/api/projects')).body.find((p) => {
      try {
        return fs.realpathSync(p.path) === repoReal;
      } catch {
        return p.path === REPO;
      }
    });
  let p = await find();
  if (!p) {
    const r = await api('POST', '/api/projects', { path: REPO });
    // Another test file may have added it in the meantime.
    assert.ok(r.status === 201 || r.status === 409, JSON.stringify(r));
    p = await find();
  }
  assert.ok(p, 'the project is listed');
  return p.id;
}

/** Opens the app in a new page; resolves when its events socket is live. */
async function openApp(name, setup) {
  const page = await context.newPage();
  watchLog(page, name);
  if (setup) await setup(page);
  await page.goto(await loginUrl(), { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('.app[data-events="live"]', { timeout: 20_000 });
  return page;
}

/** Waits until `fn()` in the page is true; returns ms waited. */
async function until(page, what, fn, arg, timeout = 20_000) {
  const t0 = Date.now();
  await page.waitForFunction(fn, arg, { timeout, polling: 50 }).catch((e) => {
    throw new Error(`timed out waiting for ${what}: ${e.message}`);
  });
  return Date.now() - t0;
}

test('task states arrive live over /ws/events, without reload or polling', { timeout: 300_000 }, async (t) => {
  if (missing.length) {
    t.skip(`set ${missing.join(' and ')}`);
    return;
  }
  const pid = await projectId();
  const page = await openApp('live');
  // Every GET /api/tasks this page makes from now on (the polling fallback).
  const polls = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (r.method() === 'GET' && u.pathname === '/api/tasks') polls.push(Date.now());
  });
  const navigations = [];
  page.on('framenavigated', (f) => f === page.mainFrame() && navigations.push(f.url()));
  await page.evaluate(() => {
    window.__marker = 'same page';
  });

  // Created by another client: appears in the list, running.
  const branch = `anycode/e2e-live-${Date.now().toString(36)}`;
  const created = await api('POST', `/api/projects/${pid}/tasks`, { title: 'E2E live', agent: 'shell', branch });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  t.diagnostic(`task ${id}`);
  const item = `[data-testid="task-item-${id}"]`;
  const appeared = await until(page, 'the new task in the list', (s) => document.querySelector(s)?.dataset.status === 'running', item);
  t.diagnostic(`created → listed running after ${appeared} ms`);
  assert.equal((await page.textContent(`[data-testid="task-item-status-${id}"]`)).trim(), 'Running');

  // Open it: the task view's pill says Running.
  await page.click(item);
  await page.waitForSelector('[data-testid="task-status"][data-status="running"]', { timeout: 10_000 });
  await shot(page, 'live-1-running.png');

  // Stopped by the other client: the pill and the list say Stopped, at once.
  let t0 = Date.now();
  const stopped = await api('POST', `/api/tasks/${id}/stop`);
  assert.equal(stopped.status, 200, JSON.stringify(stopped.body));
  const apiMs = Date.now() - t0;
  const pollsBefore = polls.length;
  t0 = Date.now();
  await until(page, 'Stopped in the task view', () => document.querySelector('[data-testid="task-status"]')?.dataset.status === 'stopped');
  const shownMs = Date.now() - t0;
  t.diagnostic(`stop: the API call took ${apiMs} ms, the page showed Stopped ${shownMs} ms after it returned`);
  assert.equal((await page.textContent('[data-testid="task-status"]')).trim(), 'Stopped');
  assert.equal(await page.getAttribute(item, 'data-status'), 'stopped');
  assert.ok(await page.isVisible('[data-testid="task-start"]'), 'Start is offered');
  await shot(page, 'live-2-stopped.png');

  // Started again by the other client.
  const started = await api('POST', `/api/tasks/${id}/start`);
  assert.equal(started.status, 200, JSON.stringify(started.body));
  await until(page, 'Running again', () => document.querySelector('[data-testid="task-status"]')?.dataset.status === 'running');

  // Deleted by the other client: gone from the list; the view says so.
  const del = await api('DELETE', `/api/tasks/${id}`);
  assert.equal(del.status, 204);
  await until(page, 'the task gone from the list', (s) => !document.querySelector(s), item);
  await page.getByText('Task not found').waitFor({ timeout: 5_000 });
  await shot(page, 'live-3-deleted.png');

  // All of it came over the socket: no GET /api/tasks, no reload, one connection.
  assert.equal(polls.length, pollsBefore, 'no polling while the socket is live');
  assert.equal(polls.length, 0, `GET /api/tasks requests while live: ${polls.length}`);
  assert.equal(await page.evaluate(() => window.__marker), 'same page', 'no reload');
  assert.equal(navigations.length, 1, `navigations: ${navigations.join(', ')}`);
  const ev = await page.evaluate(() => window.__anycodeEvents);
  t.diagnostic(`events socket: ${JSON.stringify(ev)}`);
  assert.equal(ev.connects, 1);
  assert.equal(ev.snapshots, 1);

  // The new-task dialog: agents (GET /api/agents, or claude and shell without it),
  // Claude's permission mode with what it means, caps checked before sending.
  await page.click(`[data-testid="new-task-${pid}"]`);
  await page.getByTestId('new-task-dialog').waitFor();
  const agents = await page.$$eval('[data-testid="task-agent"] option', (os) => os.map((o) => o.value));
  assert.ok(agents.includes('claude') && agents.includes('shell'), agents.join(','));
  await page.getByTestId('task-title').fill('Dialog only');
  await page.getByTestId('task-agent').selectOption('claude');
  await page.getByTestId('task-permission-mode').selectOption('plan');
  assert.match(await page.textContent('[data-testid="task-permission-hint"]'), /plans only/i);
  await page.click('[data-testid="task-advanced"] summary');
  await page.getByTestId('task-cpus').fill('lots');
  assert.equal(await page.isEnabled('[data-testid="task-submit"]'), false, 'a bad cap blocks Create');
  await page.getByTestId('task-cpus').fill('1.5');
  await page.getByTestId('task-memory').fill('2048');
  assert.equal(await page.isEnabled('[data-testid="task-submit"]'), true);
  await shot(page, 'live-0-new-task-dialog.png');
  await page.getByTestId('task-agent').selectOption('shell');
  assert.equal(await page.getByTestId('task-permission-mode').count(), 0, 'permission mode is for Claude Code only');
  await page.keyboard.press('Escape');
  await page.close();
});

test('attention states: approval with tool and input, Allow/Deny, queue, paused, usage', { timeout: 300_000 }, async (t) => {
  if (missing.length) {
    t.skip(`set ${missing.join(' and ')}`);
    return;
  }
  const pid = await projectId();
  const created = await api('POST', `/api/projects/${pid}/tasks`, {
    title: 'E2E approval',
    agent: 'shell',
    branch: `anycode/e2e-approval-${Date.now().toString(36)}`,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const real = created.body;
  const id = real.id;

  // The page's events socket goes through this route: the server's frames pass,
  // and `inject(task)` adds a `task` frame as the server would send it.
  let route = null;
  const page = await openApp('attention', (p) =>
    p.routeWebSocket(/\/ws\/events$/, (ws) => {
      route = ws;
      const server = ws.connectToServer();
      server.onMessage((m) => ws.send(m));
      ws.onMessage((m) => server.send(m));
    }),
  );
  assert.ok(route, 'the events socket went through the route');
  const inject = (task) => route.send(JSON.stringify({ type: 'task', task }));
  const since = new Date().toISOString();
  const usage = { cpu_percent: 37.4, memory_bytes: 312 * 1048576, memory_limit_bytes: 512 * 1048576, at: since };
  const command = 'rm -rf build && npm test -- --watch=false';
  inject({
    ...real,
    status: 'needs_approval',
    attention: { tool: 'Bash', input: { command, description: 'Clean build and run the tests' }, since },
    usage,
  });

  // The list shows the request with the command and Allow/Deny.
  const card = page.locator(`nav.sidebar [data-testid="approval-${id}"]`);
  await card.waitFor({ timeout: 10_000 });
  assert.equal((await card.getByTestId('approval-tool').textContent()).trim(), 'Bash');
  assert.equal((await card.getByTestId('approval-input').textContent()).trim(), command);
  assert.ok(await card.getByTestId('approve-allow').isVisible());
  assert.ok(await card.getByTestId('approve-deny').isVisible());
  assert.equal((await page.textContent(`[data-testid="task-item-status-${id}"]`)).trim(), 'Needs approval');
  assert.match(await page.textContent(`[data-testid="usage-${id}"]`), /37% · 312M/);
  // The tab says one task needs you.
  assert.equal(await page.title(), '(1) AnyCode');

  // The task view: the pill, usage, the request with shortcuts in the titles.
  await page.click(`[data-testid="task-item-${id}"]`);
  const view = page.getByTestId('approval');
  await view.waitFor({ timeout: 10_000 });
  assert.equal((await page.textContent('[data-testid="task-status"]')).trim(), 'Needs approval');
  assert.match(await page.textContent('[data-testid="task-usage"]'), /CPU\s*37%.*Mem\s*312 MiB of 512 MiB/);
  assert.equal((await view.getByTestId('approval-input').textContent()).trim(), command);
  assert.match(await view.getByTestId('approve-allow').getAttribute('title'), /\(A\)/);
  assert.match(await view.getByTestId('approve-deny').getAttribute('title'), /\(D\)/);
  await shot(page, 'live-4-needs-approval.png');

  // `a` (focus outside the terminal) allows: the request reaches the real server.
  // Without the approvals endpoint (or with nothing pending, as here) the page says why.
  const answered = page.waitForResponse((r) => r.url().endsWith(`/api/tasks/${id}/approval`) && r.request().method() === 'POST');
  await page.locator('.task-title').click();
  await page.keyboard.press('a');
  const resp = await answered;
  const body = await resp.json().catch(() => null);
  t.diagnostic(`POST /approval → ${resp.status()} ${JSON.stringify(body)}`);
  assert.deepEqual(JSON.parse(resp.request().postData()), { decision: 'allow' });
  assert.ok([404, 409].includes(resp.status()), `no approval is pending on the server: ${resp.status()}`);
  const err = page.getByTestId('approval-error').last();
  await err.waitFor({ timeout: 5_000 });
  const errText = await err.textContent();
  assert.match(errText, resp.status() === 404 ? /cannot take approvals.*404/ : /Nothing to approve/, errText);
  await shot(page, 'live-5-approval-error.png');

  // `d` opens Deny with a message field; Enter sends the message along.
  await page.locator('.task-title').click();
  await page.keyboard.press('d');
  const msg = page.getByTestId('deny-message');
  await msg.waitFor({ timeout: 5_000 });
  assert.ok(await msg.evaluate((el) => el === document.activeElement), 'the message field has the focus');
  // Typing `a` in the field must not allow.
  await msg.type('use a clean checkout instead');
  const denied = page.waitForResponse((r) => r.url().endsWith(`/api/tasks/${id}/approval`));
  await msg.press('Enter');
  const dresp = await denied;
  assert.deepEqual(JSON.parse(dresp.request().postData()), { decision: 'deny', message: 'use a clean checkout instead' });

  // Other states: queued with its position, paused with Resume, waiting for input.
  inject({ ...real, status: 'queued', queue_position: 2, attention: null, usage: null });
  await until(page, 'Queued (2nd)', () => document.querySelector('[data-testid="task-status"]')?.textContent?.trim() === 'Queued (2nd)');
  assert.match(await page.textContent('[data-testid="task-queue"]'), /2nd in the queue/);
  assert.equal(await page.title(), 'AnyCode');
  inject({ ...real, status: 'paused', attention: null, usage: null });
  await page.getByTestId('task-resume').waitFor({ timeout: 5_000 });
  assert.equal((await page.textContent('[data-testid="task-status"]')).trim(), 'Paused');
  await shot(page, 'live-6-paused.png');
  inject({ ...real, status: 'waiting_input', attention: { message: 'Claude is waiting for your input', since }, usage });
  await until(page, 'Waiting for input', () => document.querySelector('[data-testid="task-status"]')?.textContent?.trim() === 'Waiting for input');
  assert.match(await page.textContent('[data-testid="attention-note"]'), /waiting for your input/);
  inject({ ...real, status: 'done', attention: null, usage });
  await until(page, 'Done', () => document.querySelector('[data-testid="task-status"]')?.textContent?.trim() === 'Done');

  // The phone: the task list shows the request and its buttons.
  inject({ ...real, status: 'needs_approval', attention: { tool: 'Edit', input: { file_path: '/workspace/src/app.ts', old_string: 'a', new_string: 'b' }, since }, usage });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByTestId('mobile-back').click();
  const phoneCard = page.locator(`[data-testid="mobile-tasks"] [data-testid="approval-${id}"]`);
  await phoneCard.waitFor({ timeout: 10_000 });
  assert.equal((await phoneCard.getByTestId('approval-input').textContent()).trim(), '/workspace/src/app.ts');
  assert.ok(await phoneCard.getByTestId('approve-allow').isVisible());
  assert.equal((await page.textContent(`[data-testid="mobile-status-${id}"]`)).trim(), 'Needs approval');
  await shot(page, 'live-7-phone-approval.png');

  // The real state comes back with the next real event (here: deleting the task).
  await page.close();
  const del = await api('DELETE', `/api/tasks/${id}`);
  assert.equal(del.status, 204);
});
