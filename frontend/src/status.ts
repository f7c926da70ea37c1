// Words, colours and numbers for a task's state: the pills and dots of the task
// list, the task view and the phone view, the tab title's count, resource use.

import type { Task, TaskStatus, Usage } from './api';

/** 1st, 2nd, 3rd, 4th, 11th, 21st… */
export function ordinal(n: number): string {
  const mod100 = n % 100;
  if (mod100 >= 11 && mod100 <= 13) return `${n}th`;
  switch (n % 10) {
    case 1:
      return `${n}st`;
    case 2:
      return `${n}nd`;
    case 3:
      return `${n}rd`;
    default:
      return `${n}th`;
  }
}

const LABELS: Record<TaskStatus, string> = {
  creating: 'Creating',
  queued: 'Queued',
  starting: 'Starting',
  running: 'Running',
  needs_approval: 'Needs approval',
  waiting_input: 'Waiting for input',
  done: 'Done',
  failed: 'Failed',
  paused: 'Paused',
  stopped: 'Stopped',
  exited: 'Exited',
  error: 'Error',
};

/** "Needs approval", "Queued (2nd)", "Exited (1)", … */
export function statusLabel(t: Pick<Task, 'status' | 'queue_position' | 'exit_code'>): string {
  const base = LABELS[t.status] ?? t.status;
  if (t.status === 'queued' && t.queue_position != null) return `${base} (${ordinal(t.queue_position)})`;
  if (t.status === 'exited' && t.exit_code != null) return `${base} (${t.exit_code})`;
  return base;
}

/** A longer sentence for the pill's tooltip. */
export function statusHelp(t: Pick<Task, 'status' | 'queue_position' | 'attention'>): string {
  switch (t.status) {
    case 'creating':
      return 'Creating the branch, worktree and container';
    case 'queued':
      return `Waiting for a free slot (too many sandboxes running)${t.queue_position != null ? `: ${ordinal(t.queue_position)} in line` : ''}`;
    case 'starting':
      return 'The sandbox started; the agent has not reported yet';
    case 'running':
      return 'The agent is working';
    case 'needs_approval':
      return `The agent asks to use ${t.attention?.tool ?? 'a tool'}: allow or deny`;
    case 'waiting_input':
      return t.attention?.message ? `The agent waits for you: ${t.attention.message}` : 'The agent waits for your input';
    case 'done':
      return 'The agent finished its turn';
    case 'failed':
      return t.attention?.message ? `The agent's turn failed: ${t.attention.message}` : "The agent's turn failed";
    case 'paused':
      return 'Paused while idle (the processes are frozen); resumes on a keystroke or Resume';
    case 'stopped':
      return 'The container is stopped; Start runs it again';
    case 'exited':
      return "The agent's process ended; Start runs it again";
    case 'error':
      return 'Something went wrong; see the message';
  }
  return t.status;
}

/** The dot's class: its colour and whether it pulses. */
export function statusClass(status: TaskStatus): string {
  switch (status) {
    case 'running':
      return 'dot-running';
    case 'starting':
      return 'dot-starting';
    case 'done':
      return 'dot-done';
    case 'needs_approval':
      return 'dot-approval';
    case 'waiting_input':
      return 'dot-attention';
    case 'failed':
    case 'error':
      return 'dot-error';
    case 'creating':
      return 'dot-creating';
    case 'queued':
      return 'dot-queued';
    case 'paused':
      return 'dot-paused';
    default:
      return 'dot-stopped';
  }
}

/** Whether the task waits for the user to act: counted in the tab title. */
export function needsYou(status: TaskStatus): boolean {
  return status === 'needs_approval' || status === 'waiting_input' || status === 'failed';
}

/** 512 MiB, 1.5 GiB (binary units, like Docker). */
export function formatBytes(n: number): string {
  const mib = n / 1048576;
  if (mib < 1) return `${Math.max(0, Math.round(n / 1024))} KiB`;
  if (mib < 1024) return `${mib < 10 ? mib.toFixed(1) : Math.round(mib)} MiB`;
  const gib = mib / 1024;
  return `${gib < 10 ? gib.toFixed(1) : Math.round(gib)} GiB`;
}

/** Compact: "12% · 310M". */
export function usageShort(u: Usage): string {
  const mib = u.memory_bytes / 1048576;
  const mem = mib >= 1024 ? `${(mib / 1024).toFixed(1)}G` : `${Math.round(mib)}M`;
  return `${Math.round(u.cpu_percent)}% · ${mem}`;
}

/** CPU as a percentage of one CPU (can exceed 100 with several). */
export function cpuText(u: Usage): string {
  return `${u.cpu_percent < 10 ? u.cpu_percent.toFixed(1) : Math.round(u.cpu_percent)}%`;
}

/** "310 MiB of 4.0 GiB". */
export function memoryText(u: Usage): string {
  return u.memory_limit_bytes > 0 ? `${formatBytes(u.memory_bytes)} of ${formatBytes(u.memory_limit_bytes)}` : formatBytes(u.memory_bytes);
}
