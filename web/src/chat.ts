// A chat window's state, built from its run's stream (docs/api.md, "Conversations and chat
// messages"): each step of the listening action is the user's message (`inputs.message`), each
// string a step sets at `reply` is the agent's answer, and `token` events show the answer as it is
// written until its step commits.
import type { RunRecord, StepRecord } from './api';
import { parseConsentWait, type ConsentWait } from './consents';
import type { ConnectionState, RunFrame } from './stream';

/** What the chat keeps of a committed step. */
interface StepEntry {
  kind: 'step';
  key: string;
  seq: number;
  action: string;
  hasMessage: boolean;
  message: unknown;
  replies: string[];
  error: string | null;
}

/** A message sent and not yet seen as a step, or an error worth showing in the chat. */
interface LocalEntry {
  kind: 'pending' | 'error';
  key: string;
  text: string;
}

type Entry = StepEntry | LocalEntry;

export interface Bubble {
  key: string;
  role: 'user' | 'agent' | 'error';
  text: string;
  pending?: boolean;
  /** From the run this one was forked from, before the fork. */
  earlier?: boolean;
}

/** A message as `GET /api/v1/conversations/{id}` lists it. */
export interface HistoryMessage {
  role: string;
  text: string;
  sequence_id: number;
}

export interface ChatState {
  /** The agent's listening action (null until known). */
  listening: string | null;
  entries: Entry[];
  lastSeq: number;
  /** Tokens of the answer being written, by the action writing it. */
  streaming: { action: string; text: string } | null;
  /** A turn runs, or a message is on its way to start one. */
  busy: boolean;
  subscribed: boolean;
  connection: ConnectionState;
  runStatus: string | null;
  /** The action running or next to run. */
  action: string | null;
  /** The current turn already showed a failed step. */
  turnFailedStep: boolean;
  /** What the run waits for a person's consent to do, once a turn ended `waiting_consent`. */
  consent: ConsentWait | null;
  counter: number;
  /** A fork's messages from before the fork (its parents'), shown first. */
  earlier: Bubble[];
  /** The agent's mode, as its last step that set the state key `mode` left it (the copilot's). */
  mode: string | null;
}

export type ChatAction =
  | { type: 'frame'; frame: RunFrame }
  | { type: 'listening'; action: string | null }
  | { type: 'send'; text: string }
  | { type: 'send_failed'; message: string }
  | { type: 'error'; message: string }
  | { type: 'earlier'; messages: HistoryMessage[]; forkedAt: number };

export const initialChat: ChatState = {
  listening: null,
  entries: [],
  lastSeq: -1,
  streaming: null,
  busy: false,
  subscribed: false,
  connection: 'connecting',
  runStatus: null,
  action: null,
  turnFailedStep: false,
  consent: null,
  counter: 0,
  earlier: [],
  mode: null,
};

/** The text of a user message: strings as they are, `{text}` objects by their text, else JSON. */
export function messageText(message: unknown): string {
  if (typeof message === 'string') return message;
  if (message && typeof message === 'object' && typeof (message as { text?: unknown }).text === 'string') {
    return (message as { text: string }).text;
  }
  return JSON.stringify(message);
}

/** The strings a step's delta sets at `reply`. */
export function repliesOf(delta: unknown): string[] {
  if (!Array.isArray(delta)) return [];
  const out: string[] = [];
  for (const op of delta) {
    if (op && typeof op === 'object' && op.op === 'set' && op.key === 'reply' && typeof op.value === 'string') {
      out.push(op.value);
    }
  }
  return out;
}

/** The mode a step's delta sets (the state key `mode`, a string), if it sets one. */
export function modeOf(delta: unknown): string | null {
  if (!Array.isArray(delta)) return null;
  let mode: string | null = null;
  for (const op of delta) {
    if (op && typeof op === 'object' && op.op === 'set' && op.key === 'mode' && typeof op.value === 'string') mode = op.value;
  }
  return mode;
}

/** A message we sent has not arrived as a step yet. */
function hasPending(state: ChatState): boolean {
  return state.entries.some((e) => e.kind === 'pending');
}

function isUserStep(entry: StepEntry, listening: string | null): boolean {
  // Until the agent's listening action is known, any step given a `message` input counts.
  return entry.hasMessage && (listening === null || entry.action === listening);
}

