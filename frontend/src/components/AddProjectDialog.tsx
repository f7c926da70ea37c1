import { useState } from 'react';
import { api, errorMessage, type Project } from '../api';
import { Modal } from './Modal';

export function AddProjectDialog({ onClose, onAdded }: { onClose: () => void; onAdded: (p: Project) => void }) {
  const [path, setPath] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const p = path.trim();
    if (!p || busy) return;
    setBusy(true);
    setError(null);
    try {
      const project = await api.addProject(p);
      onAdded(project);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal title="Add project" onClose={onClose} testId="add-project-dialog">
      <form onSubmit={submit}>
        <div className="modal-body">
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
          <button type="submit" className="btn btn-primary" data-testid="project-submit" disabled={busy || !path.trim()}>
            {busy && <span className="spinner" />}
            Add project
          </button>
        </div>
      </form>
    </Modal>
  );
}
