// The terminals' registry and the settings they share, without xterm.js: the page
// loads this at start (App disposes the sessions of terminals that are gone and sets
// read-only; Settings changes the scrollback and renderer). The terminals themselves
// (session.ts: xterm.js and its addons) load with the first task view, so a window
// on the task list never parses them.

import type { Terminal } from '@xterm/xterm';

/** What the registry asks of a terminal session (`TermSession` in session.ts). */
export interface RegisteredSession {
  dispose(): void;
  /** Applies the shared font size. */
  applyFontSize(): void;
  /** Applies the shared read-only flag. */
  applyReadOnly(): void;
  /** Applies the shared scrollback length. */
  applyScrollback(): void;
  /** Reconnects after sleep or a network change (`force`: even a socket that looks open). */
  wake(force: boolean): void;
}

declare global {
  interface Window {
    __anycode?: { terminals: Map<string, Terminal> };
  }
}

/** The test hook: each terminal's xterm by terminal id (`window.__anycode.terminals`). */
export function testRegistry(): Map<string, Terminal> {
  if (!window.__anycode) window.__anycode = { terminals: new Map() };
  return window.__anycode.terminals;
}

// ---- registry ----

const sessions = new Map<string, RegisteredSession>();

/** The session of terminal `id`, made with `make` when there is none yet. */
export function sessionOf<S extends RegisteredSession>(id: string, make: () => S): S {
  let s = sessions.get(id);
  if (!s) {
    s = make();
    sessions.set(id, s);
  }
  // Only session.ts registers sessions, all of one class.
  return s as S;
}

export function disposeSession(id: string) {
  const s = sessions.get(id);
  if (s) {
    s.dispose();
    sessions.delete(id);
  }
}

export function disposeSessions(ids: Iterable<string>) {
  for (const id of ids) disposeSession(id);
}

export function disposeAllSessions() {
  disposeSessions([...sessions.keys()]);
}

// ---- settings shared by every terminal ----

const FONT_KEY = 'anycode.fontSize';
export const FONT_MIN = 8;
export const FONT_MAX = 24;
let fontSize = (() => {
  try {
    const v = Number(localStorage.getItem(FONT_KEY));
    return v >= FONT_MIN && v <= FONT_MAX ? v : 13;
  } catch {
    return 13;
  }
})();
let readOnly = false;

// Lines of scrollback each terminal keeps (xterm.js holds them in the page: about
// 12 bytes per cell, so 5,000 lines of 160 columns are about 10 MB per full tab).
// `localStorage['anycode.scrollback']` overrides the default. The server keeps its
// own replay buffer per terminal, independent of this.
const SCROLLBACK_KEY = 'anycode.scrollback';
export const SCROLLBACK_DEFAULT = 5000;
export const SCROLLBACK_MIN = 100;
export const SCROLLBACK_MAX = 100_000;
let scrollback = (() => {
  try {
    const v = Number(localStorage.getItem(SCROLLBACK_KEY) ?? NaN);
    return Number.isInteger(v) && v >= SCROLLBACK_MIN && v <= SCROLLBACK_MAX ? v : SCROLLBACK_DEFAULT;
  } catch {
    return SCROLLBACK_DEFAULT;
  }
})();

/**
 * `localStorage['anycode.eagerTerminals'] = '1'` draws every terminal as soon as its
 * tab exists, shown or not (the behaviour before lazy opening; for measurements).
 */
export const EAGER_OPEN = (() => {
  try {
    return localStorage.getItem('anycode.eagerTerminals') === '1';
  } catch {
    return false;
  }
})();

// WebGL can fail (no GPU, context limit); after the first failure use the DOM renderer.
// `localStorage['anycode.renderer']` set to `'dom'` or `'webgl'` chooses outright (for
// benchmarks). Otherwise touch devices (phones, tablets) use the DOM renderer too: mobile
// browsers drop WebGL contexts when the page is put away, and a phone's terminal
// output is small. So does WebGL emulated on the CPU (SwiftShader, llvmpipe): in
// `anycode-bench --browser` a flood reached xterm.js through it at a fraction of the
// DOM renderer's rate, as the emulation takes the cores the flood needs.
// The probe runs when a terminal is first shown, not at load: a WebGL context makes
// the web process load the GL driver (tens of MB; Mesa's llvmpipe under Xvfb), which
// a window with no terminal open does not need.
let webglBroken: boolean | null = null;

