import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { api, isLive, type Project, type Task, type TerminalInfo } from '../api';
import { timeAgo } from '../hooks';
import { matchShortcut } from '../shortcuts';
import { disposeSession } from '../terminal/registry';
import { ChangesPanel } from './ChangesPanel';
import { NetworkChip, NetworkPanel } from './NetworkPanel';
import { GitHubBar } from './GitHubBar';
import { ConfirmDialog } from './Modal';
import { CredentialWarning } from './CredentialWarning';
import { Loading, lazyPart } from './Loading';
import { OpenInButton } from './OpenIn';
import { PortsButton } from './Ports';
import { TerminalTabs } from './TerminalTabs';
import { useToast } from './Toasts';
import { IconAlert, IconBranch, IconPlay, IconStop, IconTrash, Spinner } from './icons';
import { ApprovalCard, AttentionNote, StatusPill, UsageBadge } from './Attention';
import { ordinal } from '../status';
import { HostBadge, HostWarning } from './Hosts';

// The recording player (asciinema-player) loads when Replay is first clicked.
const RecordingDialog = lazyPart(() => import('./RecordingDialog'), 'RecordingDialog');

// Which tab was active in each task, so coming back to a task restores it.
const activeTabByTask = new Map<string, string>();

const SPLIT_KEY = 'anycode.changesWidth';

function orderTerminals(list: TerminalInfo[]): TerminalInfo[] {
  const agent = list.filter((t) => t.kind === 'agent');
  const shells = list.filter((t) => t.kind !== 'agent');
  return [...agent, ...shells];
}

