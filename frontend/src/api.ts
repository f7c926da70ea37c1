// Typed client for the `anycode serve` JSON API.
// All requests are same-origin; the session cookie set by `/login?code=…` goes along.

export interface Project {
  id: string;
  name: string;
  path: string;
  /** Empty (null from the server) while an import (clone) runs. */
  default_branch: string;
  /** `ready`, or `cloning` / `failed` for an import from GitHub or a URL. */
  status?: 'ready' | 'cloning' | 'failed';
  /** `owner/name` when the repository's origin is on GitHub. */
  github?: string | null;
  /** Where an import clones from. */
  url?: string;
  progress?: CloneProgress;
  error?: string | null;
  error_code?: string | null;
}

/** An agent profile's name: claude, codex, gemini, aider, goose, shell, or a user's own. */
export type AgentKind = string;
/** Which credential a task's agent gets in its environment at each start. */
export type CredentialChoice = 'none' | 'subscription' | 'api_key';
/** The sandbox's state and, while it runs, the agent's (see the API's TaskStatus). */
export type TaskStatus =
  | 'creating'
  | 'queued'
  | 'starting'
  | 'running'
  | 'needs_approval'
  | 'waiting_input'
  | 'done'
  | 'failed'
  | 'paused'
  | 'stopped'
  | 'exited'
  | 'error';

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
export interface Attention {
  tool?: string;
  input?: unknown;
  message?: string;
  since: string;
}

/** Live resource use of a running sandbox (Docker stats). */
export interface Usage {
  cpu_percent: number;
  memory_bytes: number;
  memory_limit_bytes: number;
  at: string;
}

export type PermissionMode = 'default' | 'acceptEdits' | 'plan' | 'auto' | 'bypassPermissions';

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
  /** The task branch's pull request, once opened. */
  pr?: PullRequestInfo | null;
  /** Which credential the agent gets (older servers: absent). */
  credential?: CredentialChoice;
  /** Where the credential handed over at the last start came from (never the secret). */
  credential_source?: string | null;
  /** When that access token expires, epoch ms. */
  credential_expires_at?: number | null;
  /** "none found", "expired", "expires in 40 min", a handover failure; null when all is well. */
  credential_warning?: string | null;
  /** Whether the agent terminal is recorded (asciicast, replayable). */
  record?: boolean;
  permission_mode?: PermissionMode | null;
  cpus?: number | null;
  memory_mb?: number | null;
  attention?: Attention | null;
  usage?: Usage | null;
  queue_position?: number | null;
  /** How the sandbox reaches the network (older servers: absent). */
  network?: NetworkPolicy;
}

/** `allowlist`: only the allow list, through AnyCode's proxy; `none`: nothing; `open`: Docker's bridge. */
export type NetworkMode = 'allowlist' | 'none' | 'open';

export interface NetworkPolicy {
  mode: NetworkMode;
  /** Host patterns: `example.com`, `*.example.org`, `host:port`, `host.docker.internal:PORT` (a gateway). */
  allow: string[];
}

/** A host the egress proxy refused for a task. */
export interface BlockedHost {
  host: string;
  count: number;
  /** RFC 3339 UTC. */
  last_at: string;
}

/** `GET /api/tasks/{id}/network`. */
export interface TaskNetwork extends NetworkPolicy {
  /** The mode the running sandbox started with (null when not running). */
  running_mode: NetworkMode | null;
  blocked: BlockedHost[];
}

/** `PUT /api/tasks/{id}/network`: `allow` replaces, `add` adds (at once); `mode` at the next start. */
export interface NetworkChange {
  mode?: NetworkMode;
  allow?: string[];
  add?: string[];
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
  /** Default: the agent's (see the server's openapi.json). */
  credential?: CredentialChoice;
  /** Record the agent terminal (default true). */
  record?: boolean;
  /** Claude Code only: how it asks before using tools (default: Claude Code's own). */
  permission_mode?: PermissionMode;
  /** CPU cap, in CPUs (1.5 = one and a half); default from the settings. */
  cpus?: number;
  /** Memory cap, MiB; default from the settings. */
  memory_mb?: number;
  /** Network policy; `allow` is added to the default list. Default: allowlist. */
  network?: { mode?: NetworkMode; allow?: string[] };
}

/** An agent profile as `GET /api/agents` lists it. */
export interface AgentProfile {
  name: string;
  title: string;
  /** Whether AnyCode learns its states from hooks (else from the screen). */
  hooks: boolean;
  image: string;
  image_ready: boolean;
  credential: string;
  builtin: boolean;
}

