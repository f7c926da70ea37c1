import { useEffect, useState } from 'react';
import { api, errorMessage, gh, type GitHubStatus, type Project, type RepoMeta } from '../api';
import { Modal } from './Modal';

type Mode = 'local' | 'github';

export function AddProjectDialog({ onClose, onAdded }: { onClose: () => void; onAdded: (p: Project) => void }) {
  const [mode, setMode] = useState<Mode>('local');
  const [path, setPath] = useState('');
  const [url, setUrl] = useState('');
  const [dest, setDest] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<GitHubStatus | null>(null);
  const [repos, setRepos] = useState<RepoMeta[] | null>(null);
  const [filter, setFilter] = useState('');
  const [token, setToken] = useState('');

  // The GitHub side: the token's state, and the user's repositories when there is one.
  useEffect(() => {
    if (mode !== 'github' || status) return;
    gh.status()
      .then((s) => {
        setStatus(s);
        if (s.login) gh.repos().then(setRepos, (e) => setError(errorMessage(e)));
      })
      .catch((e) => setError(errorMessage(e)));
  }, [mode, status]);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      if (mode === 'local') {
        const p = path.trim();
        if (!p) return;
        onAdded(await api.addProject(p));
      } else {
        const u = url.trim();
        if (!u) return;
        onAdded(await gh.importProject(u, dest.trim() || undefined));
      }
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  const saveToken = async () => {
    setBusy(true);
    setError(null);
    try {
      const s = await gh.saveToken(token.trim());
      setToken('');
      setStatus(s);
      if (s.login) setRepos(await gh.repos());
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  const removeToken = async () => {
    setBusy(true);
    try {
      setStatus(await gh.removeToken());
      setRepos(null);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  const shown = (repos ?? []).filter((r) => r.full_name.toLowerCase().includes(filter.trim().toLowerCase())).slice(0, 50);
  const canSubmit = mode === 'local' ? !!path.trim() : !!url.trim();

  return (
    <Modal title="Add project" onClose={onClose} testId="add-project-dialog">
      <form onSubmit={submit}>
        <div className="modal-body">
          <div className="seg" role="tablist">
            <button type="button" role="tab" aria-selected={mode === 'local'} className={`seg-btn${mode === 'local' ? ' on' : ''}`} onClick={() => setMode('local')}>
              On this machine
            </button>
            <button
              type="button"
              role="tab"
              aria-selected={mode === 'github'}
              data-testid="project-mode-github"
              className={`seg-btn${mode === 'github' ? ' on' : ''}`}
              onClick={() => setMode('github')}
            >
              From GitHub or a URL
            </button>
          </div>
          {mode === 'local' ? (
            <label className="field">
              <span className="field-label">Repository path</span>
              <input
                className="input mono"
                data-testid="project-path"
                autoFocus
                placeholder="/home/me/src/my-repo"
                value={path}
                onChange={(e) => setPath(e.target.value)}
                spellCheck={false}
                autoCapitalize="off"
                autoCorrect="off"
              />
              <span className="field-hint">The path of any git repository on this machine. Tasks get their own worktree and branch.</span>
            </label>
          ) : (
            <>
              <label className="field">
                <span className="field-label">Repository</span>
                <input
                  className="input mono"
                  data-testid="project-url"
                  autoFocus
                  placeholder="owner/name or https://github.com/owner/name"
                  value={url}
                  onChange={(e) => setUrl(e.target.value)}
                  spellCheck={false}
                  autoCapitalize="off"
                  autoCorrect="off"
                />
                <span className="field-hint">Cloned into AnyCode's data folder (or the folder below), with your token for private repositories.</span>
              </label>
              <label className="field">
                <span className="field-label">Folder (optional)</span>
                <input className="input mono" data-testid="project-dest" placeholder="default: <data dir>/repos/owner/name" value={dest} onChange={(e) => setDest(e.target.value)} spellCheck={false} />
              </label>
              {status && (
                <div className="gh-token" data-testid="gh-token">
                  {status.login ? (
                    <span>
                      Signed in to GitHub as <b>{status.login}</b> ({status.source === 'keyring' ? 'saved token' : status.source === 'env' ? 'GITHUB_TOKEN' : 'gh'}).{' '}
                      {status.source === 'keyring' && (
                        <button type="button" className="btn btn-xs" onClick={removeToken} disabled={busy}>
                          Remove token
                        </button>
                      )}
                    </span>
                  ) : (
                    <div className="gh-token-form">
                      <span className="field-hint">
                        {status.error ?? 'No GitHub token: public repositories only.'} Paste a token (saved in your OS keyring, never on disk):
                      </span>
                      <input
                        className="input mono"
                        type="password"
                        data-testid="gh-token-input"
                        placeholder="ghp_…"
                        value={token}
                        onChange={(e) => setToken(e.target.value)}
                        autoComplete="off"
                      />
                      <button type="button" className="btn btn-xs" data-testid="gh-token-save" onClick={saveToken} disabled={busy || !token.trim()}>
                        Save token
                      </button>
                    </div>
                  )}
                </div>
              )}
              {repos && (
                <div className="repo-picker" data-testid="repo-picker">
                  <input className="input" placeholder="Filter your repositories" value={filter} onChange={(e) => setFilter(e.target.value)} />
                  <ul>
                    {shown.map((r) => (
                      <li key={r.full_name}>
                        <button type="button" className={`repo-item${url === r.full_name ? ' selected' : ''}`} onClick={() => setUrl(r.full_name)}>
                          <span className="mono">{r.full_name}</span>
                          {r.private && <span className="chip">private</span>}
                          {r.description && <span className="muted">{r.description}</span>}
                        </button>
                      </li>
                    ))}
                    {shown.length === 0 && <li className="muted">No repository matches.</li>}
                  </ul>
                </div>
              )}
            </>
          )}
          {error && (
            <div className="inline-error" role="alert">
              {error}
            </div>
          )}
        </div>
        <div className="modal-foot">
          <button type="button" className="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" data-testid="project-submit" disabled={busy || !canSubmit}>
            {busy && <span className="spinner" />}
            {mode === 'local' ? 'Add project' : 'Clone'}
          </button>
        </div>
      </form>
    </Modal>
  );
}