function addStep(state: ChatState, step: StepRecord): ChatState {
  if (typeof step?.sequence_id !== 'number' || step.sequence_id <= state.lastSeq) return state;
  const inputs = step.inputs && typeof step.inputs === 'object' ? step.inputs : {};
  const failed = step.status === 'failed';
  const entry: StepEntry = {
    kind: 'step',
    key: `s${step.sequence_id}`,
    seq: step.sequence_id,
    action: step.action,
    hasMessage: Object.prototype.hasOwnProperty.call(inputs, 'message'),
    message: (inputs as Record<string, unknown>).message,
    replies: repliesOf(step.delta),
    error: failed ? `${step.action} failed: ${step.error?.message ?? step.error?.code ?? 'unknown error'}` : null,
  };
  let entries = state.entries;
  if (isUserStep(entry, state.listening)) {
    // The message we sent has arrived as a step: it replaces its pending bubble.
    const i = entries.findIndex((e) => e.kind === 'pending');
    if (i >= 0) entries = [...entries.slice(0, i), ...entries.slice(i + 1)];
  }
  const streaming =
    state.streaming && (state.streaming.action === step.action || entry.replies.length > 0) ? null : state.streaming;
  return {
    ...state,
    entries: [...entries, entry],
    lastSeq: step.sequence_id,
    streaming,
    action: step.next ?? null,
    turnFailedStep: state.turnFailedStep || failed,
    mode: modeOf(step.delta) ?? state.mode,
  };
}

function addLocal(state: ChatState, kind: LocalEntry['kind'], text: string): ChatState {
  const counter = state.counter + 1;
  return { ...state, counter, entries: [...state.entries, { kind, key: `l${counter}`, text }] };
}

/** The oldest message on its way will not arrive: its bubble becomes an error. */
function refused(state: ChatState, text: string): ChatState {
  const i = state.entries.findIndex((e) => e.kind === 'pending');
  const entries = i >= 0 ? [...state.entries.slice(0, i), ...state.entries.slice(i + 1)] : state.entries;
  const next = { ...state, entries };
  return addLocal({ ...next, busy: hasPending(next) }, 'error', text);
}

function applyFrame(state: ChatState, frame: RunFrame): ChatState {
  switch (frame.type) {
    case 'connection':
      return { ...state, connection: frame.state };
    case 'subscribed': {
      const run: Partial<RunRecord> = frame.run ?? {};
      const status = run.status ?? null;
      // A turn we did not see end (we were offline) has ended if the run no longer runs, unless a
      // message we sent has not arrived yet (its turn is still to come). A run found `running`
      // without a turn seen starting does not lock the input: its process may have died (the
      // server queues a message that arrives during a turn).
      const busy = hasPending(state) || (state.busy && status === 'running');
      return {
        ...state,
        subscribed: true,
        runStatus: status,
        action: run.next_action ?? null,
        busy,
        streaming: busy ? state.streaming : null,
        consent: status === 'waiting_consent' ? state.consent : null,
      };
    }
    case 'resync':
      return { ...state, streaming: null };
    case 'error':
      return addLocal(state, 'error', frame.message);
    case 'event': {
      const data = (frame.data ?? {}) as Record<string, unknown>;
      switch (frame.kind) {
        case 'step':
          return addStep(state, frame.data as StepRecord);
        case 'turn_started':
          return { ...state, busy: true, runStatus: 'running', turnFailedStep: false, consent: null };
        case 'token': {
          const action = typeof data.action === 'string' ? data.action : '';
          const text = typeof data.text === 'string' ? data.text : '';
          const before = state.streaming && state.streaming.action === action ? state.streaming.text : '';
          return { ...state, busy: true, action: action || state.action, streaming: { action, text: before + text } };
        }
        case 'error': {
          // A message refused before its turn ran: it will not arrive as a step.
          const why = typeof data.message === 'string' ? data.message : 'the message was refused';
          return refused({ ...state, streaming: null }, `Not delivered: ${why}`);
        }
        case 'turn_ended': {
          const ended = typeof data.ended === 'string' ? data.ended : 'waiting';
          const next = typeof data.next_action === 'string' ? data.next_action : null;
          // A turn waiting for consent is not an error: the status line says what it waits for
          // (and the run continues by itself once the request is answered).
          let out: ChatState = {
            ...state,
            busy: hasPending(state),
            streaming: null,
            runStatus: ended === 'error' ? 'failed' : ended,
            action: next,
            consent: ended === 'waiting_consent' ? parseConsentWait(data.error) : null,
          };
          if ((ended === 'failed' || ended === 'error') && !state.turnFailedStep) {
            out = addLocal(out, 'error', `The turn failed${data.error ? `: ${String(data.error)}` : '.'}`);
          }
          return out;
        }
        default:
          return state;
      }
    }
    default:
      return state;
  }
}