/** The answer to a `needs_approval` task. */
export interface ApprovalDecision {
  decision: 'allow' | 'deny';
  /** With deny: what the agent is told instead. */
  message?: string;
}

export type Provider = 'claude' | 'anthropic' | 'openai' | 'gemini' | 'github';
export type CredentialName = 'claude-token' | 'anthropic-api-key' | 'openai-api-key' | 'gemini-api-key' | 'github-token';

export interface ProviderStatus {
  provider: Provider;
  state: 'ok' | 'expiring' | 'expired' | 'missing';
  source?: 'keyring' | 'claude_keychain' | 'claude_file' | 'env' | null;
  location?: string | null;
  subscription_type?: string | null;
  /** epoch ms */
  expires_at?: number | null;
  /** `sk-…abcd` for keys the user typed; never more of a secret. */
  display?: string | null;
  hint?: string | null;
  sources: { kind: string; location: string; found: boolean; problem?: string | null }[];
}

export interface CredentialsStatus {
  providers: ProviderStatus[];
  keyring_service?: string | null;
  keyring_problem?: string | null;
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
    request<{ name: string; display: string }>('PUT', `/api/credentials/${enc(name)}`, { value }),
  deleteCredential: (name: CredentialName) =>
    request<{ name: string; removed: boolean }>('DELETE', `/api/credentials/${enc(name)}`),

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

export interface CloneProgress {
  phase: 'connecting' | 'receiving' | 'resolving' | 'checkout' | 'done';
  received_objects: number;
  total_objects: number;
  indexed_deltas: number;
  total_deltas: number;
  received_bytes: number;
  checkout_done: number;
  checkout_total: number;
}

export interface PullRequestInfo {
  repo: string;
  number: number;
  url: string;
  state: 'open' | 'closed' | 'merged';
  draft: boolean;
  checks?: 'success' | 'failure' | 'pending' | 'none' | null;
  review?: 'approved' | 'changes_requested' | 'none' | null;
  mergeable?: boolean | null;
  refreshed_at: string;
  refresh_error?: string | null;
}

export interface Conflicts {
  task_id: string;
  base: string;
  ahead: number;
  behind: number;
  uncommitted: boolean;
  clean: boolean;
  conflicts: string[];
  changed: string[];
  overlaps: { task_id: string; title: string; branch: string; files: string[] }[];
}

export interface GitHubStatus {
  api: string;
  source: 'keyring' | 'env' | 'gh_cli' | null;
  login: string | null;
  error: string | null;
}

export interface RepoMeta {
  full_name: string;
  clone_url: string;
  html_url: string;
  default_branch: string;
  private: boolean;
  description?: string | null;
  pushed_at?: string | null;
}

export const gh = {
  status: () => request<GitHubStatus>('GET', '/api/github'),
  saveToken: (token: string) => request<GitHubStatus>('PUT', '/api/github/token', { token }),
  removeToken: () => request<GitHubStatus>('DELETE', '/api/github/token'),
  repos: () => request<RepoMeta[]>('GET', '/api/github/repos'),
  importProject: (url: string, path?: string) => request<Project>('POST', '/api/projects', path ? { url, path } : { url }),
  push: (taskId: string) => request<{ sha: string; upstream: string }>('POST', `/api/tasks/${enc(taskId)}/push`),
  createPr: (taskId: string, body: { title?: string; body?: string; base?: string; draft?: boolean }) =>
    request<PullRequestInfo>('POST', `/api/tasks/${enc(taskId)}/pr`, body),
  refreshPr: (taskId: string) => request<PullRequestInfo>('GET', `/api/tasks/${enc(taskId)}/pr`),
  merge: (taskId: string, method: 'merge' | 'squash' | 'rebase', deleteBranch: boolean) =>
    request<{ sha: string; merged: boolean; message: string; pr: PullRequestInfo }>('POST', `/api/tasks/${enc(taskId)}/merge`, {
      method,
      delete_branch: deleteBranch,
    }),
  conflicts: (taskId: string) => request<Conflicts>('GET', `/api/tasks/${enc(taskId)}/conflicts`),
  projectConflicts: (projectId: string) => request<Conflicts[]>('GET', `/api/projects/${enc(projectId)}/conflicts`),
  updateFromBase: (taskId: string) =>
    request<{ result: 'up_to_date' | 'fast_forward' | 'merged'; sha: string }>('POST', `/api/tasks/${enc(taskId)}/update-from-base`),
};

/** A clone's progress as a fraction 0..1 and a short label. */
export function cloneProgress(p?: CloneProgress): { fraction: number; label: string } {
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
