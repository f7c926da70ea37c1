// The dev loop in the browser (issue 16): a message typed from the task view's
// message box starts a dev server in a shell task's sandbox; Ports lists it; Open
// goes through AnyCode's login to the preview's own origin
// (`http://<port>-<task>.localhost:<port>`) and shows the dev server's page, which
// is screenshotted. The same origin without its cookie (a fresh browser) gets 401.
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
import { CHROMIUM, CHROMIUM_ARGS, shot, BASE_URL, TOKEN, launchContext, api, openShellTask } from './common.mjs';

const REPO = process.env.ANYCODE_E2E_REPO;
const missing = [!(BASE_URL && TOKEN) && 'ANYCODE_URL and ANYCODE_TOKEN', !REPO && 'ANYCODE_E2E_REPO'].filter(Boolean);
const DEV_PORT = 5178;
// A one-file dev server: an HTML page that says where it runs.
const DEV_SERVER = `node -e "require('http').createServer((q,r)=>{r.setHeader('content-type','text/html');r.end('<title>dev server</title><h1 id=hello>Hello from the sandbox</h1><p id=url>'+q.url+'</p>')}).listen(${DEV_PORT})" &`;

let context;
let closeContext;

before(async () => {
  if (missing.length) return;
  ({ context, close: closeContext } = await launchContext('anycode-e2e-preview-', { chromium, fs, os, path }));
});

after(async () => {
  await closeContext?.();
});

test('a dev server started by a message opens as a preview from Ports', { timeout: 180_000 }, async (t) => {
  if (missing.length) {
    t.skip(`set ${missing.join(' and ')}`);
    return;
  }
  const { id, page } = await openShellTask(context, fs, REPO, 'E2E preview', 'preview');
  try {

    // The message box types the command line into the shell.
    await page.getByTestId('message-input').fill(DEV_SERVER);
    await page.getByTestId('message-send').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="message-input"]')?.value === '', null, { timeout: 10_000 });

    // Ports: refreshed until the dev server listens.
    await page.getByTestId('task-ports').click();
    const open = page.getByTestId(`port-open-${DEV_PORT}`);
    for (let i = 0; i < 40 && !(await open.count()); i++) {
      await page.waitForTimeout(250);
      await page.getByTestId('ports-refresh').click();
    }
    assert.ok(await open.count(), 'the dev server is listed');
    assert.match(await page.textContent('[data-testid="ports-menu"]'), new RegExp(`${DEV_PORT}\\s*·\\s*node`));
    await shot(page, 'preview-1-ports.png');

    const [preview] = await Promise.all([context.waitForEvent('page'), open.click()]);
    await preview.waitForSelector('#hello', { timeout: 20_000 });
    const u = new URL(preview.url());
    assert.equal(u.hostname, `${DEV_PORT}-${id}.localhost`);
    assert.equal(await preview.textContent('#hello'), 'Hello from the sandbox');
    await preview.goto(`${u.origin}/some/path?q=1`);
    assert.equal(await preview.textContent('#url'), '/some/path?q=1');
    await shot(preview, 'preview-2-dev-server.png');

    // Without the preview's cookie (another browser): 401.
    const other = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    try {
      const p2 = await other.newPage();
      const r = await p2.goto(u.origin + '/');
      assert.equal(r.status(), 401);
    } finally {
      await other.close();
    }
  } finally {
    await api('DELETE', `/api/tasks/${id}`);
  }
});
