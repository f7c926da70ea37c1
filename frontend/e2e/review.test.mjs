// Review comments in the browser (issue 16): in a shell task's Changes panel the
// owner clicks the gutter of two lines of a new file, writes a comment on each
// (Ctrl+Enter), and sends them with **Send to agent**: the shell gets them typed as
// one message. A commit that changes the first line then shows it `addressed`,
// the other still `sent`. Screenshots of each step.
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
import { shot, BASE_URL, TOKEN, launchContext, api, openShellTask } from './common.mjs';

const REPO = process.env.ANYCODE_E2E_REPO;
const missing = [!(BASE_URL && TOKEN) && 'ANYCODE_URL and ANYCODE_TOKEN', !REPO && 'ANYCODE_E2E_REPO'].filter(Boolean);

let context;
let closeContext;

before(async () => {
  if (missing.length) return;
  ({ context, close: closeContext } = await launchContext('anycode-e2e-review-', { chromium, fs, os, path }));
});

after(async () => {
  await closeContext?.();
});

/** Types a command line into the shell through the message box. */
async function run(page, line) {
  await page.getByTestId('message-input').fill(line);
  await page.getByTestId('message-send').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="message-input"]')?.value === '', null, { timeout: 10_000 });
}

/** Refreshes the Changes panel until `cond()` holds. */
async function refreshUntil(page, cond, what) {
  const deadline = Date.now() + 30_000;
  while (!(await cond())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await page.getByTestId('diff-refresh').click();
    await page.waitForTimeout(700);
  }
}

async function comment(page, line, text) {
  // The new-side line number cell of that line: a click opens the comment box.
  const gutter = page.locator('.diff-file.open td.diff-gutter-insert', { hasText: new RegExp(`^${line}$`) }).first();
  await gutter.click();
  const input = page.getByTestId('review-input');
  await input.fill(text);
  await input.press('Control+Enter');
  await page.getByTestId(`review-comment-${line}`).waitFor({ timeout: 10_000 });
}

test('review comments go to the agent as one message and show addressed after a commit', { timeout: 180_000 }, async (t) => {
  if (missing.length) {
    t.skip(`set ${missing.join(' and ')}`);
    return;
  }
  const { id, page } = await openShellTask(context, fs, REPO, 'E2E review', 'review');
  try {

    await run(page, "printf 'one\\ntwo\\nthree\\nfour\\nfive\\nsix\\nseven\\neight\\n' > review.txt");
    const row = page.getByTestId('diff-file-review.txt');
    await refreshUntil(page, () => row.isVisible(), 'review.txt in the Changes panel');
    await row.click();
    await page.locator('.diff-file.open .diff-code-insert', { hasText: 'eight' }).first().waitFor({ timeout: 10_000 });

    await comment(page, 2, 'Spell the number out in full');
    await comment(page, 8, 'Keep this line as it is');
    assert.equal(await page.getByTestId('review-comment-2').getAttribute('data-state'), 'draft');
    assert.match(await page.getByTestId('review-bar').textContent(), /2 review comments · 2 not sent/);
    await shot(page, 'review-1-comments.png');

    // Send to agent: one message, typed at once into the shell.
    await page.getByTestId('review-send').click();
    await page.locator('[data-testid="review-comment-2"][data-state="sent"]').waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId('review-comment-8').getAttribute('data-state'), 'sent');
    assert.equal(await page.getByTestId('review-send').isDisabled(), true, 'nothing left to send');
    const messages = await api('GET', `/api/tasks/${id}/messages`);
    assert.deepEqual(messages.body, [], 'typed at once to a shell, not queued');

    // The agent's commit changes line 2: that comment is addressed, line 8's not.
    await run(page, "sed -i '2s/.*/two, in full/' review.txt && git add review.txt && git -c user.name=E2E -c user.email=e2e@example.com commit -qm review");
    await refreshUntil(
      page,
      async () => (await page.getByTestId('review-comment-2').getAttribute('data-state').catch(() => null)) === 'addressed',
      'the comment on line 2 to show addressed',
    );
    assert.equal(await page.getByTestId('review-comment-8').getAttribute('data-state'), 'sent');
    assert.match(await page.getByTestId('review-bar').textContent(), /1 addressed/);
    await shot(page, 'review-2-addressed.png');
  } finally {
    await api('DELETE', `/api/tasks/${id}`);
  }
});
