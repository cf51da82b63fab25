// The consent inbox's logic (docs/api.md, "Consents"; docs/audit.md, "Consent"): which requests
// it shows and how it words them.
import type { ConsentRecord } from './api';

/** `capability(argument)`, or the capability alone when the call has no argument. */
export function describeCall(capability: string, argument?: string | null): string {
  return argument ? `${capability}(${argument})` : capability;
}

/**
 * A long id shortened for a glance: its last 8 characters (a run id is a UUIDv7, whose first
 * characters are its time and the same for runs started close together).
 */
export function shortId(id: string): string {
  return id.length > 10 ? `…${id.slice(-8)}` : id;
}

export interface ArgumentPair {
  key: string;
  text: string;
  /** The value was redacted (the contract does not log it). */
  redacted: boolean;
}

/** A call's arguments as readable key/value pairs: strings as they are, anything else as JSON. */
export function argumentPairs(args: unknown): ArgumentPair[] {
  if (!args || typeof args !== 'object' || Array.isArray(args)) {
    return args === undefined || args === null ? [] : [{ key: 'arguments', text: JSON.stringify(args), redacted: false }];
  }
  return Object.entries(args as Record<string, unknown>).map(([key, value]) => ({
    key,
    text: typeof value === 'string' ? value : JSON.stringify(value) ?? String(value),
    redacted: value === '[redacted]',
  }));
}

export interface ConsentWait {
  /** What the run waits to do, as `capability(argument)` (null when the server did not say). */
  what: string | null;
  /** The consent request's id (null when the server did not say). */
  id: string | null;
}

/**
 * What a turn that ended `waiting_consent` waits for, from its `error`:
 * "waiting for consent to fs.write(notes/chat.txt): request 210ce6eef591".
 */
export function parseConsentWait(error: unknown): ConsentWait {
  if (typeof error !== 'string') return { what: null, id: null };
  const m = /^\s*waiting for consent to ([\s\S]+): request (\S+)\s*$/i.exec(error);
  if (m) return { what: m[1], id: m[2] };
  const to = /^\s*waiting for consent to ([\s\S]+?)\s*$/i.exec(error);
  return { what: to ? to[1] : null, id: null };
}

export const isPending = (c: ConsentRecord) => c.status === 'pending';

/** Pending requests first, oldest first (in the order they were asked); then the rest, latest answer first. */
export function sortConsents(list: ConsentRecord[]): ConsentRecord[] {
  const when = (c: ConsentRecord) => c.answered_ms ?? c.created_ms ?? 0;
  return [...list].sort((a, b) => {
    if (isPending(a) !== isPending(b)) return isPending(a) ? -1 : 1;
    if (isPending(a)) return (a.created_ms ?? 0) - (b.created_ms ?? 0) || a.id.localeCompare(b.id);
    return when(b) - when(a) || a.id.localeCompare(b.id);
  });
}

/**
 * The inbox's rows: the pending requests, the ones answered here (their answer stays in view), and
 * with `showAnswered` every request the server has (`all`, once read). A request known both pending
 * and answered is shown answered: an answer is final.
 */
export function inboxRows(
  pending: ConsentRecord[] | null,
  all: ConsentRecord[] | null,
  answeredHere: ReadonlyMap<string, ConsentRecord>,
  showAnswered: boolean,
): ConsentRecord[] {
  const byId = new Map<string, ConsentRecord>();
  const add = (c: ConsentRecord) => {
    if (!c || typeof c.id !== 'string') return;
    const had = byId.get(c.id);
    if (!had || (isPending(had) && !isPending(c))) byId.set(c.id, c);
  };
  if (showAnswered) all?.forEach(add);
  pending?.forEach(add);
  answeredHere.forEach(add);
  return sortConsents([...byId.values()]);
}

const VERB: Record<string, string> = { approved: 'Approved', denied: 'Denied', expired: 'Expired' };

/** An answered request in a sentence: "Approved by local/local: looks fine". */
export function answerText(c: ConsentRecord): string {
  if (isPending(c)) return 'Waiting for an answer';
  const verb = VERB[c.status] ?? c.status.charAt(0).toUpperCase() + c.status.slice(1);
  const by = c.answered_by ? ` by ${c.answered_by}` : c.status === 'expired' ? ' unanswered' : '';
  return `${verb}${by}${c.reason ? `: ${c.reason}` : ''}`;
}

/** The badge's count: pending requests not yet answered here. */
export function pendingCount(pending: ConsentRecord[] | null, answeredHere: ReadonlyMap<string, ConsentRecord>): number {
  return (pending ?? []).filter((c) => isPending(c) && !answeredHere.has(c.id)).length;
}
