// The HTTP side of docs/api.md: a bearer token, JSON in and out, errors as {error: {code, message}}.

import type { AgentGraph, StateDiff } from './runs';

export interface AgentSummary {
  name: string;
  description?: string;
  latency?: string;
  conversable?: boolean;
  capabilities?: unknown[];
  models?: unknown[];
}

export interface AgentDetail {
  name: string;
  description?: string;
  version?: unknown;
  listening_action?: string | null;
  /** The agent's graph (actions, transitions, entrypoint), as `choir graph --format json` prints it. */
  graph?: AgentGraph | null;
  /** Its `kind: AgentContract` document as JSON (null: the agent has none). Read generically. */
  contract?: Record<string, unknown> | null;
  /** The tools this server has that the contract lets it use. */
  tools?: { name: string; description?: string }[];
  /** The model aliases its contract allows, and whether this server's gateway serves each. */
  models?: { alias: string; served: boolean }[];
}

export interface RunRecord {
  run_id: string;
  agent: string;
  status: string;
  next_action?: string | null;
  last_sequence?: number | null;
  /** A fork's (or a child run's) parent and the step it starts after. */
  parent_run?: string | null;
  parent_step?: number | null;
  /** The sequence id the run's first step follows: -1, or the fork point. */
  start_after?: number | null;
  created_ms?: number;
  updated_ms?: number;
}

export interface StepRecord {
  sequence_id: number;
  action: string;
  status: string;
  inputs?: Record<string, unknown> | null;
  result?: unknown;
  delta?: unknown;
  attempts?: number;
  next?: string | null;
  committed_ms?: number;
  error?: { code?: string; message?: string } | null;
}

/** A consent request (docs/audit.md, "Consent"): a gated call waiting for, or given, a person's answer. */
export interface ConsentRecord {
  id: string;
  key?: string;
  tenant?: string;
  user?: string;
  agent?: string;
  run_id?: string;
  step?: number | null;
  capability: string;
  argument?: string | null;
  /** The call's arguments, redacted to the contract's `observability.log_fields`. */
  arguments?: Record<string, unknown> | null;
  status: 'pending' | 'approved' | 'denied' | 'expired' | (string & {});
  answered_by?: string | null;
  reason?: string | null;
  created_ms?: number;
  expires_ms?: number | null;
  answered_ms?: number | null;
}

export type ConsentFilter = 'pending' | 'approved' | 'denied' | 'expired' | 'all';

export interface ConsentAnswer {
  consent: ConsentRecord;
  run_id?: string;
  /** The run resumed by itself: its events arrive on the stream. */
  continued?: boolean;
}

/** An audit log entry (docs/audit.md, "Entries"); read generically, as servers may add fields. */
export type AuditEntry = Record<string, unknown>;

/** GET /api/v1/audit/verify: the chain's verification (`choir audit verify --json`). */
export interface AuditReport {
  ok: boolean;
  entries?: number;
  verified?: number;
  problem?: string | null;
  problem_at?: number | null;
  notes?: unknown;
}

/** What `resume`, `input` and `cancel` answer: accepted; the run's events follow on the stream. */
export interface RunAccepted {
  run_id: string;
  cursor: number | null;
  accepted: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Why a request failed, in a sentence for the person at the desktop. */
export function describeError(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 0) return e.message;
    return `${e.message} (HTTP ${e.status}${e.code ? `, ${e.code}` : ''})`;
  }
  return e instanceof Error ? e.message : String(e);
}

export class Api {
  private readonly token: string;
  private readonly onUnauthorized?: () => void;
  private readonly base: string;

