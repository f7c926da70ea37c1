// Messages to the agent: a line box (phone keyboards' autocorrect and dictation work
// here, unlike inside xterm) and the queue of messages waiting for the agent's turn,
// each editable and removable until it is typed. The server types a message at once
// when the agent waits for input (or is the shell) and queues it while it is busy.

import { useState } from 'react';
import { api, isLive, type QueuedMessage, type Task } from '../api';
import { useToast } from './Toasts';
import { IconX, Spinner } from './icons';

function QueuedItem({ task, m }: { task: Task; m: QueuedMessage }) {
  const toast = useToast();
  const [editing, setEditing] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const save = async () => {
    if (editing === null) return;
    setBusy(true);
    try {
      await api.editMessage(task.id, m.id, editing);
      setEditing(null);
    } catch (e) {
      toast.error(e, 'Edit message');
    } finally {
      setBusy(false);
    }
  };
  const remove = async () => {
    setBusy(true);
    try {
      await api.removeMessage(task.id, m.id);
    } catch (e) {
      toast.error(e, 'Remove message');
    } finally {
      setBusy(false);
    }
  };
  return (
    <li className="msg-queued" data-testid="queued-message">
      {editing === null ? (
        <>
          <span className="msg-text" title={m.created_at}>
            {m.text}
          </span>
          <button type="button" className="btn btn-small" data-testid="queued-edit" onClick={() => setEditing(m.text)} disabled={busy}>
            Edit
          </button>
        </>
      ) : (
        <>
          <textarea className="msg-input" data-testid="queued-edit-text" value={editing} rows={2} onChange={(e) => setEditing(e.target.value)} />
          <button type="button" className="btn btn-small btn-primary" data-testid="queued-save" onClick={save} disabled={busy || !editing.trim()}>
            Save
          </button>
        </>
      )}
      <button type="button" className="btn btn-small btn-danger-ghost" data-testid="queued-remove" aria-label="Remove message" onClick={remove} disabled={busy}>
        <IconX size={12} />
      </button>
    </li>
  );
}

export function MessageBox({ task, canType }: { task: Task; canType: boolean }) {
  const toast = useToast();
  const [text, setText] = useState('');
  const [sending, setSending] = useState(false);
  const queue = task.messages ?? [];
  const live = isLive(task.status) || task.status === 'paused';
  if (!canType || (!live && queue.length === 0)) return null;

  const send = async (e: React.FormEvent) => {
    e.preventDefault();
    if (!text.trim() || sending) return;
    setSending(true);
    try {
      const r = await api.sendMessage(task.id, text);
      setText('');
      if (!r.delivered) toast.notify('Queued: the agent gets it when it finishes its turn.', 'info');
    } catch (err) {
      toast.error(err, 'Send message');
    } finally {
      setSending(false);
    }
  };

  return (
    <div className="msgbox" data-testid="message-box">
      {queue.length > 0 && (
        <ul className="msg-queue" aria-label="Messages waiting for the agent">
          {queue.map((m) => (
            <QueuedItem key={m.id} task={task} m={m} />
          ))}
        </ul>
      )}
      <form className="msg-form" onSubmit={send}>
        <input
          className="msg-input"
          data-testid="message-input"
          type="text"
          enterKeyHint="send"
          autoComplete="off"
          placeholder={task.agent === 'shell' ? 'A command line for the shell' : 'Message to the agent (queued while it works)'}
          value={text}
          onChange={(e) => setText(e.target.value)}
          disabled={!live}
        />
        <button type="submit" className="btn btn-primary btn-small" data-testid="message-send" disabled={!live || sending || !text.trim()}>
          {sending ? <Spinner size={12} /> : 'Send'}
        </button>
      </form>
    </div>
  );
}
