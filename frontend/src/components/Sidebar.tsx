import type { Health, Project, Task } from '../api';
import { timeAgo } from '../hooks';
import { IconFolder, IconPlus, IconTrash } from './icons';

export function statusClass(status: Task['status']): string {
  switch (status) {
    case 'running':
      return 'dot-running';
    case 'creating':
      return 'dot-creating';
    case 'error':
      return 'dot-error';
    default:
      return 'dot-stopped';
  }
}

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
}: {
  projects: Project[] | null;
  tasks: Task[] | null;
  selectedTaskId: string | null;
  health: Health | null;
  onSelectTask: (id: string) => void;
  onNewTask: (projectId: string) => void;
  onAddProject: () => void;
  onDeleteProject: (p: Project) => void;
  /** Shown at the end of the brand row (the settings button). */
  brandExtra?: React.ReactNode;
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
                  <li key={t.id}>
                    <button
                      className={`task-item${t.id === selectedTaskId ? ' selected' : ''}`}
                      data-testid={`task-item-${t.id}`}
                      data-status={t.status}
                      onClick={() => onSelectTask(t.id)}
                      title={`${t.title}\n${t.branch} ← ${t.base}\n${t.status}`}
                    >
                      <span className={`dot ${statusClass(t.status)}`} aria-label={t.status} />
                      <span className="task-item-main">
                        <span className="task-item-title">{t.title}</span>
                        <span className="task-item-meta">
                          <span className="mono">{t.branch}</span>
                        </span>
                      </span>
                      <span className="task-item-time">{timeAgo(t.created_at)}</span>
                    </button>
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
      </div>
    </nav>
  );
}
