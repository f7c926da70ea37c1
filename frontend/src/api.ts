// Typed client for the `anycode serve` JSON API.
// All requests are same-origin; the session cookie set by `/?token=…` goes along.

export interface Project {
  id: string;
  name: string;
  path: string;
  default_branch: string;
}

export type AgentKind = 'shell' | 'claude';
export type TaskStatus = 'creating' | 'running' | 'stopped' | 'exited' | 'error';

export interface TerminalInfo {
  id: string;
  kind: 'agent' | 'shell';
  title?: string | null;
}

export interface Task {
  id: string;
  project_id: string;
  title: string;
  agent: AgentKind;
  branch: string;
  base: string;
  prompt?: string | null;
  status: TaskStatus;
  exit_code?: number | null;
  error?: string | null;
  container_id?: string | null;
  terminals: TerminalInfo[];
  created_at: string;
  base_sha?: string;
  worktree?: string;
  agent_terminal_id?: string;
  /** Whether the agent terminal is recorded (asciicast, replayable). */
  record?: boolean;
}

export interface Health {
  version: string;
  docker: { ok: boolean; version?: string | null; error?: string | null };
}

export interface Branches {
  current: string;
  branches: string[];
}

export type FileStatus = 'added' | 'modified' | 'deleted' | 'renamed';

export interface DiffFile {
  path: string;
  old_path?: string | null;
  status: FileStatus;
  additions: number;
  deletions: number;
  binary: boolean;
  patch: string;
  /** Optional: whether the file has changes not committed yet (the diff is against the base). */
  uncommitted?: boolean;
}

export interface TaskDiff {
  base: string;
  files: DiffFile[];
}

export interface NewTask {
  title: string;
  agent: AgentKind;
  base?: string;
  branch?: string;
  prompt?: string;
  /** Record the agent terminal (default true). */
  record?: boolean;
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type UnauthorizedListener = () => void;
const unauthorizedListeners = new Set<UnauthorizedListener>();

/** Called whenever the API answers 401 (no or expired session cookie). */
export function onUnauthorized(fn: UnauthorizedListener): () => void {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? { Accept: 'application/json' } : { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', `Cannot reach the AnyCode server (${(e as Error).message}). Is \`anycode serve\` running?`);
  }
  if (res.status === 401) {
    unauthorizedListeners.forEach((fn) => fn());
  }
  if (!res.ok) {
    let code = `http_${res.status}`;
    let message = `${method} ${path} failed: ${res.status} ${res.statusText}`;
    try {
      const j = await res.json();
      if (j && j.error) {
        code = j.error.code ?? code;
        message = j.error.message ?? message;
      }
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, code, message);
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

const enc = encodeURIComponent;

export const api = {
  health: () => request<Health>('GET', '/api/health'),

  projects: () => request<Project[]>('GET', '/api/projects'),
  addProject: (path: string) => request<Project>('POST', '/api/projects', { path }),
  deleteProject: (id: string) => request<void>('DELETE', `/api/projects/${enc(id)}`),
  branches: (id: string) => request<Branches>('GET', `/api/projects/${enc(id)}/branches`),

  tasks: (projectId?: string) =>
    request<Task[]>('GET', projectId ? `/api/tasks?project=${enc(projectId)}` : '/api/tasks'),
  task: (id: string) => request<Task>('GET', `/api/tasks/${enc(id)}`),
  createTask: (projectId: string, t: NewTask) => request<Task>('POST', `/api/projects/${enc(projectId)}/tasks`, t),
  stopTask: (id: string) => request<Task>('POST', `/api/tasks/${enc(id)}/stop`),
  startTask: (id: string) => request<Task>('POST', `/api/tasks/${enc(id)}/start`),
  deleteTask: (id: string) => request<void>('DELETE', `/api/tasks/${enc(id)}`),

  addTerminal: (taskId: string, cmd?: string) =>
    request<TerminalInfo>('POST', `/api/tasks/${enc(taskId)}/terminals`, cmd ? { cmd } : {}),
  deleteTerminal: (id: string) => request<void>('DELETE', `/api/terminals/${enc(id)}`),

  diff: (taskId: string) => request<TaskDiff>('GET', `/api/tasks/${enc(taskId)}/diff`),
  commit: (taskId: string, message: string) =>
    request<{ sha: string }>('POST', `/api/tasks/${enc(taskId)}/commit`, { message }),
};

export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** `anycode/<slug-of-title>`: lowercase, non-alphanumerics → '-', trimmed, max 50 chars. */
export function slugify(title: string): string {
  return title
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 50)
    .replace(/-+$/g, '');
}

export function terminalWsUrl(terminalId: string): string {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws/terminals/${enc(terminalId)}`;
}

// ---- pairing phones, devices, LAN mode (issue 7) ----

export type DeviceRole = 'watch' | 'control';

/** Who this browser is: the owner (token / desktop cookie) or a paired device. */
export interface SessionInfo {
  kind: 'owner' | 'device';
  role: 'owner' | DeviceRole;
  device?: { id: string; name: string };
}

export interface Pairing {
  code: string;
  role: DeviceRole;
  url: string;
  urls: string[];
  expires_at: string;
  expires_in: number;
  qr_svg: string;
}

export interface PairedDevice {
  id: string;
  name: string;
  role: DeviceRole;
  created_at: string;
  last_seen?: string | null;
  /** Open terminal sockets right now. */
  sockets: number;
}

export interface LanStatus {
  enabled: boolean;
  addresses: string[];
  urls: string[];
}

export const devicesApi = {
  session: () => request<SessionInfo>('GET', '/api/session'),
  pair: (code: string, device_name: string) => request<{ device: PairedDevice }>('POST', '/api/pair', { code, device_name }),
  newPairing: (role: DeviceRole) => request<Pairing>('POST', '/api/pairing', { role }),
  devices: () => request<PairedDevice[]>('GET', '/api/devices'),
  revoke: (id: string) => request<void>('DELETE', `/api/devices/${enc(id)}`),
  lan: () => request<LanStatus>('GET', '/api/lan'),
  setLan: (enabled: boolean) => request<LanStatus>('POST', '/api/lan', { enabled }),
};
