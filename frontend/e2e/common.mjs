// What the browser tests share: where screenshots go, which Chromium runs and how.
// Not a test file itself (`node --test e2e/` runs only *.test.mjs).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Screenshots land here: ANYCODE_ARTIFACTS, else e2e/artifacts. */
export const ARTIFACTS = path.resolve(
  process.env.ANYCODE_ARTIFACTS || path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts'),
);

/** Debian's chromium (Playwright's own browsers cannot be downloaded here). */
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Headless, no sandbox (root in CI), no traffic of Chromium's own. */
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

/** Saves a screenshot of `page` as ARTIFACTS/name and prints where. */
export async function shot(page, name, opts = {}) {
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, ...opts });
  console.log(`screenshot: ${file}`);
}

/** The server under test: ANYCODE_URL is its base (`http://127.0.0.1:PORT`). */
export const BASE_URL = (process.env.ANYCODE_URL || '').replace(/\/+$/, '');

/** The access token, for this test's own API calls (`Authorization: Bearer`). */
export const TOKEN = process.env.ANYCODE_TOKEN || '';

/**
 * A new one-time login link (`/login?code=…`) from `POST /api/login-code`: each
 * link logs a browser in once, so every page that logs in asks for its own.
 */
export async function loginUrl() {
  const at = `${BASE_URL}/api/login-code`;
  const r = await fetch(at, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } }).catch((e) => {
    throw new Error(`POST ${at} failed: ${e.cause?.message ?? e.message}`);
  });
  if (!r.ok) throw new Error(`POST /api/login-code answered ${r.status}: ${await r.text()}`);
  return (await r.json()).url;
}

/**
 * A headless Chromium with a profile of its own (removed by the returned
 * `close`), its viewport `width`×`height`.
 */
export async function launchContext(prefix, { chromium, fs, os, path }, width = 1440, height = 900) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width, height } });
  const close = async () => {
    await context.close().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { context, close };
}

/**
 * `api(method, path, body?)` → `{status, body}`: a JSON request from inside `page`
 * (its session cookie goes along).
 */
export function pageApi(page) {
  return (method, p, body) =>
    page.evaluate(
      async ([m, u, b]) => {
        const r = await fetch(u, {
          method: m,
          credentials: 'same-origin',
          headers: b ? { 'Content-Type': 'application/json' } : {},
          body: b ? JSON.stringify(b) : undefined,
        });
        const text = await r.text();
        return { status: r.status, body: text ? JSON.parse(text) : null };
      },
      [method, p, body],
    );
}

/** The project of the repository at `repo`: added now, or found (another e2e file may have added it). */
export async function ensureProject(api, repo, realpath) {
  let r = await api('POST', '/api/projects', { path: repo });
  if (r.status !== 201) {
    r = await api('GET', '/api/projects');
    r = { body: r.body.find((p) => p.path === realpath(repo)) };
  }
  return r.body;
}

/** `api(method, path, body?)` → `{status, body}`: a JSON request with the token (`Authorization: Bearer`). */
export async function api(method, p, body) {
  const r = await fetch(BASE_URL + p, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** The id of the project of the repository at `repo` (added now when missing); `fs` is node:fs. */
export async function repoProjectId(fs, repo) {
  const real = fs.realpathSync(repo);
  const find = async () => (await api('GET', '/api/projects')).body.find((p) => fs.existsSync(p.path) && fs.realpathSync(p.path) === real);
  if (!(await find())) await api('POST', '/api/projects', { path: repo });
  const p = await find();
  if (!p) throw new Error(`the project of ${repo} is not listed`);
  return p.id;
}

/**
 * A new shell task titled `title` on a branch `anycode/e2e-<slug>-<time>` in the
 * project of `repo`, opened in a new page of `context` once it runs: `{id, page}`
 * (the task is deleted again when the page fails).
 */
export async function openShellTask(context, fs, repo, title, slug) {
  const pid = await repoProjectId(fs, repo);
  const created = await api('POST', `/api/projects/${pid}/tasks`, { title, agent: 'shell', branch: `anycode/e2e-${slug}-${Date.now().toString(36)}` });
  if (created.status !== 201) throw new Error(`creating the task: ${created.status} ${JSON.stringify(created.body)}`);
  const id = created.body.id;
  try {
    const page = await context.newPage();
    await page.goto(await loginUrl(), { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('.app[data-events="live"]', { timeout: 20_000 });
    await page.click(`[data-testid="task-item-${id}"]`);
    await page.waitForSelector('[data-testid="task-status"][data-status="running"]', { timeout: 20_000 });
    return { id, page };
  } catch (e) {
    await api('DELETE', `/api/tasks/${id}`);
    throw e;
  }
}
