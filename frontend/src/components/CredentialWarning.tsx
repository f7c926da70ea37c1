import { useState } from 'react';
import { api, isLive, type Task } from '../api';
import { useToast } from './Toasts';
import { IconAlert, Spinner } from './icons';
import './credentials.css';

// The task view's warning about the agent's credential: none found, expired, or
// expiring within the hour (the server says which in `credential_warning`).
// Restarting the task hands over the host's current credential.
export function CredentialWarning({ task, onTaskChanged }: { task: Task; onTaskChanged: (t?: Task) => void }) {
  const toast = useToast();
  const [busy, setBusy] = useState(false);
  const w = task.credential_warning;
  if (!w) return null;
  const what = task.credential === 'api_key' ? 'Anthropic API key' : 'Claude subscription login';
  let text: string;
  if (w === 'none found') {
    text = `No ${what} was found on this machine, so the agent started without one. Add one under Credentials (or log in with \`claude\` on this machine), then restart the task — or log in inside the terminal with /login.`;
  } else if (w === 'expired') {
    text = `The ${what} handed to the agent has expired. Run \`claude\` on this machine once (it refreshes its login), then restart the task.`;
  } else if (w.startsWith('expires in')) {
    text = `The agent's access token ${w}. Run \`claude\` on this machine to refresh its login, then restart the task to hand over the new one.`;
  } else {
    text = w;
  }
  const restart = async () => {
    setBusy(true);
    try {
      if (isLive(task.status)) await api.stopTask(task.id);
      onTaskChanged(await api.startTask(task.id));
    } catch (e) {
      toast.error(e, 'Restart');
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="task-cred-warning" role="alert" data-testid="credential-warning" data-warning={w}>
      <IconAlert size={14} />
      <span>{text}</span>
      <button className="btn btn-xs" onClick={restart} disabled={busy} data-testid="credential-restart">
        {busy ? <Spinner size={11} /> : null} Restart task
      </button>
    </div>
  );
}
