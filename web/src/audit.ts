// The audit viewer's logic (docs/audit.md, "The audit log"): entries read generically — the
// documented keys are seq, time_ms, kind, tenant, user, agent, run, step, capability, argument,
// decision, reason and details, and any other key a server adds is shown as a detail.
import type { AuditEntry, AuditReport } from './api';
import { describeCall } from './consents';

export interface AuditRow {
  /** A key for React: the seq, else the position. */
  key: string;
  seq: number | null;
  timeMs: number | null;
  kind: string;
  /** `user@tenant`, or whichever of them is known. */
  who: string;
  agent: string;
  run: string;
  step: number | null;
  capability: string;
  argument: string;
  /** `capability(argument)`. */
  call: string;
  decision: string;
  tone: DecisionTone;
  reason: string;
  /** `details` and any key not shown in a column, as readable pairs. */
  details: { key: string; text: string }[];
}

export type DecisionTone = 'good' | 'bad' | 'neutral';

const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : '');
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : null);

/** The first of `keys` the entry has (not null or ""). */
function pick(e: AuditEntry, keys: string[]): unknown {
  for (const k of keys) if (e[k] !== undefined && e[k] !== null && e[k] !== '') return e[k];
  return undefined;
}

const COLUMNS: Record<string, string[]> = {
  seq: ['seq', 'sequence', 'id'],
  time: ['time_ms', 'ts_ms', 'at_ms', 'created_ms', 'time', 'ts'],
  kind: ['kind', 'type', 'event'],
  tenant: ['tenant'],
  user: ['user', 'actor'],
  agent: ['agent'],
  run: ['run', 'run_id'],
  step: ['step'],
  capability: ['capability'],
  argument: ['argument'],
  decision: ['decision', 'outcome'],
  reason: ['reason'],
};
const SHOWN = new Set(Object.values(COLUMNS).flat());

/** How a decision reads: allowed or done is good, refused or failed is bad. */
export function decisionTone(decision: string): DecisionTone {
  const d = decision.toLowerCase();
  if (['allow', 'allowed', 'ok', 'approved', 'approve', 'admitted', 'granted'].includes(d)) return 'good';
  if (['deny', 'denied', 'failed', 'refused', 'rejected', 'expired', 'error'].includes(d)) return 'bad';
  return 'neutral';
}

function readable(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
}

export function auditRow(e: AuditEntry, index = 0): AuditRow {
  const seq = num(pick(e, COLUMNS.seq));
  const rawTime = pick(e, COLUMNS.time);
  let timeMs = num(rawTime);
  if (timeMs === null && typeof rawTime === 'string') {
    const parsed = Date.parse(rawTime);
    timeMs = Number.isNaN(parsed) ? null : parsed;
  }
  const tenant = str(pick(e, COLUMNS.tenant));
  const user = str(pick(e, COLUMNS.user));
  const capability = str(pick(e, COLUMNS.capability));
  const argument = str(pick(e, COLUMNS.argument));
  const decision = str(pick(e, COLUMNS.decision));
  const details: { key: string; text: string }[] = [];
  const d = e.details;
  if (d && typeof d === 'object' && !Array.isArray(d)) {
    for (const [k, v] of Object.entries(d as Record<string, unknown>)) details.push({ key: k, text: readable(v) });
  } else if (d !== undefined && d !== null && d !== '') {
    details.push({ key: 'details', text: readable(d) });
  }
  for (const [k, v] of Object.entries(e)) {
    if (k === 'details' || SHOWN.has(k) || v === undefined || v === null || v === '') continue;
    details.push({ key: k, text: readable(v) });
  }
  return {
    key: seq !== null ? `s${seq}` : `i${index}`,
    seq,
    timeMs,
    kind: str(pick(e, COLUMNS.kind)),
    who: user && tenant ? `${user}@${tenant}` : user || tenant,
    agent: str(pick(e, COLUMNS.agent)),
    run: str(pick(e, COLUMNS.run)),
    step: num(pick(e, COLUMNS.step)),
    capability,
    argument,
    call: capability ? describeCall(capability, argument) : argument,
    decision,
    tone: decisionTone(decision),
    reason: str(pick(e, COLUMNS.reason)),
    details,
  };
}

/** The rows to show, newest first (the server sends them oldest first). */
export function auditRows(entries: AuditEntry[] | null | undefined): AuditRow[] {
  if (!Array.isArray(entries)) return [];
  const rows = entries.filter((e) => e && typeof e === 'object').map((e, i) => auditRow(e, i));
  // By seq where both have one, else as sent (reversed).
  return rows
    .map((r, i) => ({ r, i }))
    .sort((a, b) => (a.r.seq !== null && b.r.seq !== null ? b.r.seq - a.r.seq : b.i - a.i))
    .map(({ r }) => r);
}

export interface VerifySummary {
  state: 'intact' | 'tampered' | 'unknown';
  text: string;
}

/** The chain's verification in a line for the viewer's header. */
export function verifySummary(report: AuditReport | null | undefined): VerifySummary {
  if (!report || typeof report.ok !== 'boolean') return { state: 'unknown', text: 'Chain not verified' };
  const n = typeof report.verified === 'number' ? report.verified : report.entries;
  const count = typeof n === 'number' ? ` (${n} ${n === 1 ? 'entry' : 'entries'} verified)` : '';
  if (report.ok) return { state: 'intact', text: `Chain intact ✓${count}` };
  const where = typeof report.problem_at === 'number' ? ` at entry ${report.problem_at}` : '';
  const problem = typeof report.problem === 'string' && report.problem ? `: ${report.problem}` : '';
  return { state: 'tampered', text: `Chain tampered ✗${problem || where}` };
}

/** The notes a verification adds, as lines. */
export function verifyNotes(report: AuditReport | null | undefined): string[] {
  const notes = report?.notes;
  if (Array.isArray(notes)) return notes.map(readable).filter(Boolean);
  if (typeof notes === 'string' && notes) return [notes];
  return [];
}

/** A run id as typed into the filter: trimmed; null when it cannot be one (the server says 400). */
export function runFilter(text: string): string | null {
  const t = text.trim();
  return /^[A-Za-z0-9._-]{1,128}$/.test(t) ? t : null;
}

/**
 * Older pages read with "Older entries" (`next_before`) put in front of what was shown, each entry
 * once (by seq): the result is oldest first, as the API sends a page.
 */
export function withOlder(older: AuditEntry[], shown: AuditEntry[]): AuditEntry[] {
  const seen = new Set<number>();
  const out: AuditEntry[] = [];
  for (const e of [...older, ...shown]) {
    const seq = num(e?.seq);
    if (seq !== null) {
      if (seen.has(seq)) continue;
      seen.add(seq);
    }
    out.push(e);
  }
  return out;
}
