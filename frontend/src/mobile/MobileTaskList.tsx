// Phones: the task list is the home screen (task list → task → terminal).

import type { Project, Task } from '../api';
import { timeAgo } from '../hooks';
import { statusClass } from '../components/Sidebar';
import { IconPlus } from '../components/icons';

export function MobileTaskList({
  projects,
  tasks,
  onSelect,
  onNewTask,
}: {
  projects: Project[];
  tasks: Task[];
  onSelect: (id: string) => void;
  onNewTask?: () => void;
}) {
  const sorted = [...tasks].sort((a, b) => b.created_at.localeCompare(a.created_at));
  return (
    <div className="mobile-tasks" data-testid="mobile-tasks">
      <div className="mobile-tasks-head">
        <h2>Tasks</h2>
        {onNewTask && projects.length > 0 && (
          <button className="btn btn-primary btn-xs" onClick={onNewTask} data-testid="mobile-new-task">
            <IconPlus size={12} /> Task
          </button>
        )}
      </div>
      {sorted.length === 0 && <p className="muted mobile-tasks-empty">No tasks yet.</p>}
      <ul className="mobile-task-list">
        {sorted.map((t) => {
          const project = projects.find((p) => p.id === t.project_id);
          return (
            <li key={t.id}>
              <button className="mobile-task" data-testid={`mobile-task-${t.id}`} data-status={t.status} onClick={() => onSelect(t.id)}>
                <span className={`dot ${statusClass(t.status)}`} aria-label={t.status} />
                <span className="mobile-task-main">
                  <span className="mobile-task-title">{t.title}</span>
                  <span className="mobile-task-meta mono">
                    {project ? `${project.name} · ` : ''}
                    {t.branch}
                  </span>
                </span>
                <span className="mobile-task-side">
                  <span className={`status-pill status-${t.status}`}>{t.status}</span>
                  <span className="muted small">{timeAgo(t.created_at)}</span>
                </span>
              </button>
            </li>
          );
        })}
      </ul>
    </div>
  );
}