/** Whether terminals shown from now on use the DOM renderer (probes once, see above). */
export function webglUnusable(): boolean {
  if (webglBroken === null) {
    try {
      const chosen = localStorage.getItem('anycode.renderer');
      if (chosen === 'dom' || chosen === 'webgl') webglBroken = chosen === 'dom';
      else if (typeof matchMedia === 'function' && matchMedia('(pointer: coarse)').matches) webglBroken = true;
      // WebKit off a Mac (WebKitGTK: the desktop app on Linux) masks the renderer, so a
      // probe cannot tell; skipping it also spares loading the GL driver.
      else if (maskedWebkit()) webglBroken = true;
      else webglBroken = softwareWebgl();
    } catch {
      webglBroken = false;
    }
  }
  return webglBroken;
}

/** WebKit that is not Safari on a Mac or iOS: WebKitGTK or WPE (no Chromium, no Firefox). */
function maskedWebkit(): boolean {
  const ua = navigator.userAgent;
  return /AppleWebKit/.test(ua) && !/Chrome|Chromium|Edg|Firefox/.test(ua) && !/Mac|iPhone|iPad/.test(navigator.platform);
}

/**
 * Whether this browser's WebGL is emulated on the CPU (or missing), or cannot be told
 * apart from it: WebKit (the desktop app's webview on Linux, WebKitGTK 2.50) reports
 * every renderer as "Apple GPU", Mesa's llvmpipe under Xvfb included, and ignores
 * `failIfMajorPerformanceCaveat`; off a Mac that name is a mask, so such a browser
 * gets the DOM renderer.
 */
function softwareWebgl(): boolean {
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return true;
  try {
    const info = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    const masked = /^apple gpu$/i.test(renderer) && !/mac|iphone|ipad/i.test(navigator.platform);
    return masked || /swiftshader|llvmpipe|softpipe|software/i.test(renderer);
  } finally {
    // Browsers cap live contexts; give this probe's back at once.
    gl.getExtension('WEBGL_lose_context')?.loseContext();
  }
}


/** Terminals that fail to load the WebGL renderer: the DOM renderer from now on. */
export function markWebglBroken() {
  webglBroken = true;
}

export type RendererChoice = 'auto' | 'dom' | 'webgl';

/** The renderer chosen in `localStorage['anycode.renderer']` (`auto` when unset). */
export function getRendererChoice(): RendererChoice {
  try {
    const v = localStorage.getItem('anycode.renderer');
    return v === 'dom' || v === 'webgl' ? v : 'auto';
  } catch {
    return 'auto';
  }
}

/** Keeps `value` under `key` in localStorage (`null` removes it); a browser that
 * refuses (private mode) keeps the setting for this page only. */
function remember(key: string, value: string | null) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    /* private mode */
  }
}

/** Chooses the renderer of terminals drawn from now on (kept in localStorage). */
export function setRendererChoice(choice: RendererChoice) {
  remember('anycode.renderer', choice === 'auto' ? null : choice);
  webglBroken = null;
}

export function getScrollback(): number {
  return scrollback;
}

/** Sets the scrollback of every terminal, in lines (kept in localStorage; clamped). */
export function setScrollback(lines: number) {
  scrollback = Math.max(SCROLLBACK_MIN, Math.min(SCROLLBACK_MAX, Math.round(lines)));
  remember(SCROLLBACK_KEY, String(scrollback));
  sessions.forEach((s) => s.applyScrollback());
}

export function getFontSize(): number {
  return fontSize;
}

/** Sets the font size of every terminal (kept in localStorage). */
export function setFontSize(size: number) {
  fontSize = Math.max(FONT_MIN, Math.min(FONT_MAX, Math.round(size)));
  remember(FONT_KEY, String(fontSize));
  sessions.forEach((s) => s.applyFontSize());
}

/** Whether this device only watches (no input, no resizes). */
export function isReadOnly(): boolean {
  return readOnly;
}

/** Watch-only devices: no input, no resizes (the server enforces it as well). */
export function setReadOnly(ro: boolean) {
  readOnly = ro;
  sessions.forEach((s) => s.applyReadOnly());
}

// Phones sleep: when the page comes back after a while (or the network does),
// reconnect every terminal; the server replays the scrollback. Only touch devices
// reconnect a socket that still looks open (a phone's often is dead after sleep);
// at a desk that would only redraw the screen after every tab switch.
const SLEEP_MS = 10_000;
const COARSE = typeof matchMedia === 'function' && matchMedia('(pointer: coarse)').matches;
let hiddenAt = 0;
if (typeof document !== 'undefined') {
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') {
      hiddenAt = Date.now();
    } else {
      const slept = COARSE && hiddenAt > 0 && Date.now() - hiddenAt >= SLEEP_MS;
      hiddenAt = 0;
      sessions.forEach((s) => s.wake(slept));
    }
  });
  window.addEventListener('online', () => sessions.forEach((s) => s.wake(false)));
  window.addEventListener('pageshow', (e) => {
    if ((e as PageTransitionEvent).persisted) sessions.forEach((s) => s.wake(true));
  });
}

// Make the test hook exist even before the first terminal opens.
testRegistry();