export function TaskView({
  task,
  project,
  onTaskChanged,
  onTaskDeleted,
}: {
  task: Task;
  project: Project | undefined;
  onTaskChanged: (t?: Task) => void;
  onTaskDeleted: (id: string) => void;
}) {
  const toast = useToast();
  const [added, setAdded] = useState<TerminalInfo[]>([]);
  const [removed, setRemoved] = useState<Set<string>>(new Set());
  const [active, setActiveState] = useState<string | null>(activeTabByTask.get(task.id) ?? null);
  const [busy, setBusy] = useState<null | 'stop' | 'start' | 'resume' | 'delete'>(null);
  const [adding, setAdding] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [showRecording, setShowRecording] = useState(false);
  const [showNetwork, setShowNetwork] = useState(false);
  const [changesWidth, setChangesWidth] = useState<number>(() => {
    const v = Number(localStorage.getItem(SPLIT_KEY));
    return v >= 280 && v <= 1400 ? v : 460;
  });
  const splitRef = useRef<HTMLDivElement>(null);

  // Forget optimistic terminal additions once the server lists them.
  const serverIds = useMemo(() => new Set(task.terminals.map((t) => t.id)), [task.terminals]);
  useEffect(() => {
    setAdded((a) => (a.some((t) => serverIds.has(t.id)) ? a.filter((t) => !serverIds.has(t.id)) : a));
  }, [serverIds]);

  const terminals = useMemo(() => {
    const base = task.terminals.filter((t) => !removed.has(t.id));
    const extra = added.filter((t) => !serverIds.has(t.id) && !removed.has(t.id));
    return orderTerminals([...base, ...extra]);
  }, [task.terminals, added, removed, serverIds]);

  const setActive = useCallback(
    (id: string) => {
      activeTabByTask.set(task.id, id);
      setActiveState(id);
    },
    [task.id],
  );

  const activeId = terminals.some((t) => t.id === active) ? active : (terminals[0]?.id ?? null);

  const addTerminal = useCallback(async () => {
    if (adding) return;
    if (!isLive(task.status)) {
      toast.notify('Start the task to open a shell.', 'info');
      return;
    }
    setAdding(true);
    try {
      const t = await api.addTerminal(task.id);
      const info: TerminalInfo = { id: t.id, kind: t.kind ?? 'shell', title: t.title };
      setAdded((a) => [...a, info]);
      setActive(info.id);
      onTaskChanged();
    } catch (e) {
      toast.error(e, 'New shell');
    } finally {
      setAdding(false);
    }
  }, [adding, task.id, task.status, toast, setActive, onTaskChanged]);

  const closeTerminal = useCallback(
    async (id: string) => {
      try {
        await api.deleteTerminal(id);
        setRemoved((r) => new Set(r).add(id));
        disposeSession(id);
        if (activeId === id) {
          const idx = terminals.findIndex((t) => t.id === id);
          const next = terminals[idx - 1] ?? terminals[idx + 1];
          if (next) setActive(next.id);
        }
        onTaskChanged();
      } catch (e) {
        toast.error(e, 'Close terminal');
      }
    },
    [activeId, terminals, setActive, onTaskChanged, toast],
  );

  // Ctrl+Shift+T: new shell tab (capture phase, so it works with focus in the terminal).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (matchShortcut(e) === 'new-shell') {
        e.preventDefault();
        e.stopPropagation();
        addTerminal();
      }
    };
    window.addEventListener('keydown', onKey, true);
    return () => window.removeEventListener('keydown', onKey, true);
  }, [addTerminal]);

  const act = async (kind: 'stop' | 'start' | 'resume') => {
    setBusy(kind);
    try {
      // Resume is a start of a paused task (the server unpauses it).
      const t = kind === 'stop' ? await api.stopTask(task.id) : await api.startTask(task.id);
      onTaskChanged(t);
    } catch (e) {
      toast.error(e, kind === 'stop' ? 'Stop' : kind === 'resume' ? 'Resume' : 'Start');
    } finally {
      setBusy(null);
    }
  };

  const doDelete = async () => {
    setBusy('delete');
    try {
      await api.deleteTask(task.id);
      for (const t of terminals) disposeSession(t.id);
      activeTabByTask.delete(task.id);
      setConfirmDelete(false);
      toast.notify(`Deleted task “${task.title}”. Branch ${task.branch} is kept.`, 'success');
      onTaskDeleted(task.id);
    } catch (e) {
      toast.error(e, 'Delete');
      setBusy(null);
    }
  };

  // Draggable splitter between terminals and changes (wide screens).
  const startDrag = (e: React.PointerEvent) => {
    const container = splitRef.current;
    if (!container) return;
    e.preventDefault();
    const rect = container.getBoundingClientRect();
    const move = (ev: PointerEvent) => {
      const w = Math.round(rect.right - ev.clientX);
      setChangesWidth(Math.max(280, Math.min(rect.width - 320, w)));
    };
    const up = () => {
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
      document.body.classList.remove('dragging');
      setChangesWidth((w) => {
        localStorage.setItem(SPLIT_KEY, String(w));
        return w;
      });
    };
    document.body.classList.add('dragging');
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
  };

  // The container exists and runs (or will): Stop rather than Start.
  const running = isLive(task.status) || task.status === 'creating' || task.status === 'queued' || task.status === 'paused';

  return (
    <div className="task-view" data-testid="task-view" data-task-id={task.id}>
      <header className="task-header">
        <div className="task-header-main">
          <h1 className="task-title" title={task.title}>
            {task.title}
          </h1>
          <div className="task-meta">
            <StatusPill task={task} testId="task-status" />
            {isLive(task.status) && <UsageBadge task={task} />}
            {task.status === 'queued' && task.queue_position != null && (
              <span className="meta-item muted" data-testid="task-queue">
                {ordinal(task.queue_position)} in the queue: starts when a running task ends
              </span>
            )}
            <span className="meta-item mono" title="branch ← base">
              <IconBranch size={13} />
              <span className="branch">{task.branch}</span>
              <span className="muted"> ← {task.base}</span>
            </span>
            <span className="meta-item chip">{task.agent}</span>
            <HostBadge task={task} />
            <NetworkChip task={task} open={showNetwork} onToggle={() => setShowNetwork((v) => !v)} />
            {task.credential && task.credential !== 'none' && (
              <span className="meta-item chip" data-testid="task-credential" title={task.credential_source ?? undefined}>
                {task.credential === 'api_key' ? 'API key' : 'subscription'}
              </span>
            )}
            {project && (
              <span className="meta-item muted hide-narrow" title={project.path}>
                {project.name}
              </span>
            )}
            <span className="meta-item muted hide-narrow" title={task.created_at}>
              {timeAgo(task.created_at)}
            </span>
          </div>
        </div>
        <div className="task-actions">
          {task.status === 'paused' && (
            <button className="btn btn-primary" data-testid="task-resume" onClick={() => act('resume')} disabled={busy !== null} title="Unpause the sandbox">
              {busy === 'resume' ? <Spinner size={12} /> : <IconPlay size={13} />} Resume
            </button>
          )}
          {running ? (
            <button className="btn" data-testid="task-stop" onClick={() => act('stop')} disabled={busy !== null || task.status === 'creating'}>
              {busy === 'stop' ? <Spinner size={12} /> : <IconStop size={13} />} Stop
            </button>
          ) : (
            <button className="btn" data-testid="task-start" onClick={() => act('start')} disabled={busy !== null}>
              {busy === 'start' ? <Spinner size={12} /> : <IconPlay size={13} />} Start
            </button>
          )}
          <PortsButton task={task} />
          <OpenInButton task={task} />
          {task.record && (
            <button className="btn" data-testid="task-recording" onClick={() => setShowRecording(true)} title="Replay the agent terminal's recording">
              <IconPlay size={13} /> Replay
            </button>
          )}
          <button className="btn btn-danger-ghost" data-testid="task-delete" onClick={() => setConfirmDelete(true)} disabled={busy !== null}>
            <IconTrash size={13} /> Delete
          </button>
        </div>
      </header>
      <GitHubBar task={task} project={project} onTaskChanged={onTaskChanged} />

      {showRecording && (
        <Loading className="modal-backdrop">
          <RecordingDialog
            terminalId={task.terminals.find((t) => t.kind === 'agent')?.id ?? ''}
            title={task.title}
            onClose={() => setShowRecording(false)}
          />
        </Loading>
      )}

      {task.error && (
        <div className="task-error" role="alert">
          <IconAlert size={14} /> {task.error}
        </div>
      )}

      <HostWarning task={task} />
      <CredentialWarning task={task} onTaskChanged={onTaskChanged} />
      <NetworkPanel key={task.id} task={task} open={showNetwork} onTaskChanged={onTaskChanged} />

      {task.status === 'needs_approval' && (
        <div className="task-attention">
          <ApprovalCard task={task} onTaskChanged={onTaskChanged} shortcuts />
        </div>
      )}
      <AttentionNote task={task} />
      <SetupNote
        task={task}
        onShow={() => {
          const setup = terminals.find((t) => t.kind === 'setup');
          if (setup) setActive(setup.id);
        }}
      />

      <div className="split" ref={splitRef} style={{ ['--changes-width' as string]: `${changesWidth}px` }}>
        <section className="split-terminals" aria-label="Terminals">
          <TerminalTabs
            task={task}
            terminals={terminals}
            active={activeId}
            onSelect={setActive}
            onAdd={addTerminal}
            onClose={closeTerminal}
            adding={adding}
          />
        </section>
        <div className="splitter" onPointerDown={startDrag} role="separator" aria-orientation="vertical" title="Drag to resize" />
        <section className="split-changes" aria-label="Changes">
          <ChangesPanel key={task.id} task={task} />
        </section>
      </div>

      {confirmDelete && (
        <ConfirmDialog
          title="Delete task?"
          message={
            <>
              Delete task? The container and worktree are removed; the branch <span className="mono">{task.branch}</span> is kept.
            </>
          }
          confirmLabel="Delete task"
          danger
          busy={busy === 'delete'}
          onConfirm={doDelete}
          onCancel={() => {
            if (busy !== 'delete') setConfirmDelete(false);
          }}
        />
      )}
    </div>
  );
}

/** The dev container's setup while it runs or when it failed: the agent waits for it. */
function SetupNote({ task, onShow }: { task: Task; onShow: () => void }) {
  const setup = task.setup;
  if (!setup || !['pending', 'running', 'failed'].includes(setup.status)) return null;
  const failed = setup.status === 'failed';
  const text = failed
    ? `Dev container setup failed${setup.exit_code != null ? ` (exit ${setup.exit_code})` : ''}: ${setup.error ?? 'see its log'}. The agent started anyway.`
    : 'Setting up the dev container: the agent starts when the setup ends.';
  return (
    <div className={`attention-note ${failed ? 'attention-failed' : 'attention-waiting_input'}`} data-testid="setup-note">
      {text}{' '}
      <button className="btn btn-xs" onClick={onShow}>
        Show setup
      </button>
    </div>
  );
}
