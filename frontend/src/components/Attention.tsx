// What a task wants from the user: a status pill, live resource use, and for a
// `needs_approval` task the requested tool with its input and Allow / Deny (the task
// list, the task view, the phone list). Deny can carry a message for the agent.

import { useCallback, useEffect, useRef, useState } from 'react';
import { api, ApiError, errorMessage, type Task } from '../api';
import { canControl, useSessionInfo } from '../role';
import { cpuText, memoryText, statusClass, statusHelp, statusLabel, usageShort } from '../status';
import { useToast } from './Toasts';

export function StatusPill({ task, testId }: { task: Task; testId?: string }) {
  return (
    <span className={`status-pill status-${task.status}`} data-testid={testId} data-status={task.status} title={statusHelp(task)}>
      <span className={`dot ${statusClass(task.status)}`} />
      {statusLabel(task)}
    </span>
  );
}

/** CPU and memory of a running sandbox; `compact` for lists. */
export function UsageBadge({ task, compact }: { task: Task; compact?: boolean }) {
  const u = task.usage;
  if (!u) return null;
  const title = `CPU ${cpuText(u)} (100% = one CPU), memory ${memoryText(u)} — Docker stats`;
  if (compact) {
    return (
      <span className="usage usage-compact mono" data-testid={`usage-${task.id}`} title={title}>
        {usageShort(u)}
      </span>
    );
  }
  const memFrac = u.memory_limit_bytes > 0 ? Math.min(1, u.memory_bytes / u.memory_limit_bytes) : 0;
  return (
    <span className="usage meta-item" data-testid="task-usage" title={title}>
      <span className="usage-part">
        <span className="muted">CPU</span> <span className="mono">{cpuText(u)}</span>
      </span>
      <span className="usage-part">
        <span className="muted">Mem</span> <span className="mono">{memoryText(u)}</span>
        {u.memory_limit_bytes > 0 && (
          <span className="usage-bar" aria-hidden="true">
            <span className={`usage-bar-fill${memFrac > 0.85 ? ' hot' : ''}`} style={{ width: `${Math.round(memFrac * 100)}%` }} />
          </span>
        )}
      </span>
    </span>
  );
}

/** The tool's input in a line (Bash: the command; file tools: the path) and, when
 *  there is more, the whole input for a detail view. */
export function describeToolInput(tool: string | undefined, input: unknown): { summary: string; detail: string | null } {
  const o = input && typeof input === 'object' ? (input as Record<string, unknown>) : null;
  const str = (k: string) => (o && typeof o[k] === 'string' ? (o[k] as string) : null);
  const json = input === undefined || input === null ? '' : JSON.stringify(input, null, 2);
  let summary: string | null = null;
  switch (tool) {
    case 'Bash':
      summary = str('command');
      break;
    case 'Edit':
    case 'MultiEdit':
    case 'Write':
    case 'Read':
    case 'NotebookEdit':
      summary = str('file_path') ?? str('notebook_path');
      break;
    case 'WebFetch':
      summary = str('url');
      break;
    case 'WebSearch':
      summary = str('query');
      break;
    case 'Glob':
    case 'Grep':
      summary = str('pattern');
      break;
    case 'Task':
      summary = str('description');
      break;
  }
  if (summary === null) {
    summary = typeof input === 'string' ? input : json.replace(/\s+/g, ' ');
    return { summary, detail: null };
  }
  const keys = o ? Object.keys(o) : [];
  const more = keys.some((k) => !['command', 'file_path', 'url', 'query', 'pattern', 'description', 'notebook_path'].includes(k));
  return { summary, detail: more ? json : null };
}

/** Why an approval could not be sent, in words. */
function approvalError(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 404 && e.code !== 'TASK_NOT_FOUND')
      return 'This AnyCode server cannot take approvals (POST /api/tasks/{id}/approval answered 404): answer in the terminal instead.';
    if (e.code === 'NO_PENDING_APPROVAL') return 'Nothing to approve any more: it was answered elsewhere or timed out (then the terminal asks).';
    if (e.code === 'WATCH_ONLY') return 'This device is paired to watch only.';
  }
  return errorMessage(e);
}

/** Whether a key event belongs to something that takes text (inputs, the terminal). */
function typingTarget(e: KeyboardEvent): boolean {
  const el = e.target as HTMLElement | null;
  if (!el) return false;
  const tag = el.tagName;
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || el.isContentEditable || !!el.closest?.('.xterm');
}

/**
 * The requested tool and its input, with Allow and Deny (a message optional).
 * `shortcuts`: `a` allows and `d` opens Deny while focus is not in a terminal or a
 * field (the task view). Watch devices see it without buttons.
 */
