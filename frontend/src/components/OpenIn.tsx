// "Open in…": VS Code attached to the task's sandbox (Dev Containers' URI), the
// `anycode attach` command to copy, and the folder on the host with the server's
// warning (the sandbox writes it, .git included).

import { useState } from 'react';
import { api, type OpenIn, type Task } from '../api';
import { useToast } from './Toasts';
import { Spinner } from './icons';

export function OpenInButton({ task }: { task: Task }) {
  const toast = useToast();
  const [info, setInfo] = useState<OpenIn | null>(null);
  const [open, setOpen] = useState(false);
  const [loading, setLoading] = useState(false);
  const toggle = async () => {
    if (open) return setOpen(false);
    setLoading(true);
    try {
      setInfo(await api.openIn(task.id));
      setOpen(true);
    } catch (e) {
      toast.error(e, 'Open in');
    } finally {
      setLoading(false);
    }
  };
  const copy = async (text: string) => {
    try {
      await navigator.clipboard.writeText(text);
      toast.notify('Copied.', 'success');
    } catch {
      toast.notify(text, 'info');
    }
  };
  return (
    <span className="openin">
      <button className="btn" data-testid="task-open-in" onClick={toggle} aria-expanded={open}>
        {loading ? <Spinner size={12} /> : null} Open in…
      </button>
      {open && info && (
        <div className="openin-menu" data-testid="open-in-menu" role="dialog" aria-label="Open the task elsewhere">
          <a className="btn btn-primary" data-testid="open-vscode" href={info.vscode_uri}>
            Open in VS Code
          </a>
          <div className="muted small">Needs VS Code's Dev Containers extension; VS Code then runs inside the sandbox.</div>
          <div className="openin-row">
            <code data-testid="attach-command">{info.attach_command}</code>
            <button className="btn btn-small" data-testid="copy-attach" onClick={() => copy(info.attach_command)}>
              Copy
            </button>
          </div>
          {info.folder && (
            <div className="openin-row">
              <code className="openin-folder" title={info.folder}>
                {info.folder}
              </code>
              <button className="btn btn-small" onClick={() => copy(info.folder)}>
                Copy
              </button>
            </div>
          )}
          <div className="muted small" data-testid="folder-warning">
            {info.folder_warning}
          </div>
        </div>
      )}
    </span>
  );
}
