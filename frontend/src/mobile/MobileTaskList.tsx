// Phones: the task list is the home screen (task list → task → terminal).

import { isLive, type Project, type Task } from '../api';
import { timeAgo } from '../hooks';
import { statusClass, statusLabel } from '../status';
import { ApprovalCard, StatusPill, UsageBadge } from '../components/Attention';
import { IconPlus } from '../components/icons';
import { HostBadge } from '../components/Hosts';

export function MobileTaskList({
  projects,
  tasks,
  onSelect,
  onNewTask,
  onTaskChanged,
}: {
  projects: Project[];
  tasks: Task[];
  onSelect: (id: string) => void;
  onNewTask?: () => void;
  onTaskChanged?: (t?: Task) => void;
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
            <li key={t.id} data-status={t.status}>
              <button className="mobile-task" data-testid={`mobile-task-${t.id}`} data-status={t.status} onClick={() => onSelect(t.id)}>
                <span className={`dot ${statusClass(t.status)}`} aria-label={statusLabel(t)} />
                <span className="mobile-task-main">
                  <span className="mobile-task-title">{t.title}</span>
                  <span className="mobile-task-meta mono">
                    {project ? `${project.name} · ` : ''}
                    {t.branch}
                  </span>
                  <HostBadge task={t} compact testId={`mobile-host-${t.id}`} />
                </span>
                <span className="mobile-task-side">
                  <StatusPill task={t} testId={`mobile-status-${t.id}`} />
                  {isLive(t.status) && t.usage ? <UsageBadge task={t} compact /> : <span className="muted small">{timeAgo(t.created_at)}</span>}
                </span>
              </button>
              {t.status === 'needs_approval' && <ApprovalCard task={t} compact onTaskChanged={onTaskChanged} />}
            </li>
          );
        })}
      </ul>
    </div>
  );
}