export function ApprovalCard({
  task,
  onTaskChanged,
  shortcuts,
  compact,
}: {
  task: Task;
  onTaskChanged?: (t?: Task) => void;
  shortcuts?: boolean;
  compact?: boolean;
}) {
  const toast = useToast();
  const me = useSessionInfo();
  const mayControl = canControl(me);
  const [busy, setBusy] = useState<null | 'allow' | 'deny'>(null);
  const [denying, setDenying] = useState(false);
  const [message, setMessage] = useState('');
  const [error, setError] = useState<string | null>(null);
  const messageRef = useRef<HTMLInputElement>(null);
  const a = task.attention;
  const since = a?.since;

  // A new request (or none): start over.
  useEffect(() => {
    setDenying(false);
    setMessage('');
    setError(null);
  }, [since, task.status]);

  const decide = useCallback(
    async (decision: 'allow' | 'deny') => {
      if (busy) return;
      setBusy(decision);
      setError(null);
      try {
        const body = decision === 'deny' && message.trim() ? { decision, message: message.trim() } : { decision };
        const t = await api.approve(task.id, body);
        setDenying(false);
        onTaskChanged?.(t);
      } catch (e) {
        const m = approvalError(e);
        setError(m);
        if (compact) toast.notify(m, 'error');
      } finally {
        setBusy(null);
      }
    },
    [busy, message, task.id, onTaskChanged, compact, toast],
  );

  useEffect(() => {
    if (!shortcuts || !mayControl || task.status !== 'needs_approval') return;
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || typingTarget(e)) return;
      if (document.querySelector('.modal-backdrop')) return;
      const k = e.key.toLowerCase();
      if (k === 'a') {
        e.preventDefault();
        decide('allow');
      } else if (k === 'd') {
        e.preventDefault();
        setDenying(true);
        setTimeout(() => messageRef.current?.focus(), 0);
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [shortcuts, mayControl, task.status, decide]);

  if (task.status !== 'needs_approval') return null;
  const tool = a?.tool ?? 'a tool';
  const { summary, detail } = describeToolInput(a?.tool ?? undefined, a?.input);
  const agentName = task.agent === 'claude' ? 'Claude' : task.agent;

  return (
    <div className={`approval${compact ? ' approval-compact' : ''}`} data-testid={compact ? `approval-${task.id}` : 'approval'} role="group" aria-label="Permission request">
      <div className="approval-head">
        {!compact && <span className="dot dot-approval" />}
        <span>
          {compact ? '' : `${agentName} asks to use `}
          <strong className="approval-tool" data-testid="approval-tool">
            {tool}
          </strong>
          {compact ? '' : ':'}
        </span>
      </div>
      {summary && (
        <pre className="approval-input" data-testid="approval-input" title={detail ?? summary}>
          {summary}
        </pre>
      )}
      {!compact && detail && (
        <details className="approval-detail">
          <summary>Whole input</summary>
          <pre>{detail}</pre>
        </details>
      )}
      {a?.message && !compact && <div className="approval-message muted">{a.message}</div>}
      {mayControl ? (
        denying ? (
          <form
            className="approval-deny"
            onSubmit={(e) => {
              e.preventDefault();
              decide('deny');
            }}
            onClick={(e) => e.stopPropagation()}
          >
            <input
              ref={messageRef}
              className="input"
              data-testid="deny-message"
              placeholder={`Tell ${agentName} why, or what to do instead (optional)`}
              value={message}
              onChange={(e) => setMessage(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === 'Escape') {
                  e.stopPropagation();
                  setDenying(false);
                }
              }}
              autoFocus
            />
            <button type="submit" className="btn btn-danger btn-xs" data-testid="deny-send" disabled={busy !== null}>
              {busy === 'deny' ? 'Denying…' : 'Deny'}
            </button>
            <button type="button" className="btn btn-xs" onClick={() => setDenying(false)} disabled={busy !== null}>
              Cancel
            </button>
          </form>
        ) : (
          <div className="approval-actions" onClick={(e) => e.stopPropagation()}>
            <button
              type="button"
              className="btn btn-primary btn-xs"
              data-testid="approve-allow"
              title={shortcuts ? 'Allow this once (A)' : 'Allow this once'}
              onClick={() => decide('allow')}
              disabled={busy !== null}
            >
              {busy === 'allow' ? 'Allowing…' : 'Allow'}
              {shortcuts && <kbd>A</kbd>}
            </button>
            <button
              type="button"
              className="btn btn-danger-ghost btn-xs"
              data-testid="approve-deny"
              title={shortcuts ? 'Deny, optionally with a message for the agent (D)' : 'Deny, optionally with a message for the agent'}
              onClick={() => {
                setDenying(true);
              }}
              disabled={busy !== null}
            >
              Deny…{shortcuts && <kbd>D</kbd>}
            </button>
          </div>
        )
      ) : (
        <div className="approval-watch muted small">Watching only: answer from the computer or a control device.</div>
      )}
      {error && (
        <div className="inline-error approval-error" role="alert" data-testid="approval-error">
          {error}
        </div>
      )}
    </div>
  );
}

/** The agent's message for `waiting_input` / `failed` (one line). */
export function AttentionNote({ task }: { task: Task }) {
  if ((task.status !== 'waiting_input' && task.status !== 'failed') || !task.attention?.message) return null;
  return (
    <div className={`attention-note attention-${task.status}`} data-testid="attention-note">
      {task.attention.message}
    </div>
  );
}
