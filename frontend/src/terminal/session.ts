// One terminal tab: an xterm instance plus its WebSocket to /ws/terminals/{id}.
//
// Sessions live in a registry outside React, so switching tabs (or tasks) never
// disposes the xterm: its element is simply moved/hidden, and switching back is instant.

import { Terminal, type ITheme } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { WebglAddon } from '@xterm/addon-webgl';
import { terminalWsUrl } from '../api';
import { matchShortcut } from '../shortcuts';

const ACK_THRESHOLD = 32768;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 5000;

export const TERMINAL_THEME: ITheme = {
  background: '#0b0e14',
  foreground: '#d6deeb',
  cursor: '#a78bfa',
  cursorAccent: '#0b0e14',
  selectionBackground: '#3b3f5c',
  black: '#1b1f27',
  red: '#f0737a',
  green: '#8fd16f',
  yellow: '#e6c07b',
  blue: '#6cb6ff',
  magenta: '#c792ea',
  cyan: '#56d4dd',
  white: '#c8d0dc',
  brightBlack: '#5c6773',
  brightRed: '#ff8f95',
  brightGreen: '#a9e58b',
  brightYellow: '#ffd68a',
  brightBlue: '#8cc8ff',
  brightMagenta: '#dcb0ff',
  brightCyan: '#7ee8f0',
  brightWhite: '#f5f7fa',
};

export const TERMINAL_FONT =
  '"JetBrains Mono", "Fira Code", "Cascadia Code", "SF Mono", Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace';

export type ConnState = 'connecting' | 'open' | 'reconnecting' | 'exited' | 'closed';

export interface SessionSnapshot {
  state: ConnState;
  exitCode: number | null | undefined;
  title: string | null;
}

declare global {
  interface Window {
    __anycode?: { terminals: Map<string, Terminal> };
  }
}

