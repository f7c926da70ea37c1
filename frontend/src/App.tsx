import { useCallback, useEffect, useRef, useState } from 'react';
import { api, ApiError, gh, onUnauthorized, type Conflicts, type Health, type Project, type Task } from './api';
import { navigateToTask, useHashRoute, usePageVisible, usePoll } from './hooks';
import { matchShortcut } from './shortcuts';
import { ConfirmDialog } from './components/Modal';
import { Sidebar } from './components/Sidebar';
import { Loading, lazyPart } from './components/Loading';
import { useToast } from './components/Toasts';
import { IconAlert, IconMenu, IconPlus, Spinner } from './components/icons';
import { devicesApi, type SessionInfo } from './api';
import { SessionContext, canControl } from './role';
import { disposeAllSessions, disposeSessions, setReadOnly } from './terminal/registry';
import { MobileTaskList } from './mobile/MobileTaskList';
import { useTaskEvents } from './events';
import { needsYou } from './status';
import { useAttentionBadge } from './badge';

// Loaded when first shown, each a chunk of its own (Vite splits at `import()`): the
// window on the task list parses none of them. The task view brings the terminals
// (xterm.js) and the diff view; it loads the recording player and the WebGL renderer
// when they are used.
const TaskView = lazyPart(() => import('./components/TaskView'), 'TaskView');
const AddProjectDialog = lazyPart(() => import('./components/AddProjectDialog'), 'AddProjectDialog');
const NewTaskDialog = lazyPart(() => import('./components/NewTaskDialog'), 'NewTaskDialog');
const CredentialsDialog = lazyPart(() => import('./components/CredentialsDialog'), 'CredentialsDialog');
const SettingsDialog = lazyPart(() => import('./mobile/SettingsDialog'), 'SettingsDialog');
const PairPage = lazyPart(() => import('./mobile/PairPage'), 'PairPage');

function Unauthorized() {
  return (
    <div className="fullpage" data-testid="unauthorized">
      <div className="fullpage-card">
        <div className="fullpage-icon">
          <IconAlert size={28} />
        </div>
        <h1>Not signed in</h1>
        <p>
          Open the link that <code>anycode serve</code> printed, or run <code>anycode open</code> for a new one.
        </p>
        <p className="muted small">
          It looks like <code>http://127.0.0.1:7878/login?code=…</code> and logs in once, within two minutes: the code
          is exchanged for a session cookie.
        </p>
      </div>
    </div>
  );
}