export function chatReducer(state: ChatState, action: ChatAction): ChatState {
  switch (action.type) {
    case 'frame':
      return applyFrame(state, action.frame);
    case 'listening':
      return { ...state, listening: action.action };
    case 'send':
      return { ...addLocal(state, 'pending', action.text), busy: true, turnFailedStep: false };
    case 'send_failed':
      return refused(state, `Not sent: ${action.message}`);
    case 'error':
      return addLocal(state, 'error', action.message);
    case 'earlier':
      return { ...state, earlier: earlierBubbles(action.messages, action.forkedAt) };
  }
}

/** The messages of a fork's history up to its fork point (its parents'), as bubbles. */
export function earlierBubbles(messages: readonly HistoryMessage[], forkedAt: number): Bubble[] {
  return messages
    .filter((m) => typeof m.sequence_id === 'number' && m.sequence_id <= forkedAt && (m.role === 'user' || m.role === 'agent'))
    .map((m, i) => ({ key: `p${m.sequence_id}-${i}`, role: m.role as 'user' | 'agent', text: String(m.text ?? ''), earlier: true }));
}

/** The chat's bubbles, in order. */
export function bubbles(state: ChatState): Bubble[] {
  const out: Bubble[] = [...state.earlier];
  for (const e of state.entries) {
    if (e.kind !== 'step') {
      out.push(e.kind === 'pending' ? { key: e.key, role: 'user', text: e.text, pending: true } : { key: e.key, role: 'error', text: e.text });
    } else {
      if (isUserStep(e, state.listening)) out.push({ key: e.key, role: 'user', text: messageText(e.message) });
      e.replies.forEach((text, i) => out.push({ key: `${e.key}r${i}`, role: 'agent', text }));
      if (e.error) out.push({ key: `${e.key}e`, role: 'error', text: e.error });
    }
  }
  return out;
}

/** The run can take no more messages. */
export function isClosed(state: ChatState): boolean {
  return state.runStatus === 'completed';
}

/**
 * The run waits for a person to answer a consent request. It continues by itself once answered, so
 * no message is taken meanwhile (a new one would start the turn over).
 */
export function waitingConsent(state: ChatState): boolean {
  return state.subscribed && !state.busy && state.runStatus === 'waiting_consent';
}

export function canSend(state: ChatState): boolean {
  return state.subscribed && !state.busy && !isClosed(state) && state.runStatus !== 'waiting_consent';
}

/**
 * The window's status line: what the agent is doing, and a tone for its dot. `consentHint` says
 * what a run waiting for consent waits to do when the chat has not seen its turn end (the desktop
 * knows it from the pending requests).
 */
export function statusLine(
  state: ChatState,
  consentHint: string | null = null,
): { text: string; tone: 'idle' | 'busy' | 'warn' | 'error' } {
  if (state.connection !== 'ready' && (!state.subscribed || state.connection === 'offline')) {
    return state.connection === 'offline'
      ? { text: 'offline, reconnecting…', tone: 'warn' }
      : { text: 'connecting…', tone: 'warn' };
  }
  if (!state.subscribed) return { text: 'loading…', tone: 'warn' };
  if (state.busy) {
    if (state.streaming) return { text: `${state.streaming.action || 'agent'}: writing…`, tone: 'busy' };
    if (state.action) return { text: `${state.action}: working…`, tone: 'busy' };
    return { text: 'working…', tone: 'busy' };
  }
  const action = state.action;
  switch (state.runStatus) {
    case 'waiting':
      return action && state.listening && action !== state.listening
        ? { text: `waiting at ${action}`, tone: 'idle' }
        : { text: 'waiting for your message', tone: 'idle' };
    case 'running':
      return { text: action ? `running: ${action}` : 'running', tone: 'busy' };
    case 'completed':
      return { text: 'conversation ended', tone: 'idle' };
    case 'failed':
      return { text: action ? `failed at ${action}` : 'failed', tone: 'error' };
    case 'waiting_consent':
      return {
        text: (state.consent?.what ?? consentHint) ? `waiting for your consent to ${state.consent?.what ?? consentHint}` : 'waiting for your consent',
        tone: 'warn',
      };
    case null:
      return { text: 'ready', tone: 'idle' };
    default:
      return { text: action ? `${state.runStatus}: ${action}` : state.runStatus, tone: 'warn' };
  }
}
