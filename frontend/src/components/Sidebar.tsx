import { cloneProgress, isLive, type Conflicts, type Health, type Project, type Task } from '../api';
import { timeAgo } from '../hooks';
import { statusClass, statusHelp, statusLabel } from '../status';
import { ApprovalCard, UsageBadge } from './Attention';
import { HostBadge } from './Hosts';
import { IconFolder, IconPlus, IconTrash } from './icons';

export function Sidebar({
  projects,
  tasks,
  selectedTaskId,
  health,
  onSelectTask,
  onNewTask,
  onAddProject,
  onDeleteProject,
  brandExtra,
  onCredentials,
  conflicts,
  onTaskChanged,
}: {
  projects: Project[] | null;
  tasks: Task[] | null;
  selectedTaskId: string | null;
  health: Health | null;
  onSelectTask: (id: string) => void;
  onNewTask: (projectId: string) => void;
  /** Shown at the end of the brand row (the settings button). */
  brandExtra?: React.ReactNode;
  onAddProject: () => void;
  onDeleteProject: (p: Project) => void;
  /** Opens the Credentials dialog. */
  onCredentials?: () => void;
  /** The conflict radar of each task, by task id. */
  conflicts?: Record<string, Conflicts>;
  /** A task changed by an action here (an approval). */
  onTaskChanged?: (t?: Task) => void;
}) {
  return (
    <nav className="sidebar" aria-label="Projects and tasks">
      <div className="brand">
        <div className="brand-logo" aria-hidden="true">
          <svg viewBox="0 0 32 32" width="22" height="22">
            <rect width="32" height="32" rx="7" fill="#7c5cff" />
            <path d="M9 11l6 5-6 5M17 22h7" stroke="white" strokeWidth="2.6" fill="none" strokeLinecap="round" strokeLinejoin="round" />
          </svg>
        </div>
        <span className="brand-name">AnyCode</span>
        {health && <span className="brand-version">v{health.version}</span>}
        {brandExtra}
      </div>

      <div className="sidebar-scroll">
        {projects === null && <div className="sidebar-note">Loading…</div>}
        {projects?.length === 0 && (
          <div className="sidebar-note">No projects yet. Add one below: the path of any git repository on this machine.</div>
        )}
        {projects?.map((p) => {
          if (p.status === 'cloning' || p.status === 'failed') {
            const prog = cloneProgress(p.progress);
            return (
              <section key={p.id} className="project" data-testid={`project-${p.id}`} data-status={p.status}>
                <div className="project-head" title={p.url ?? p.path}>
                  <IconFolder size={14} className="project-icon" />
                  <span className="project-name">{p.github ?? p.name}</span>
                  <button
                    className="icon-btn project-delete"
                    aria-label={p.status === 'cloning' ? `Cancel import of ${p.name}` : `Dismiss ${p.name}`}
                    title={p.status === 'cloning' ? 'Cancel the import' : 'Dismiss'}
                    data-testid={`delete-project-${p.id}`}
                    onClick={() => onDeleteProject(p)}
                  >
                    <IconTrash size={13} />
                  </button>
                </div>
                {p.status === 'cloning' ? (
                  <div className="import-progress" data-testid="import-progress">
                    <div className="import-bar">
                      <div className="import-bar-fill" style={{ width: `${Math.round(prog.fraction * 100)}%` }} />
                    </div>
                    <span className="muted">Cloning: {prog.label}</span>
                  </div>
                ) : (
                  <div className="inline-error import-error" role="alert" data-testid="import-error">
                    {p.error}
                  </div>
                )}
              </section>
            );
          }
          const ptasks = (tasks ?? [])
            .filter((t) => t.project_id === p.id)
            .sort((a, b) => b.created_at.localeCompare(a.created_at));
          return (
            <section key={p.id} className="project" data-testid={`project-${p.id}`}>
              <div className="project-head" title={p.path}>
                <IconFolder size={14} className="project-icon" />
                <span className="project-name">{p.name}</span>
                <button
                  className="icon-btn project-delete"
                  aria-label={`Remove project ${p.name}`}
                  title="Remove project"
                  data-testid={`delete-project-${p.id}`}
                  onClick={() => onDeleteProject(p)}
                >
                  <IconTrash size={13} />
                </button>
                <button
                  className="btn btn-xs"
                  data-testid={`new-task-${p.id}`}
                  title="New task (Ctrl+Shift+N or Alt+Shift+N)"
                  onClick={() => onNewTask(p.id)}
                >
                  <IconPlus size={12} /> Task
                </button>
              </div>
              <ul className="task-list">
                {ptasks.length === 0 && <li className="task-empty">No tasks</li>}
                {ptasks.map((t) => (
                  <li key={t.id} className="task-li" data-status={t.status}>
                    <button
                      className={`task-item${t.id === selectedTaskId ? ' selected' : ''}`}
                      data-testid={`task-item-${t.id}`}
                      data-status={t.status}
                      onClick={() => onSelectTask(t.id)}
                      title={`${t.title}\n${t.branch} ← ${t.base}\n${statusHelp(t)}`}
                    >
                      <span className={`dot ${statusClass(t.status)}`} aria-label={statusLabel(t)} />
                      <span className="task-item-main">
                        <span className="task-item-title">{t.title}</span>
                        <span className="task-item-meta">
                          <span className={`task-item-status text-${t.status}`} data-testid={`task-item-status-${t.id}`}>
                            {statusLabel(t)}
                          </span>
                          <HostBadge task={t} compact />
                          {isLive(t.status) && <UsageBadge task={t} compact />}
                          <span className="mono task-item-branch">{t.branch}</span>
                          {conflicts?.[t.id] && !conflicts[t.id].clean && (
                            <span
                              className="conflict-mark"
                              data-testid={`conflict-${t.id}`}
                              title={`Would conflict with ${conflicts[t.id].base} in: ${conflicts[t.id].conflicts.join(', ')}`}
                            >
                              ⚠ conflict
                            </span>
                          )}
                          {conflicts?.[t.id]?.clean && conflicts[t.id].overlaps.length > 0 && (
                            <span
                              className="overlap-mark"
                              data-testid={`overlap-${t.id}`}
                              title={conflicts[t.id].overlaps.map((o) => `${o.title}: ${o.files.join(', ')}`).join('\n')}
                            >
                              ⇄ overlaps
                            </span>
                          )}
                          {t.pr && <span className={`pr-mark state-${t.pr.state}`}>#{t.pr.number}</span>}
                        </span>
                      </span>
                      <span className="task-item-time">{timeAgo(t.created_at)}</span>
                    </button>
                    {t.status === 'needs_approval' && <ApprovalCard task={t} compact onTaskChanged={onTaskChanged} />}
                  </li>
                ))}
              </ul>
            </section>
          );
        })}
      </div>

      <div className="sidebar-foot">
        <button className="btn btn-block" data-testid="add-project" onClick={onAddProject}>
          <IconPlus size={14} /> Project
        </button>
        {onCredentials && (
          <button className="btn btn-block sidebar-credentials" data-testid="open-credentials" onClick={onCredentials}>
            Credentials
          </button>
        )}
      </div>
    </nav>
  );
}
