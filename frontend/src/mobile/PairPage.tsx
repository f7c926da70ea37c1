// Shown when this browser has no session: pair it with a code from the computer
// (or follow the token link on the computer itself).

import { useEffect, useState } from 'react';
import { ApiError, devicesApi } from '../api';
import { Spinner } from '../components/icons';

/** The code carried by a pairing link: `#/pair/ABC-DEF-GHJ`. */
export function codeFromHash(hash: string): string {
  const m = /^#\/pair\/([A-Za-z0-9-]+)/.exec(hash);
  return m ? m[1].toUpperCase() : '';
}

function defaultName(): string {
  const ua = navigator.userAgent;
  if (/iPhone/.test(ua)) return 'iPhone';
  if (/iPad/.test(ua)) return 'iPad';
  if (/Android/.test(ua)) return 'Android phone';
  return 'Phone';
}

/** Formats what is typed as `XXX-XXX-XXX` (capitals, dashes added). */
function formatCode(v: string): string {
  const raw = v.toUpperCase().replace(/[^A-Z0-9]/g, '').slice(0, 9);
  return raw.replace(/(.{3})(?=.)/g, '$1-');
}

/** `notice`: why this page shows (e.g. the device was revoked). */
export function PairPage({ notice }: { notice?: string }) {
  const [code, setCode] = useState(() => formatCode(codeFromHash(location.hash)));
  const [name, setName] = useState(() => localStorage.getItem('anycode.deviceName') || defaultName());
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [retryAt, setRetryAt] = useState(0);
  const [now, setNow] = useState(Date.now());

  // Count down a lockout.
  useEffect(() => {
    if (retryAt <= Date.now()) return;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [retryAt]);
  const wait = Math.max(0, Math.ceil((retryAt - now) / 1000));

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (busy || wait > 0) return;
    setBusy(true);
    setError(null);
    try {
      await devicesApi.pair(code, name.trim());
      try {
        localStorage.setItem('anycode.deviceName', name.trim());
      } catch {
        /* private mode */
      }
      // The session cookie is set: start the app afresh, without the code in the URL.
      location.replace(location.pathname);
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) {
        const secs = Number(/(\d+) s/.exec(err.message)?.[1] ?? 60);
        setRetryAt(Date.now() + secs * 1000);
        setNow(Date.now());
      }
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    }
  };

  const ready = code.replace(/-/g, '').length === 9 && name.trim() !== '';

  return (
    <div className="fullpage pair-page" data-testid="pair-page">
      <form className="fullpage-card pair-card" onSubmit={submit}>
        <div className="pair-logo" aria-hidden="true">
          <svg viewBox="0 0 32 32" width="44" height="44">
            <rect width="32" height="32" rx="7" fill="#7c5cff" />
            <path d="M9 11l6 5-6 5M17 22h7" stroke="white" strokeWidth="2.6" fill="none" strokeLinecap="round" strokeLinejoin="round" />
          </svg>
        </div>
        <h1>Pair with AnyCode</h1>
        {notice && (
          <p className="pair-notice small" data-testid="pair-notice">
            {notice}
          </p>
        )}
        <p className="muted">
          On the computer running AnyCode, open <strong>Settings → Pair a phone</strong> and enter the code it shows.
        </p>
        <label className="field">
          <span className="field-label">Pairing code</span>
          <input
            className="input pair-code-input mono"
            data-testid="pair-code"
            value={code}
            onChange={(e) => setCode(formatCode(e.target.value))}
            placeholder="ABC-DEF-GHJ"
            autoCapitalize="characters"
            autoComplete="one-time-code"
            spellCheck={false}
            inputMode="text"
            aria-label="Pairing code"
          />
        </label>
        <label className="field">
          <span className="field-label">Name of this device</span>
          <input
            className="input"
            data-testid="pair-name"
            value={name}
            maxLength={60}
            onChange={(e) => setName(e.target.value)}
            aria-label="Device name"
          />
        </label>
        {error && (
          <div className="inline-error" role="alert" data-testid="pair-error">
            {wait > 0 ? `Too many wrong codes: try again in ${wait} s.` : error}
          </div>
        )}
        <button className="btn btn-primary btn-block pair-submit" data-testid="pair-submit" disabled={!ready || busy || wait > 0}>
          {busy ? <Spinner size={14} /> : null} Pair this device
        </button>
        <p className="muted small pair-foot">
          At the computer itself? Open the link <code>anycode serve</code> printed instead.
        </p>
      </form>
    </div>
  );
}