export function App() {
  const toast = useToast();
  const { taskId } = useHashRoute();
  const pageVisible = usePageVisible();
  const [unauthorized, setUnauthorized] = useState(false);
  const [health, setHealth] = useState<Health | null>(null);
  const [serverDown, setServerDown] = useState<string | null>(null);
  const [projects, setProjects] = useState<Project[] | null>(null);
  const [tasks, setTasks] = useState<Task[] | null>(null);
  const [addingProject, setAddingProject] = useState(false);
  const [newTaskFor, setNewTaskFor] = useState<string | null>(null);
  const [deletingProject, setDeletingProject] = useState<Project | null>(null);
  const [deleteBusy, setDeleteBusy] = useState(false);
  const [drawer, setDrawer] = useState(false);
  const [credentialsOpen, setCredentialsOpen] = useState(false);
  const tasksSeq = useRef(0);
  const lastTasksJson = useRef('');

  useEffect(() => onUnauthorized(() => setUnauthorized(true)), []);

  // Who we are: the owner at the desk, or a paired phone (watch or control).
  const [me, setMe] = useState<SessionInfo | null>(null);
  const [settingsOpen, setSettingsOpen] = useState(false);
  useEffect(() => {
    devicesApi.session().then(setMe, () => {
      /* 401 shows the pairing page */
    });
  }, []);
  useEffect(() => setReadOnly(me?.role === 'watch'), [me]);
  // Revoked or signed out: stop every terminal from reconnecting.
  useEffect(() => {
    if (unauthorized) disposeAllSessions();
  }, [unauthorized]);
  const mayControl = canControl(me);

  // ---- polling ----

  usePoll(
    async () => {
      try {
        const h = await api.health();
        setHealth(h);
        setServerDown(null);
      } catch (e) {
        if (e instanceof ApiError && e.status === 0) setServerDown(e.message);
      }
    },
    5000,
    !unauthorized,
  );

  const loadProjects = useCallback(async () => {
    try {
      setProjects(await api.projects());
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) toast.error(e, 'Projects');
    }
  }, [toast]);

  const loadTasks = useCallback(async () => {
    const seq = ++tasksSeq.current;
    try {
      const list = await api.tasks();
      // Ignore answers that were overtaken by a newer request; skip re-rendering when nothing changed.
      if (seq === tasksSeq.current) {
        const json = JSON.stringify(list);
        if (json !== lastTasksJson.current) {
          lastTasksJson.current = json;
          setTasks(list);
        }
      }
    } catch (e) {
      if (seq === tasksSeq.current && !(e instanceof ApiError && (e.status === 401 || e.status === 0))) {
        toast.error(e, 'Tasks');
      }
    }
  }, [toast]);

  useEffect(() => {
    loadProjects();
  }, [loadProjects]);

  // Live task states over WS /ws/events; polling only while that socket is down.
  const events = useTaskEvents(!unauthorized, {
    snapshot: (list) => {
      tasksSeq.current++; // a poll in flight now is stale
      lastTasksJson.current = '';
      setTasks(list);
    },
    task: (t) => {
      tasksSeq.current++;
      lastTasksJson.current = '';
      setTasks((list) => {
        if (!list) return list;
        const i = list.findIndex((x) => x.id === t.id);
        if (i < 0) return [...list, t];
        const n = list.slice();
        n[i] = t;
        return n;
      });
    },
    deleted: (id) => {
      tasksSeq.current++;
      lastTasksJson.current = '';
      setTasks((list) => list?.filter((t) => t.id !== id) ?? list);
    },
  });
  const eventsLive = events === 'live';
  const eventsLiveRef = useRef(eventsLive);
  eventsLiveRef.current = eventsLive;
  usePoll(loadTasks, 2000, pageVisible && !unauthorized && !eventsLive);

  // The tab's title and icon say how many tasks wait for you.
  useAttentionBadge(tasks?.filter((t) => needsYou(t.status)).length ?? 0);

  // Imports in progress: follow their clone's progress closely.
  const importing = !!projects?.some((p) => p.status === 'cloning');
  usePoll(loadProjects, 700, importing && !unauthorized);

  // A task of a project added elsewhere (the CLI, the API, the desktop app's tray): fetch the projects again.
  const unknownProject = !!projects && !!tasks?.some((t) => !projects.some((p) => p.id === t.project_id));
  useEffect(() => {
    if (unknownProject) loadProjects();
  }, [unknownProject, loadProjects]);

  // The conflict radar of every task, for the markers in the project list.
  const [conflicts, setConflicts] = useState<Record<string, Conflicts>>({});
  const readyProjects = (projects ?? []).filter((p) => !p.status || p.status === 'ready').map((p) => p.id);
  usePoll(
    async () => {
      const next: Record<string, Conflicts> = {};
      for (const pid of readyProjects) {
        try {
          for (const c of await gh.projectConflicts(pid)) next[c.task_id] = c;
        } catch {
          /* a project whose repository moved: no markers */
        }
      }
      setConflicts(next);
    },
    10000,
    pageVisible && !unauthorized && readyProjects.length > 0,
    [readyProjects.join(',')],
  );

  // Dispose terminal sessions whose terminal disappeared from the server's lists. Only ids
  // seen listed before are pruned (a freshly added terminal may not be listed yet).
  const seenTerminals = useRef(new Set<string>());
  useEffect(() => {
    if (!tasks) return;
    const now = new Set<string>();
    for (const t of tasks) for (const term of t.terminals) now.add(term.id);
    const gone = [...seenTerminals.current].filter((id) => !now.has(id));
    seenTerminals.current = now;
    if (gone.length) disposeSessions(gone);
  }, [tasks]);

  // ---- selection ----

  const selectedTask = tasks?.find((t) => t.id === taskId) ?? null;
  const selectedProject = selectedTask ? projects?.find((p) => p.id === selectedTask.project_id) : undefined;

  const upsertTask = useCallback(
    (t?: Task) => {
      if (t) {
        tasksSeq.current++; // a poll in flight now is stale
        lastTasksJson.current = '';
        setTasks((list) => {
          if (!list) return [t];
          const i = list.findIndex((x) => x.id === t.id);
          if (i < 0) return [...list, t];
          const n = list.slice();
          n[i] = t;
          return n;
        });
      }
      // The events socket brings the rest; without it, ask.
      if (!eventsLiveRef.current) loadTasks();
    },
    [loadTasks],
  );

  const openNewTask = useCallback(
    (projectId?: string) => {
      const pid = projectId ?? selectedTask?.project_id ?? projects?.[0]?.id;
      if (pid) setNewTaskFor(pid);
      else setAddingProject(true);
      setDrawer(false);
    },
    [projects, selectedTask],
  );

  // Ctrl+Shift+N: new task (in the selected task's project).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (matchShortcut(e) === 'new-task') {
        e.preventDefault();
        e.stopPropagation();
        openNewTask();
      }
    };
    window.addEventListener('keydown', onKey, true);
    return () => window.removeEventListener('keydown', onKey, true);
  }, [openNewTask]);

  const deleteProject = async () => {
    if (!deletingProject) return;
    setDeleteBusy(true);
    try {
      await api.deleteProject(deletingProject.id);
      toast.notify(`Removed project ${deletingProject.name}.`, 'success');
      setDeletingProject(null);
      loadProjects();
    } catch (e) {
      toast.error(e);
      setDeletingProject(null);
    } finally {
      setDeleteBusy(false);
    }
  };

  if (unauthorized) {
    // At the desk the token link signs in; anywhere else (a phone on the LAN) pairing does.
    const desk = ['127.0.0.1', 'localhost', '[::1]'].includes(location.hostname);
    if (desk && !location.hash.startsWith('#/pair/')) return <Unauthorized />;
    return (
      <Loading className="fullpage">
        <PairPage notice={me?.kind === 'device' ? 'This device was signed out: it was revoked at the computer. Pair it again with a new code.' : undefined} />
      </Loading>
    );
  }

  const newTaskProject = newTaskFor ? projects?.find((p) => p.id === newTaskFor) : undefined;
  const dockerDown = health && !health.docker.ok;

  let main: React.ReactNode;
  if (projects === null || tasks === null) {
    main = (
      <div className="empty">
        <Spinner size={18} />
      </div>
    );
  } else if (selectedTask) {
    main = (
      <Loading className="empty">
        <TaskView
          key={selectedTask.id}
          task={selectedTask}
          project={selectedProject}
          onTaskChanged={upsertTask}
          onTaskDeleted={(id) => {
            lastTasksJson.current = '';
            setTasks((l) => l?.filter((t) => t.id !== id) ?? null);
            navigateToTask(null);
            if (!eventsLiveRef.current) loadTasks();
          }}
        />
      </Loading>
    );
  } else if (projects.length === 0) {
    main = (
      <div className="empty">
        <div className="empty-card">
          <h2>Welcome to AnyCode</h2>
          <p>Add a project: the path of any git repository on this machine.</p>
          <p className="muted small">
            Each task then runs an agent in its own Docker sandbox, on its own branch and worktree.
          </p>
          <button className="btn btn-primary" onClick={() => setAddingProject(true)}>
            <IconPlus size={14} /> Add project
          </button>
        </div>
      </div>
    );
  } else if (taskId) {
    main = (
      <div className="empty">
        <div className="empty-card">
          <h2>Task not found</h2>
          <p>
            Task <span className="mono">{taskId}</span> does not exist (any more). Pick another task on the left.
          </p>
        </div>
      </div>
    );
  } else {
    main = (
      <div className="empty">
        <MobileTaskList
          projects={projects}
          tasks={tasks}
          onSelect={(id) => navigateToTask(id)}
          onNewTask={mayControl ? () => openNewTask() : undefined}
          onTaskChanged={upsertTask}
        />
        <div className="empty-card">
          <h2>{tasks.length ? 'Select a task' : 'Create your first task'}</h2>
          <p>
            {tasks.length
              ? 'Pick a task on the left, or start a new one with + Task.'
              : 'Start a task with + Task next to a project: AnyCode creates a branch and a sandbox container, and opens its terminal here.'}
          </p>
          <button className="btn btn-primary" onClick={() => openNewTask()}>
            <IconPlus size={14} /> New task <kbd>Ctrl+Shift+N</kbd>
          </button>
        </div>
      </div>
    );
  }

  const settingsButton = (testId: string) =>
    me?.kind === 'owner' ? (
      <button className="icon-btn settings-btn" onClick={() => setSettingsOpen(true)} title="Settings: local network, pair a phone, Docker hosts" aria-label="Settings" data-testid={testId}>
        <svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden="true">
          <rect x="7" y="2" width="10" height="20" rx="2" />
          <path d="M11 18h2" />
        </svg>
      </button>
    ) : null;

  return (
    <SessionContext.Provider value={me}>
    <div className={`app${drawer ? ' drawer-open' : ''}`} data-role={me?.role ?? 'owner'} data-events={events}>
      {dockerDown && (
        <div className="banner banner-error" data-testid="docker-banner" role="alert">
          <IconAlert size={15} />
          <span>
            <strong>Docker is not available.</strong> {health?.docker.error || 'Start Docker and reload.'}
          </span>
        </div>
      )}
      {serverDown && (
        <div className="banner banner-warn" role="alert">
          <IconAlert size={15} />
          <span>{serverDown}</span>
        </div>
      )}
      <div className="mobile-bar">
        <button className="icon-btn" aria-label="Menu" onClick={() => setDrawer((d) => !d)} data-testid="menu-button">
          <IconMenu size={18} />
        </button>
        <span className="mobile-brand">
          <svg viewBox="0 0 32 32" width="20" height="20" aria-hidden="true">
            <rect width="32" height="32" rx="7" fill="#7c5cff" />
            <path d="M9 11l6 5-6 5M17 22h7" stroke="white" strokeWidth="2.6" fill="none" strokeLinecap="round" strokeLinejoin="round" />
          </svg>
          AnyCode
        </span>
        {selectedTask ? (
          <button className="btn btn-xs mobile-back" onClick={() => navigateToTask(null)} data-testid="mobile-back">
            ‹ Tasks
          </button>
        ) : null}
        {selectedProject && <span className="mobile-sub">{selectedProject.name}</span>}
        {me?.role === 'watch' && (
          <span className="chip watch-chip" data-testid="watch-badge" title="This device is paired to watch only">
            watching
          </span>
        )}
        {me?.kind === 'owner' && <span className="mobile-settings">{settingsButton('settings-button-narrow')}</span>}
      </div>
      {settingsOpen && (
        <Loading className="modal-backdrop">
          <SettingsDialog onClose={() => setSettingsOpen(false)} />
        </Loading>
      )}
      <div className="layout">
        <Sidebar
          projects={projects}
          tasks={tasks}
          selectedTaskId={taskId}
          health={health}
          onSelectTask={(id) => {
            navigateToTask(id);
            setDrawer(false);
          }}
          onNewTask={openNewTask}
          onAddProject={() => {
            setAddingProject(true);
            setDrawer(false);
          }}
          onDeleteProject={(p) => setDeletingProject(p)}
          brandExtra={settingsButton('settings-button')}
          conflicts={conflicts}
          onTaskChanged={upsertTask}
          onCredentials={() => {
            setCredentialsOpen(true);
            setDrawer(false);
          }}
        />
        <div className="drawer-scrim" onClick={() => setDrawer(false)} />
        <main className="main">{main}</main>
      </div>

      {addingProject && (
        <Loading className="modal-backdrop">
          <AddProjectDialog
            onClose={() => setAddingProject(false)}
            onAdded={(p) => {
              setAddingProject(false);
              setProjects((l) => (l ? [...l.filter((x) => x.id !== p.id), p] : [p]));
              toast.notify(p.status === 'cloning' ? `Cloning ${p.github ?? p.name}…` : `Added project ${p.name}.`, 'success');
              loadProjects();
            }}
          />
        </Loading>
      )}
      {newTaskProject && (
        <Loading className="modal-backdrop">
          <NewTaskDialog
            project={newTaskProject}
            onClose={() => setNewTaskFor(null)}
            onCreated={(t) => {
              setNewTaskFor(null);
              upsertTask(t);
              navigateToTask(t.id);
            }}
          />
        </Loading>
      )}
      {credentialsOpen && (
        <Loading className="modal-backdrop">
          <CredentialsDialog onClose={() => setCredentialsOpen(false)} />
        </Loading>
      )}
      {deletingProject && (
        <ConfirmDialog
          title="Remove project?"
          message={
            <>
              Remove <strong>{deletingProject.name}</strong> (<span className="mono">{deletingProject.path}</span>) from AnyCode?
              The repository itself is not touched.
            </>
          }
          confirmLabel="Remove project"
          danger
          busy={deleteBusy}
          onConfirm={deleteProject}
          onCancel={() => setDeletingProject(null)}
        />
      )}
    </div>
    </SessionContext.Provider>
  );
}

