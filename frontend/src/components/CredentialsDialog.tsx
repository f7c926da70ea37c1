import { useCallback, useEffect, useState } from 'react';
import { api, errorMessage, type CredentialName, type CredentialsStatus, type ProviderStatus } from '../api';
import { Modal } from './Modal';
import { Spinner } from './icons';
import './credentials.css';

// Credentials: where each provider's credential stands (never the secret, at most
// `sk-…abcd`), and a form that saves a key or token in AnyCode's OS keyring entry.

export const PROVIDER_LABEL: Record<ProviderStatus['provider'], string> = {
  claude: 'Claude subscription',
  anthropic: 'Anthropic API key',
  openai: 'OpenAI API key',
  gemini: 'Gemini API key',
  github: 'GitHub token',
};

const NAME_OF: Record<ProviderStatus['provider'], CredentialName> = {
  claude: 'claude-token',
  anthropic: 'anthropic-api-key',
  openai: 'openai-api-key',
  gemini: 'gemini-api-key',
  github: 'github-token',
};

const NAME_LABEL: Record<CredentialName, string> = {
  'claude-token': 'Claude token (from `claude setup-token`)',
  'anthropic-api-key': 'Anthropic API key',
  'openai-api-key': 'OpenAI API key',
  'gemini-api-key': 'Gemini API key',
  'github-token': 'GitHub token',
};

const SOURCE_LABEL: Record<string, string> = {
  keyring: 'AnyCode keyring',
  claude_keychain: 'Claude Code login (Keychain)',
  claude_file: 'Claude Code login',
  env: 'environment',
};

/** "in 40 min", "in 7 h", "2 h ago". */
export function relativeTime(ms: number): string {
  const d = ms - Date.now();
  const mins = Math.floor(Math.abs(d) / 60000);
  const text = mins < 1 ? 'less than a minute' : mins < 120 ? `${mins} min` : mins < 48 * 60 ? `${Math.floor((mins + 30) / 60)} h` : `${Math.floor((mins + 720) / 1440)} days`;
  return d >= 0 ? `in ${text}` : `${text} ago`;
}

export function describeProvider(p: ProviderStatus): string {
  if (p.state === 'missing') return 'none found';
  const parts: string[] = [];
  if (p.subscription_type) parts.push(p.subscription_type);
  if (p.display) parts.push(p.display);
  parts.push(SOURCE_LABEL[p.source ?? ''] ?? p.source ?? '');
  if (p.expires_at) parts.push(`${p.state === 'expired' ? 'expired' : 'expires'} ${relativeTime(p.expires_at)}`);
  return parts.filter(Boolean).join(' · ');
}

export function CredentialsDialog({ onClose }: { onClose: () => void }) {
  const [status, setStatus] = useState<CredentialsStatus | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [name, setName] = useState<CredentialName>('claude-token');
  const [value, setValue] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setStatus(await api.credentialsStatus());
      setLoadError(null);
    } catch (e) {
      setLoadError(errorMessage(e));
    }
  }, []);

  useEffect(() => {
    load();
  }, [load]);

  const save = async (e?: React.FormEvent) => {
    e?.preventDefault();
    if (!value.trim() || busy) return;
    setBusy(true);
    setError(null);
    setSaved(null);
    try {
      const r = await api.saveCredential(name, value);
      setValue('');
      setSaved(`Saved ${r.name} (${r.display}) in the OS keyring.`);
      await load();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  const remove = async (n: CredentialName) => {
    setBusy(true);
    setError(null);
    setSaved(null);
    try {
      const r = await api.deleteCredential(n);
      setSaved(r.removed ? `Removed ${n} from the OS keyring.` : `${n} was not saved.`);
      await load();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal title="Credentials" onClose={onClose} width={640} testId="credentials-dialog">
      <div className="modal-body">
        <p className="muted small">
          Agents get a credential only in their process's environment, at each start. First found wins: AnyCode's keyring entries,
          then Claude Code's own login on this machine, then AnyCode's environment.
        </p>
        {loadError && <div className="inline-error">{loadError}</div>}
        {!status && !loadError && (
          <div className="empty-inline">
            <Spinner size={14} /> Looking up credentials…
          </div>
        )}
        {status?.keyring_problem && (
          <div className="inline-warn" data-testid="keyring-problem">
            {status.keyring_problem}
          </div>
        )}
        {status && (
          <ul className="cred-list" data-testid="credentials-list">
            {status.providers.map((p) => (
              <li key={p.provider} className="cred-item" data-testid={`cred-${p.provider}`} data-state={p.state}>
                <div className="cred-head">
                  <span className={`cred-state cred-${p.state}`}>{p.state === 'missing' ? 'none' : p.state}</span>
                  <span className="cred-name">{PROVIDER_LABEL[p.provider]}</span>
                  <span className="cred-detail muted">{describeProvider(p)}</span>
                  {p.source === 'keyring' && (
                    <button className="btn btn-xs btn-danger-ghost" disabled={busy} onClick={() => remove(NAME_OF[p.provider])} data-testid={`cred-remove-${p.provider}`}>
                      Remove
                    </button>
                  )}
                </div>
                {p.location && <div className="cred-location mono small muted">{p.location}</div>}
                {p.hint && <div className="cred-hint small">{p.hint}</div>}
              </li>
            ))}
          </ul>
        )}
        <form className="cred-form" onSubmit={save}>
          <div className="field-row">
            <label className="field">
              <span className="field-label">Save in the OS keyring</span>
              <select className="input" data-testid="cred-name" value={name} onChange={(e) => setName(e.target.value as CredentialName)}>
                {(Object.keys(NAME_LABEL) as CredentialName[]).map((n) => (
                  <option key={n} value={n}>
                    {NAME_LABEL[n]}
                  </option>
                ))}
              </select>
            </label>
            <label className="field">
              <span className="field-label">Value</span>
              <input
                className="input mono"
                type="password"
                autoComplete="off"
                spellCheck={false}
                data-testid="cred-value"
                placeholder={name === 'claude-token' ? 'sk-ant-oat01-…' : name === 'anthropic-api-key' ? 'sk-ant-api03-…' : 'paste it here'}
                value={value}
                onChange={(e) => setValue(e.target.value)}
              />
            </label>
          </div>
          <span className="field-hint">
            Stored in your OS keyring (service <span className="mono">{status?.keyring_service ?? 'anycode'}</span>), never in AnyCode's
            database; shown only as <span className="mono">sk-…abcd</span>. Also: <span className="mono">anycode credentials set NAME --stdin</span>.
          </span>
          {error && (
            <div className="inline-error" role="alert">
              {error}
            </div>
          )}
          {saved && <div className="inline-ok" data-testid="cred-saved">{saved}</div>}
          <div className="modal-foot modal-foot-inline">
            <button type="button" className="btn" onClick={onClose}>
              Close
            </button>
            <button type="submit" className="btn btn-primary" data-testid="cred-save" disabled={busy || !value.trim()}>
              {busy && <span className="spinner" />} Save
            </button>
          </div>
        </form>
      </div>
    </Modal>
  );
}
