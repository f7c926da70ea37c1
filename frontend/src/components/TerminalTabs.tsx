import { useEffect, useRef, useSyncExternalStore } from 'react';
import { isLive, type Task, type TerminalInfo } from '../api';
import { getSession, type TermSession } from '../terminal/session';
import { IconBot, IconPlus, IconTerminal, IconX, Spinner } from './icons';
import { KeyBar } from '../mobile/KeyBar';
import { MessageBox } from './Messages';
import { canControl, useSessionInfo } from '../role';

function useSession(s: TermSession) {
  return useSyncExternalStore(s.subscribe, s.getSnapshot);
}

function TerminalPane({ info, active, connectAllowed }: { info: TerminalInfo; active: boolean; connectAllowed: boolean }) {
  const host = useRef<HTMLDivElement>(null);
  const session = getSession(info.id);
  const snap = useSession(session);

  useEffect(() => {
    session.setConnectAllowed(connectAllowed);
  }, [session, connectAllowed]);

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    session.mount(el);
    const ro = new ResizeObserver(() => session.scheduleFit());
    ro.observe(el);
    return () => {
      ro.disconnect();
      session.unmount(el);
    };
  }, [session]);

  useEffect(() => {
    session.setVisible(active);
    if (active) {
      session.term.refresh(0, session.term.rows - 1);
      // Focus after layout so fit has real dimensions.
      const t = setTimeout(() => session.focus(), 0);
      return () => clearTimeout(t);
    }
  }, [session, active]);

  return (
    <div className={`terminal-pane${active ? ' active' : ''}`} data-testid={`terminal-${info.id}`} data-state={snap.state}>
      <div className="terminal-host" ref={host} />
      {active && (snap.state === 'connecting' || snap.state === 'reconnecting') && (
        <div className="terminal-overlay">
          <Spinner size={12} /> {snap.state === 'connecting' ? 'Connecting…' : 'Reconnecting…'}
        </div>
      )}
      {active && snap.state === 'closed' && (
        <div className="terminal-overlay">
          Disconnected
          <button className="btn btn-xs" onClick={() => session.revive()}>
            Reconnect
          </button>
        </div>
      )}
    </div>
  );
}

function TabLabel({ info, index, agentLabel, numbered }: { info: TerminalInfo; index: number; agentLabel: string; numbered: boolean }) {
  const snap = useSession(getSession(info.id));
  let title = info.kind === 'setup' ? 'Setup' : snap.title || info.title || (info.kind === 'agent' ? agentLabel : 'Shell');
  if (info.kind === 'shell' && (numbered || title === 'Shell')) title = `${title} ${index}`;
  return (
    <>
      {info.kind === 'agent' ? <IconBot size={13} /> : <IconTerminal size={13} />}
      <span className="term-tab-title">{title}</span>
      {snap.state === 'exited' && (
        <span className="term-tab-exit" title={`Process exited with code ${snap.exitCode ?? 'unknown'}`}>
          exit {snap.exitCode ?? '?'}
        </span>
      )}
      {snap.state === 'reconnecting' && <span className="term-tab-warn" title="Reconnecting" />}
    </>
  );
}

export function TerminalTabs({
  task,
  terminals,
  active,
  onSelect,
  onAdd,
  onClose,
  adding,
}: {
  task: Task;
  terminals: TerminalInfo[];
  active: string | null;
  onSelect: (id: string) => void;
  onAdd: () => void;
  onClose: (id: string) => void;
  adding: boolean;
}) {
  // A paused sandbox keeps its terminals: a keystroke resumes it.
  const connectAllowed = isLive(task.status) || task.status === 'creating' || task.status === 'paused';
  const agentLabel = task.agent === 'claude' ? 'Claude' : 'Agent';
  let shellIndex = 0;
  // Shell tabs with the same title (e.g. several "bash") get a number.
  const titleCount = new Map<string, number>();
  for (const t of terminals) if (t.kind === 'shell') titleCount.set(t.title || '', (titleCount.get(t.title || '') ?? 0) + 1);
  const canAdd = isLive(task.status);
  const mayType = canControl(useSessionInfo());

  return (
    <div className="terminals">
      <div className="tabbar" role="tablist">
        {terminals.map((t) => {
          const idx = t.kind === 'shell' ? ++shellIndex : 0;
          const isActive = t.id === active;
          return (
            <div
              key={t.id}
              className={`term-tab${isActive ? ' active' : ''}`}
              role="tab"
              aria-selected={isActive}
              data-testid={`term-tab-${t.id}`}
              tabIndex={0}
              onClick={() => onSelect(t.id)}
              onKeyDown={(e) => {
                if (e.key === 'Enter' || e.key === ' ') onSelect(t.id);
              }}
              onAuxClick={(e) => {
                if (e.button === 1 && t.kind === 'shell') onClose(t.id);
              }}
            >
              <TabLabel info={t} index={idx} agentLabel={agentLabel} numbered={(titleCount.get(t.title || '') ?? 0) > 1} />
              {t.kind === 'shell' && (
                <button
                  className="term-tab-close"
                  aria-label="Close terminal"
                  title="Close terminal"
                  data-testid={`term-close-${t.id}`}
                  onClick={(e) => {
                    e.stopPropagation();
                    onClose(t.id);
                  }}
                >
                  <IconX size={12} />
                </button>
              )}
            </div>
          );
        })}
        <button
          className="term-add"
          data-testid="add-terminal"
          onClick={onAdd}
          disabled={!canAdd || adding}
          title={canAdd ? 'New shell (Ctrl+Shift+T or Alt+Shift+T)' : 'Start the task to open a shell'}
          aria-label="New shell"
        >
          {adding ? <Spinner size={12} /> : <IconPlus size={14} />}
        </button>
      </div>
      <div className="terminal-stack">
        {terminals.length === 0 && (
          <div className="terminal-empty">
            {task.status === 'creating' ? (
              <>
                <Spinner /> Starting the container…
              </>
            ) : isLive(task.status) ? (
              'No terminals. Press + to open a shell.'
            ) : (
              'The task is not running. Start it to get its terminals back.'
            )}
          </div>
        )}
        {terminals.map((t) => (
          <TerminalPane key={t.id} info={t} active={t.id === active} connectAllowed={connectAllowed} />
        ))}
      </div>
      <KeyBar terminalId={active} canType={mayType} />
      <MessageBox task={task} canType={mayType} />
    </div>
  );
}