function testRegistry(): Map<string, Terminal> {
  if (!window.__anycode) window.__anycode = { terminals: new Map() };
  return window.__anycode.terminals;
}

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
function webglUnusable(): boolean {
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

export class TermSession {
  readonly term: Terminal;
  readonly element: HTMLDivElement;
  private fit = new FitAddon();
  private webgl: WebglAddon | null = null;
  private ws: WebSocket | null = null;
  private generation = 0;
  private opened = false;
  private visible = false;
  private disposed = false;
  private wantConnect = true;
  private backoff = BACKOFF_MIN_MS;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private unacked = 0;
  private pendingWrites = 0;
  private encoder = new TextEncoder();
  private listeners = new Set<() => void>();
  private snap: SessionSnapshot = { state: 'connecting', exitCode: undefined, title: null };
  private fitFrame = 0;

  constructor(readonly id: string) {
    this.term = new Terminal({
      fontFamily: TERMINAL_FONT,
      fontSize: fontSize,
      disableStdin: readOnly,
      lineHeight: 1.15,
      scrollback,
      cursorBlink: true,
      theme: TERMINAL_THEME,
      allowProposedApi: false,
      macOptionIsMeta: true,
      convertEol: false,
    });
    this.term.loadAddon(this.fit);
    this.element = document.createElement('div');
    this.element.className = 'xterm-host';

    // Let app shortcuts (new shell / new task) through instead of sending them to the pty.
    this.term.attachCustomKeyEventHandler((ev) => matchShortcut(ev) === null);
    this.term.onData((d) => this.send(this.encoder.encode(d)));
    this.term.onBinary((d) => {
      const bytes = new Uint8Array(d.length);
      for (let i = 0; i < d.length; i++) bytes[i] = d.charCodeAt(i) & 0xff;
      this.send(bytes);
    });
    // A watch-only device never resizes the desk's terminal (the server drops it too).
    this.term.onResize(({ cols, rows }) => {
      if (!readOnly) this.sendJson({ type: 'resize', cols, rows });
    });

    testRegistry().set(id, this.term);
    this.installTouchScroll();
    this.connect();
  }

  /**
   * Touch screens: a vertical swipe on the terminal scrolls its scrollback (xterm.js
   * does not do this itself). At either end of the scrollback the swipe is left to
   * the page, so the page still scrolls past the terminal.
   */
  private installTouchScroll() {
    const el = this.element;
    let lastY: number | null = null;
    let acc = 0;
    el.addEventListener(
      'touchstart',
      (e) => {
        lastY = e.touches.length === 1 ? e.touches[0].clientY : null;
        acc = 0;
      },
      { passive: true, capture: true },
    );
    el.addEventListener(
      'touchmove',
      (e) => {
        if (lastY === null || e.touches.length !== 1) return;
        const y = e.touches[0].clientY;
        acc += y - lastY;
        lastY = y;
        const lineHeight = el.clientHeight / Math.max(1, this.term.rows);
        const lines = Math.trunc(acc / lineHeight);
        if (lines === 0) return;
        acc -= lines * lineHeight;
        const buf = this.term.buffer.active;
        const before = buf.viewportY;
        this.term.scrollLines(-lines);
        if (buf.viewportY !== before && e.cancelable) e.preventDefault();
      },
      { passive: false, capture: true },
    );
    const end = () => {
      lastY = null;
    };
    el.addEventListener('touchend', end, { passive: true, capture: true });
    el.addEventListener('touchcancel', end, { passive: true, capture: true });
  }

  // ---- observable state for React ----

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getSnapshot = (): SessionSnapshot => this.snap;

  private update(patch: Partial<SessionSnapshot>) {
    this.snap = { ...this.snap, ...patch };
    this.listeners.forEach((fn) => fn());
  }

  // ---- DOM / visibility ----

  /**
   * Put the terminal into `host` (moving it if it lived elsewhere). xterm.js draws it
   * only once it is first shown (see `setVisible`): a hidden tab keeps its buffer and
   * its connection, but no renderer, DOM rows or glyph atlas.
   */
  mount(host: HTMLElement) {
    if (this.element.parentElement !== host) host.appendChild(this.element);
    if (EAGER_OPEN) this.open();
  }

  private open() {
    if (this.opened || this.disposed || !this.element.parentElement) return;
    this.term.open(this.element);
    this.opened = true;
  }

  unmount(host: HTMLElement) {
    if (this.element.parentElement === host) host.removeChild(this.element);
    this.setVisible(false);
  }

  /** Only the visible terminal holds a WebGL context. */
  setVisible(v: boolean) {
    if (this.visible === v) return;
    this.visible = v;
    if (v) {
      this.open();
      this.enableWebgl();
      this.scheduleFit();
    } else {
      this.disableWebgl();
    }
  }

  focus() {
    this.term.focus();
  }

  scheduleFit() {
    if (this.fitFrame) cancelAnimationFrame(this.fitFrame);
    this.fitFrame = requestAnimationFrame(() => {
      this.fitFrame = 0;
      this.fitNow();
    });
  }

  private fitNow() {
    if (!this.opened || this.disposed || !this.visible) return;
    const el = this.element;
    if (el.clientWidth < 10 || el.clientHeight < 10) return; // hidden
    try {
      this.fit.fit(); // fires onResize (→ resize message) only when the size changed
    } catch {
      /* renderer not ready yet */
    }
  }

  private enableWebgl() {
    if (this.webgl || !this.opened || webglUnusable()) return;
    try {
      const addon = new WebglAddon();
      addon.onContextLoss(() => {
        // Fall back to the DOM renderer; try again on the next show.
        if (this.webgl === addon) this.disableWebgl();
      });
      this.term.loadAddon(addon);
      this.webgl = addon;
    } catch (e) {
      webglBroken = true;
      console.info('anycode: WebGL renderer unavailable, using the DOM renderer', e);
    }
  }

  private disableWebgl() {
    const a = this.webgl;
    this.webgl = null;
    if (a) {
      try {
        a.dispose();
      } catch {
        /* already gone */
      }
    }
  }

  // ---- connection ----

  /** Whether the task is in a state where its processes may run (reconnect only then). */
  setConnectAllowed(allowed: boolean) {
    const was = this.wantConnect;
    this.wantConnect = allowed;
    if (!allowed) {
      if (this.reconnectTimer) {
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = null;
        this.update({ state: 'closed' });
      }
      return;
    }
    // The task (re)started: connect again, even after an exit.
    if (!was && !this.ws && !this.reconnectTimer) {
      this.backoff = BACKOFF_MIN_MS;
      this.connect();
    }
  }

  /** Reconnect after an exit (e.g. the task was started again). */
  revive() {
    if (this.ws || this.disposed) return;
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    this.backoff = BACKOFF_MIN_MS;
    this.connect();
  }

  private connect() {
    if (this.disposed) return;
    this.reconnectTimer = null;
    const gen = ++this.generation;
    const first = gen === 1;
    this.update({ state: first ? 'connecting' : 'reconnecting' });
    let ws: WebSocket;
    try {
      ws = new WebSocket(terminalWsUrl(this.id));
    } catch {
      this.scheduleReconnect();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    let gotExit = false;
    let resetDone = first;

    ws.onopen = () => {
      if (gen !== this.generation) return;
      this.backoff = BACKOFF_MIN_MS;
      this.unacked = 0;
      this.pendingWrites = 0;
      if (!resetDone) {
        // The server replays the scrollback on every connection.
        this.term.reset();
        resetDone = true;
      }
      this.update({ state: 'open', exitCode: undefined });
      // Announce flow control: from now on the server counts what we have not acked.
      this.sendJson({ type: 'ack', bytes: 0 });
      if (!readOnly) this.sendJson({ type: 'resize', cols: this.term.cols, rows: this.term.rows });
      this.scheduleFit();
    };

    ws.onmessage = (ev) => {
      if (gen !== this.generation) return;
      if (typeof ev.data === 'string') {
        this.onControl(ev.data, () => (gotExit = true));
        return;
      }
      const chunk = new Uint8Array(ev.data as ArrayBuffer);
      const len = chunk.byteLength;
      this.pendingWrites++;
      this.term.write(chunk, () => {
        if (gen !== this.generation) return;
        this.pendingWrites--;
        this.unacked += len;
        if (this.unacked >= ACK_THRESHOLD || this.pendingWrites === 0) this.flushAck();
      });
    };

    ws.onclose = () => {
      if (gen !== this.generation) return;
      this.ws = null;
      if (gotExit || this.disposed) {
        if (!gotExit) this.update({ state: 'closed' });
        return;
      }
      this.scheduleReconnect();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private scheduleReconnect() {
    if (this.disposed) return;
    this.update({ state: this.wantConnect ? 'reconnecting' : 'closed' });
    if (!this.wantConnect) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private onControl(text: string, markExit: () => void) {
    let msg: { type?: string; code?: number | null; title?: string };
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    switch (msg.type) {
      case 'exit': {
        markExit();
        const code = msg.code ?? null;
        // Dim note, and hide the cursor: the buffer stays readable and scrollable.
        const note = `\x1b[0;2m[process exited with code ${code === null ? 'unknown' : code}]\x1b[0m\r\n\x1b[?25l`;
        // After the queued output is parsed: start on a fresh line only if needed.
        this.term.write('', () => this.term.write((this.term.buffer.active.cursorX > 0 ? '\r\n' : '') + note));
        this.update({ state: 'exited', exitCode: code });
        // Nothing more comes on this socket. A restarted task (same agent terminal id)
        // reconnects through setConnectAllowed(true).
        this.closeSocket();
        break;
      }
      case 'resync':
        // We fell behind; the server sends the scrollback again.
        this.term.reset();
        break;
      case 'title':
        if (typeof msg.title === 'string') this.update({ title: msg.title });
        break;
      default:
        break; // unknown types are ignored
    }
  }

  private closeSocket() {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      try {
        ws.close();
      } catch {
        /* ignore */
      }
    }
  }

  private flushAck() {
    if (this.unacked <= 0) return;
    const bytes = this.unacked;
    this.unacked = 0;
    this.sendJson({ type: 'ack', bytes });
  }

  private send(data: Uint8Array) {
    if (readOnly) return;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
  }

  /** Sends `text` as typed input (the on-screen key bar). */
  input(text: string) {
    this.send(this.encoder.encode(text));
  }

  /** Applies the shared font size and re-fits. */
  applyFontSize() {
    if (this.term.options.fontSize !== fontSize) {
      this.term.options.fontSize = fontSize;
      this.scheduleFit();
    }
  }

  /** Applies the shared read-only flag. */
  applyReadOnly() {
    this.term.options.disableStdin = readOnly;
  }

  /**
   * After the device slept (page hidden for a while) or came back online: a socket
   * that looks open may be dead, so connect afresh; the server replays the
   * scrollback, so no output is lost. A closed socket reconnects now, not after
   * the back-off.
   */
  wake(force: boolean) {
    if (this.disposed || !this.wantConnect || this.snap.state === 'exited') return;
    if (this.ws && this.ws.readyState === WebSocket.OPEN && !force) return;
    this.closeSocket();
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    this.backoff = BACKOFF_MIN_MS;
    this.connect();
  }

  private sendJson(obj: unknown) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    this.generation++;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.fitFrame) cancelAnimationFrame(this.fitFrame);
    try {
      this.ws?.close();
    } catch {
      /* ignore */
    }
    this.ws = null;
    this.disableWebgl();
    this.term.dispose();
    this.element.remove();
    testRegistry().delete(this.id);
    this.listeners.clear();
  }
}

// ---- registry ----

const sessions = new Map<string, TermSession>();

export function getSession(id: string): TermSession {
  let s = sessions.get(id);
  if (!s) {
    s = new TermSession(id);
    sessions.set(id, s);
  }
  return s;
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

// `localStorage['anycode.eagerTerminals'] = '1'` draws every terminal as soon as its
// tab exists, shown or not (the behaviour before lazy opening; for measurements).
const EAGER_OPEN = (() => {
  try {
    return localStorage.getItem('anycode.eagerTerminals') === '1';
  } catch {
    return false;
  }
})();

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

/** Chooses the renderer of terminals drawn from now on (kept in localStorage). */
export function setRendererChoice(choice: RendererChoice) {
  try {
    if (choice === 'auto') localStorage.removeItem('anycode.renderer');
    else localStorage.setItem('anycode.renderer', choice);
  } catch {
    /* private mode */
  }
  webglBroken = null;
}

export function getScrollback(): number {
  return scrollback;
}

/** Sets the scrollback of every terminal, in lines (kept in localStorage; clamped). */
export function setScrollback(lines: number) {
  scrollback = Math.max(SCROLLBACK_MIN, Math.min(SCROLLBACK_MAX, Math.round(lines)));
  try {
    localStorage.setItem(SCROLLBACK_KEY, String(scrollback));
  } catch {
    /* private mode */
  }
  sessions.forEach((s) => {
    s.term.options.scrollback = scrollback;
  });
}

export function getFontSize(): number {
  return fontSize;
}

/** Sets the font size of every terminal (kept in localStorage). */
export function setFontSize(size: number) {
  fontSize = Math.max(FONT_MIN, Math.min(FONT_MAX, Math.round(size)));
  try {
    localStorage.setItem(FONT_KEY, String(fontSize));
  } catch {
    /* private mode */
  }
  sessions.forEach((s) => s.applyFontSize());
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
