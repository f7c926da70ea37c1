// Typed client for the `anycode serve` JSON API.
// All requests are same-origin; the session cookie set by `/login?code=…` goes along.
// Request and response shapes come from `api.gen.ts`, generated from docs/openapi.json
// (`npm run gen:api`; `npm run typecheck` fails when it is stale).

import type { components, paths } from './api.gen';

/** The API's schemas, as the server's OpenAPI document describes them. */
type Schemas = components['schemas'];

export type Project = Schemas['Project'];

/** An agent profile's name: claude, codex, gemini, aider, goose, shell, or a user's own. */
export type AgentKind = string;
/** Which credential a task's agent gets in its environment at each start. */
export type CredentialChoice = Schemas['Credential'];
/** The sandbox's state and, while it runs, the agent's (see the API's TaskStatus). */
export type TaskStatus = Schemas['TaskStatus'];

/** Whether the task's container runs (any agent state), so its terminals are live. */
export function isLive(status: TaskStatus): boolean {
  return (
    status === 'starting' ||
    status === 'running' ||
    status === 'needs_approval' ||
    status === 'waiting_input' ||
    status === 'done' ||
    status === 'failed'
  );
}

/** What the agent wants: the tool and its input (needs_approval), a message or failure reason. */
export type Attention = Schemas['Attention'];

/** Live resource use of a running sandbox (Docker stats). */
export type Usage = Schemas['Usage'];

export type PermissionMode = Schemas['PermissionMode'];

export type TerminalInfo = Schemas['TerminalInfo'];

export type Task = Schemas['Task'];

/** A message waiting for the agent to finish its turn. */
export type QueuedMessage = Schemas['QueuedMessage'];
/** What `POST /api/tasks/{id}/messages` did: typed now (`delivered`) or queued. */
export type MessageSent = Schemas['MessageSent'];
/** The owner's comment on a line of a task's changes (`addressed` once a later commit changed it). */
export type ReviewComment = Schemas['ReviewComment'];
/** A port listening in a sandbox, with the link that opens its preview. */
export type PortView = Schemas['PortView'];
/** Ways to open a task in an editor. */
export type OpenIn = Schemas['OpenIn'];

/** `allowlist`: only the allow list, through AnyCode's proxy; `none`: nothing; `open`: Docker's bridge. */
export type NetworkMode = Schemas['NetworkMode'];

export type NetworkPolicy = Schemas['NetworkPolicy'];

/** A host the egress proxy refused for a task. */
export type BlockedHost = Schemas['BlockedHost'];

/** `GET /api/tasks/{id}/network`. */
export type TaskNetwork = Schemas['TaskNetwork'];

/** `PUT /api/tasks/{id}/network`: `allow` replaces, `add` adds (at once); `mode` at the next start. */
export type NetworkChange = Schemas['NetworkChange'];

export type Health = Schemas['Health'];

export type Branches = Schemas['Branches'];

export type FileStatus = 'added' | 'modified' | 'deleted' | 'renamed';

export type DiffFile = Schemas['FileDiff'];

export type TaskDiff = Schemas['Diff'];

export type NewTask = Schemas['NewTask'];

/** An agent profile as `GET /api/agents` lists it. */
export type AgentProfile = Schemas['AgentProfile'];

/** The answer to a `needs_approval` task. */
export type ApprovalDecision = Schemas['ApprovalDecision'];

export type Provider = Schemas['Provider'];
export type CredentialName = Schemas['CredentialName'];

export type ProviderStatus = Schemas['ProviderStatus'];

export type CredentialsStatus = Schemas['CredentialsStatus'];

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
  return (await requestWithHeaders<T>(method, path, body)).body;
}

async function requestWithHeaders<T>(method: string, path: string, body?: unknown): Promise<{ body: T; headers: Headers }> {
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
  if (res.status === 204) return { body: undefined as T, headers: res.headers };
  const text = await res.text();
  return { body: (text ? JSON.parse(text) : undefined) as T, headers: res.headers };
}

/** The filter and page of `GET /api/tasks` (see its OpenAPI description). */
export type TaskFilter = NonNullable<paths['/api/tasks']['get']['parameters']['query']>;