  constructor(token: string, onUnauthorized?: () => void, base = '/api/v1') {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
    this.base = base;
  }

  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}`, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'network', `Cannot reach the server (${e instanceof Error ? e.message : String(e)})`);
    }
    const text = await response.text();
    let json: unknown = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    if (!response.ok) {
      const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
      const message = err?.message || response.statusText || 'request failed';
      if (response.status === 401) this.onUnauthorized?.();
      throw new ApiError(response.status, err?.code ?? '', message);
    }
    return json as T;
  }

  agents(): Promise<{ agents: AgentSummary[] }> {
    return this.request('GET', '/agents');
  }

  agent(name: string): Promise<AgentDetail> {
    return this.request('GET', `/agents/${encodeURIComponent(name)}`);
  }

  conversations(): Promise<{ conversations: RunRecord[] }> {
    return this.request('GET', '/conversations');
  }

  /** Starts a run of any agent on the server (it runs there; follow it in the debugger). */
  startRun(agent: string, inputs?: Record<string, unknown>): Promise<RunRecord> {
    return this.request('POST', '/runs', inputs ? { agent, inputs } : { agent });
  }

  /** A conversation: its run and its chat so far (a fork's begins with its parents' messages). */
  conversation(runId: string): Promise<{ run: RunRecord; messages: { role: string; text: string; sequence_id: number }[] }> {
    return this.request('GET', `/conversations/${encodeURIComponent(runId)}`);
  }

  openConversation(agent: string): Promise<{ run_id: string; agent: string; status: string }> {
    return this.request('POST', '/conversations', { agent });
  }

  steps(runId: string, from: number, limit = 500): Promise<{ steps: StepRecord[]; next: number | null }> {
    return this.request('GET', `/runs/${encodeURIComponent(runId)}/steps?from=${from}&limit=${limit}`);
  }

  /** The tenant's runs, newest first (optionally of one agent, one status, or the forks of `parent`). */
  runs(
    opts: { limit?: number; agent?: string; status?: string; parent?: string; before?: string } = {},
  ): Promise<{ runs: RunRecord[]; next_before?: string | null }> {
    const q = new URLSearchParams({ limit: String(opts.limit ?? 200) });
    if (opts.agent) q.set('agent', opts.agent);
    if (opts.status) q.set('status', opts.status);
    if (opts.parent) q.set('parent', opts.parent);
    if (opts.before) q.set('before', opts.before);
    return this.request('GET', `/runs?${q}`);
  }

  run(runId: string): Promise<RunRecord> {
    return this.request('GET', `/runs/${encodeURIComponent(runId)}`);
  }

  /** The state after step `at`. */
  runState(runId: string, at: number): Promise<{ run_id: string; at: number; state: Record<string, unknown> }> {
    return this.request('GET', `/runs/${encodeURIComponent(runId)}/state?at=${at}`);
  }

  /** What step `to` changed in the state (from the step before it). */
  runDiff(runId: string, to: number): Promise<StateDiff> {
    return this.request('GET', `/runs/${encodeURIComponent(runId)}/diff?to=${to}`);
  }

  /** A new run starting from the state after step `at` of `runId` (status halted). */
  fork(runId: string, at?: number): Promise<RunRecord> {
    return this.request('POST', `/runs/${encodeURIComponent(runId)}/fork`, at === undefined ? {} : { at });
  }

  /** Continues a run on the server from its last committed step; its events follow on the stream. */
  resume(runId: string, inputs?: Record<string, unknown>): Promise<RunAccepted> {
    return this.request('POST', `/runs/${encodeURIComponent(runId)}/resume`, inputs ? { inputs } : {});
  }

  /** Gives a run waiting at a `human` action the inputs it takes, and continues it. */
  input(runId: string, inputs: Record<string, unknown>): Promise<RunAccepted> {
    return this.request('POST', `/runs/${encodeURIComponent(runId)}/input`, { inputs });
  }

  /** Cancels a run: it stops at its next step boundary and is never continued. */
  cancel(runId: string): Promise<RunAccepted> {
    return this.request('POST', `/runs/${encodeURIComponent(runId)}/cancel`, {});
  }

  me(): Promise<{ tenant: string; user: string }> {
    return this.request('GET', '/me');
  }

  consents(status: ConsentFilter = 'pending'): Promise<{ consents: ConsentRecord[] }> {
    return this.request('GET', `/consents?status=${status}`);
  }

  /** Approves or denies a consent request; `reason` is sent only when given. */
  answerConsent(id: string, answer: 'approve' | 'deny', reason?: string): Promise<ConsentAnswer> {
    const why = reason?.trim();
    return this.request('POST', `/consents/${encodeURIComponent(id)}/${answer}`, why ? { reason: why } : {});
  }

  /**
   * The caller's tenant's last `limit` audit entries (before sequence number `before`), oldest
   * first (optionally of one run); `next_before` reads the page before, if there may be one.
   */
  audit(limit = 200, run?: string, before?: number): Promise<{ entries: AuditEntry[]; next_before?: number | null }> {
    const q = new URLSearchParams({ limit: String(limit) });
    if (run) q.set('run', run);
    if (before !== undefined) q.set('before', String(before));
    return this.request('GET', `/audit?${q}`);
  }

  auditVerify(): Promise<AuditReport> {
    return this.request('GET', '/audit/verify');
  }

  say(runId: string, text: string): Promise<{ run_id: string; cursor: number }> {
    return this.request('POST', `/conversations/${encodeURIComponent(runId)}/messages`, { text });
  }
}