/** Tasks matching `f` a page at a time (`limit` ≤ 1000), oldest first; `total` from `X-Total-Count`. */
async function tasksPage(f: TaskFilter): Promise<{ tasks: Task[]; total: number }> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const qs = q.toString();
  const { body, headers } = await requestWithHeaders<Task[]>('GET', `/api/tasks${qs ? `?${qs}` : ''}`);
  const total = Number(headers.get('X-Total-Count') ?? body.length);
  return { tasks: body, total: Number.isFinite(total) ? total : body.length };
}

/** Every task matching `f`, fetched in pages of `pageSize` (so no single answer grows with the number of tasks). */
async function allTasks(f: Omit<TaskFilter, 'limit' | 'offset'> = {}, pageSize = 200): Promise<Task[]> {
  const out: Task[] = [];
  for (;;) {
    const { tasks, total } = await tasksPage({ ...f, limit: pageSize, offset: out.length });
    out.push(...tasks);
    if (tasks.length === 0 || out.length >= total) return out;
  }
}

const enc = encodeURIComponent;

export const api = {
  health: () => request<Health>('GET', '/api/health'),

  projects: () => request<Project[]>('GET', '/api/projects'),
  addProject: (path: string) => request<Project>('POST', '/api/projects', { path }),
  deleteProject: (id: string) => request<void>('DELETE', `/api/projects/${enc(id)}`),
  branches: (id: string) => request<Branches>('GET', `/api/projects/${enc(id)}/branches`),
  githubIssues: (id: string) => request<Issue[]>('GET', `/api/projects/${enc(id)}/github/issues`),

  tasks: (projectId?: string) => allTasks(projectId ? { project: projectId } : {}),
  tasksPage,
  task: (id: string) => request<Task>('GET', `/api/tasks/${enc(id)}`),
  createTask: (projectId: string, t: NewTask) => request<Task>('POST', `/api/projects/${enc(projectId)}/tasks`, t),
  stopTask: (id: string) => request<Task>('POST', `/api/tasks/${enc(id)}/stop`),
  startTask: (id: string) => request<Task>('POST', `/api/tasks/${enc(id)}/start`),
  deleteTask: (id: string) => request<void>('DELETE', `/api/tasks/${enc(id)}`),
  /** Types a message to the agent now, or queues it while the agent is busy. */
  sendMessage: (id: string, text: string) => request<MessageSent>('POST', `/api/tasks/${enc(id)}/messages`, { text }),
  /** Changes a queued message (404 MESSAGE_NOT_FOUND once it was typed). */
  editMessage: (id: string, messageId: string, text: string) =>
    request<QueuedMessage>('PUT', `/api/tasks/${enc(id)}/messages/${enc(messageId)}`, { text }),
  removeMessage: (id: string, messageId: string) => request<void>('DELETE', `/api/tasks/${enc(id)}/messages/${enc(messageId)}`),
  /** The task's review comments, oldest first. */
  comments: (id: string) => request<ReviewComment[]>('GET', `/api/tasks/${enc(id)}/comments`),
  /** Comments on a line (1-based, new side) of a file of the task's changes. */
  addComment: (id: string, c: { path: string; line: number; body: string }) =>
    request<ReviewComment>('POST', `/api/tasks/${enc(id)}/comments`, c),
  deleteComment: (id: string, commentId: string) => request<void>('DELETE', `/api/tasks/${enc(id)}/comments/${enc(commentId)}`),
  /** Sends the unsent comments to the agent as one message (typed now or queued). */
  sendComments: (id: string) => request<MessageSent>('POST', `/api/tasks/${enc(id)}/comments/send`),
  /** The ports listening in the sandbox now, with links that open them through AnyCode. */
  ports: (id: string) => request<PortView[]>('GET', `/api/tasks/${enc(id)}/ports`),
  /** VS Code's URI of the sandbox, the folder on the host, the attach command. */
  openIn: (id: string) => request<OpenIn>('GET', `/api/tasks/${enc(id)}/open-in`),
  /** Answers the agent's permission request (409 NO_PENDING_APPROVAL when there is none). */
  approve: (id: string, d: ApprovalDecision) => request<Task>('POST', `/api/tasks/${enc(id)}/approval`, d),
  agents: () => request<AgentProfile[]>('GET', '/api/agents'),
  taskNetwork: (id: string) => request<TaskNetwork>('GET', `/api/tasks/${enc(id)}/network`),
  setTaskNetwork: (id: string, c: NetworkChange) => request<TaskNetwork>('PUT', `/api/tasks/${enc(id)}/network`, c),
  projectNetwork: (id: string) => request<NetworkPolicy | null>('GET', `/api/projects/${enc(id)}/network`),
  setProjectNetwork: (id: string, p: { mode?: NetworkMode; allow?: string[] } | null) =>
    request<NetworkPolicy | null>('PUT', `/api/projects/${enc(id)}/network`, p),

  addTerminal: (taskId: string, cmd?: string) =>
    request<TerminalInfo>('POST', `/api/tasks/${enc(taskId)}/terminals`, cmd ? { cmd } : {}),
  deleteTerminal: (id: string) => request<void>('DELETE', `/api/terminals/${enc(id)}`),

  credentialsStatus: () => request<CredentialsStatus>('GET', '/api/credentials/status'),
  saveCredential: (name: CredentialName, value: string) =>
    request<Schemas['SavedCredential']>('PUT', `/api/credentials/${enc(name)}`, { value }),
  deleteCredential: (name: CredentialName) =>
    request<Schemas['RemovedCredential']>('DELETE', `/api/credentials/${enc(name)}`),

  diff: (taskId: string) => request<TaskDiff>('GET', `/api/tasks/${enc(taskId)}/diff`),
  commit: (taskId: string, message: string) =>
    request<Schemas['Committed']>('POST', `/api/tasks/${enc(taskId)}/commit`, { message }),
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

/** `ws://host/ws/events`: the live task states (see events.ts). */
export function eventsWsUrl(): string {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws/events`;
}

export function terminalWsUrl(terminalId: string): string {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws/terminals/${enc(terminalId)}`;
}

// ---- GitHub: import, token, push, pull requests, conflict radar ----

export type CloneProgress = Schemas['CloneProgress'];

export type PullRequestInfo = Schemas['PullRequestInfo'];

export type Conflicts = Schemas['Conflicts'];

export type GitHubStatus = Schemas['GitHubStatus'];

export type RepoMeta = Schemas['RepoMeta'];
export type Issue = Schemas['Issue'];

export const gh = {
  status: () => request<GitHubStatus>('GET', '/api/github'),
  saveToken: (token: string) => request<GitHubStatus>('PUT', '/api/github/token', { token }),
  removeToken: () => request<GitHubStatus>('DELETE', '/api/github/token'),
  repos: () => request<RepoMeta[]>('GET', '/api/github/repos'),
  importProject: (url: string, path?: string) => request<Project>('POST', '/api/projects', path ? { url, path } : { url }),
  push: (taskId: string) => request<Schemas['PushOutcome']>('POST', `/api/tasks/${enc(taskId)}/push`),
  createPr: (taskId: string, body: { title?: string; body?: string; base?: string; draft?: boolean }) =>
    request<PullRequestInfo>('POST', `/api/tasks/${enc(taskId)}/pr`, body),
  refreshPr: (taskId: string) => request<PullRequestInfo>('GET', `/api/tasks/${enc(taskId)}/pr`),
  merge: (taskId: string, method: 'merge' | 'squash' | 'rebase', deleteBranch: boolean) =>
    request<Schemas['Merged']>('POST', `/api/tasks/${enc(taskId)}/merge`, {
      method,
      delete_branch: deleteBranch,
    }),
  conflicts: (taskId: string) => request<Conflicts>('GET', `/api/tasks/${enc(taskId)}/conflicts`),
  projectConflicts: (projectId: string) => request<Conflicts[]>('GET', `/api/projects/${enc(projectId)}/conflicts`),
  updateFromBase: (taskId: string) =>
    request<Schemas['UpdateOutcome']>('POST', `/api/tasks/${enc(taskId)}/update-from-base`),
};

/** A clone's progress as a fraction 0..1 and a short label. */
export function cloneProgress(p?: CloneProgress | null): { fraction: number; label: string } {
  if (!p) return { fraction: 0, label: 'starting' };
  if (p.phase === 'checkout') return { fraction: p.checkout_total ? p.checkout_done / p.checkout_total : 0, label: 'checking out files' };
  if (p.phase === 'resolving') return { fraction: p.total_deltas ? p.indexed_deltas / p.total_deltas : 0, label: 'resolving deltas' };
  if (p.phase === 'receiving') {
    const mb = (p.received_bytes / 1048576).toFixed(1);
    return { fraction: p.total_objects ? p.received_objects / p.total_objects : 0, label: `receiving objects (${mb} MB)` };
  }
  return { fraction: 0, label: p.phase };
}

// ---- pairing phones, devices, LAN mode (issue 7) ----

export type DeviceRole = Schemas['DeviceRole'];

/** Who this browser is: the owner (token / desktop cookie) or a paired device. */
export type SessionInfo = Schemas['SessionView'];

export type Pairing = Schemas['Pairing'];

export type PairedDevice = Schemas['PairedDevice'];

export type LanStatus = Schemas['LanStatus'];

export const devicesApi = {
  session: () => request<SessionInfo>('GET', '/api/session'),
  pair: (code: string, device_name: string) => request<Schemas['Paired']>('POST', '/api/pair', { code, device_name }),
  newPairing: (role: DeviceRole) => request<Pairing>('POST', '/api/pairing', { role }),
  devices: () => request<PairedDevice[]>('GET', '/api/devices'),
  revoke: (id: string) => request<void>('DELETE', `/api/devices/${enc(id)}`),
  lan: () => request<LanStatus>('GET', '/api/lan'),
  setLan: (enabled: boolean) => request<LanStatus>('POST', '/api/lan', { enabled }),
};

// ---- Docker hosts (issue 17) ----

/** A Docker host as `GET /api/hosts` lists it: whether it answers, its capacity, AnyCode's load there. */
export type HostInfo = Schemas['HostInfo'];
/** What `POST /api/hosts` takes: `endpoint` (with `tls`) or `context`. */
export type NewHost = Schemas['NewHost'];
/** A Docker context of the user's, offered as a host. */
export type DockerContext = Schemas['DockerContext'];

/** The local engine's host id (and name). */
export const LOCAL_HOST = 'local';

export const hostsApi = {
  /** Every host, `local` first (each asked whether it answers, at most 5 s). */
  list: () => request<HostInfo[]>('GET', '/api/hosts'),
  /** Adds a host; it must answer first (503 HOST_UNREACHABLE otherwise). */
  add: (h: NewHost) => request<HostInfo>('POST', '/api/hosts', h),
  /** Removes a host by id or name; 409 CONFLICT while tasks are on it. */
  remove: (id: string) => request<void>('DELETE', `/api/hosts/${enc(id)}`),
  contexts: () => request<DockerContext[]>('GET', '/api/hosts/contexts'),
};

/** `31.2 GiB`, or `?` when unknown. */
export function formatBytes(bytes?: number | null): string {
  if (bytes == null) return '?';
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(gib >= 10 ? 0 : 1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}

/**
 * How loaded a host is, 0..1, and how to say it: running sandboxes against its own
 * `max_running` when it has one, else the CPUs its sandboxes are capped at against
 * its CPUs.
 */
export function hostLoad(h: HostInfo): { fraction: number; label: string } {
  if (h.max_running) {
    return { fraction: Math.min(1, h.running_tasks / h.max_running), label: `${h.running_tasks}/${h.max_running} running` };
  }
  if (h.cpus) {
    const used = Math.round(h.reserved_cpus * 10) / 10;
    return { fraction: Math.min(1, h.reserved_cpus / h.cpus), label: `${used}/${h.cpus} CPUs reserved · ${h.running_tasks} running` };
  }
  return { fraction: 0, label: `${h.running_tasks} running` };
}
