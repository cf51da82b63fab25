import { describe, expect, it } from 'vitest';
import {
  bubbles,
  canSend,
  chatReducer,
  modeOf,
  earlierBubbles,
  initialChat,
  messageText,
  repliesOf,
  statusLine,
  waitingConsent,
  type ChatAction,
  type ChatState,
} from './chat';
import type { RunFrame } from './stream';

const RUN = 'r1';
const frame = (f: RunFrame): ChatAction => ({ type: 'frame', frame: f });
const ev = (kind: string, cursor: number, data: unknown): ChatAction =>
  frame({ type: 'event', run_id: RUN, kind, cursor, data });
const step = (sequence_id: number, action: string, extra: Record<string, unknown> = {}) =>
  ev('step', sequence_id, { sequence_id, action, status: 'completed', inputs: {}, delta: [], next: null, ...extra });
const subscribed = (status: string, next_action: string | null = 'listen', cursor = -1): ChatAction =>
  frame({ type: 'subscribed', run_id: RUN, cursor, run: { run_id: RUN, agent: 'assistant', status, next_action } });

const run = (...actions: ChatAction[]): ChatState =>
  actions.reduce(chatReducer, chatReducer(initialChat, { type: 'listening', action: 'listen' }));

const said = (s: ChatState) => bubbles(s).map((b) => `${b.role}${b.pending ? '?' : ''}: ${b.text}`);

describe('messages', () => {
  it('reads strings as they are, {text} objects by their text, anything else as JSON', () => {
    expect(messageText('hi')).toBe('hi');
    expect(messageText({ text: 'hi', urgent: true })).toBe('hi');
    expect(messageText({ a: 1 })).toBe('{"a":1}');
    expect(messageText(3)).toBe('3');
  });

  it('takes the strings a delta sets at reply', () => {
    expect(
      repliesOf([
        { op: 'set', key: 'reply', value: 'yes' },
        { op: 'set', key: 'other', value: 'no' },
        { op: 'append', key: 'reply', value: 'no' },
        { op: 'set', key: 'reply', value: { not: 'a string' } },
      ]),
    ).toEqual(['yes']);
    expect(repliesOf(null)).toEqual([]);
  });
});

describe('the chat', () => {
  it('shows listening steps as user messages and replies as agent messages, in order', () => {
    const s = run(
      step(0, 'listen', { inputs: { message: 'hello' }, next: 'think' }),
      step(1, 'think', { delta: [{ op: 'set', key: 'reply', value: 'Hi!' }], next: 'listen' }),
      step(2, 'other', { inputs: { message: 'not a user message' } }),
      subscribed('waiting', 'listen', 2),
    );
    expect(said(s)).toEqual(['user: hello', 'agent: Hi!']);
    expect(canSend(s)).toBe(true);
    expect(statusLine(s).text).toBe('waiting for your message');
  });

  it('ignores a step it already has', () => {
    const s = run(step(0, 'listen', { inputs: { message: 'a' } }), step(0, 'listen', { inputs: { message: 'a' } }));
    expect(said(s)).toEqual(['user: a']);
  });

  it('runs a turn: pending message, tokens streaming, committed reply, then waits', () => {
    let s = run(subscribed('waiting'));
    s = chatReducer(s, { type: 'send', text: 'hello' });
    expect(said(s)).toEqual(['user?: hello']);
    expect(canSend(s)).toBe(false);

    s = [
      ev('turn_started', -1, { message: 'hello' }),
      step(0, 'listen', { inputs: { message: 'hello' }, next: 'think' }),
      ev('token', 0, { action: 'think', text: 'Hel' }),
      ev('token', 0, { action: 'think', text: 'lo!' }),
    ].reduce(chatReducer, s);
    expect(said(s)).toEqual(['user: hello']);
    expect(s.streaming).toEqual({ action: 'think', text: 'Hello!' });
    expect(statusLine(s).text).toBe('think: writing…');
    expect(canSend(s)).toBe(false);

    s = chatReducer(s, step(1, 'think', { delta: [{ op: 'set', key: 'reply', value: 'Hello!' }], next: 'listen' }));
    expect(s.streaming).toBeNull();
    expect(said(s)).toEqual(['user: hello', 'agent: Hello!']);
    expect(canSend(s)).toBe(false);

    s = chatReducer(s, ev('turn_ended', 1, { ended: 'waiting', next_action: 'listen', steps: 2 }));
    expect(canSend(s)).toBe(true);
    expect(statusLine(s).text).toBe('waiting for your message');
  });

  it('shows a failed turn once, and a failed send', () => {
    let s = run(subscribed('waiting'), { type: 'send', text: 'x' }, ev('turn_started', -1, {}));
    s = chatReducer(s, step(0, 'listen', { inputs: { message: 'x' } }));
    s = chatReducer(s, step(1, 'think', { status: 'failed', error: { code: 'model', message: 'boom' } }));
    s = chatReducer(s, ev('turn_ended', 1, { ended: 'failed', error: 'boom' }));
    expect(said(s)).toEqual(['user: x', 'error: think failed: boom']);
    expect(statusLine(s).tone).toBe('error');

    let t = run(subscribed('waiting'), ev('turn_started', -1, {}), ev('turn_ended', -1, { ended: 'error', error: 'lease lost' }));
    expect(said(t)).toEqual(['error: The turn failed: lease lost']);

    t = run(subscribed('waiting'), { type: 'send', text: 'y' }, { type: 'send_failed', message: 'HTTP 500' });
    expect(said(t)).toEqual(['error: Not sent: HTTP 500']);
    expect(canSend(t)).toBe(true);
  });

  it('shows a message refused before its turn ran, and takes messages again', () => {
    const s = run(subscribed('waiting'), { type: 'send', text: 'z' }, ev('error', -1, { message: 'the agent is busy' }));
    expect(said(s)).toEqual(['error: Not delivered: the agent is busy']);
    expect(canSend(s)).toBe(true);
  });

  it('keeps a sent message pending across a reconnect until its step arrives', () => {
    let s = run(subscribed('waiting'), { type: 'send', text: 'hi' });
    s = chatReducer(s, frame({ type: 'connection', state: 'offline' }));
    expect(statusLine(s).text).toMatch(/offline/);
    s = chatReducer(s, frame({ type: 'connection', state: 'ready' }));
    s = chatReducer(s, subscribed('waiting')); // the turn has not started yet
    expect(canSend(s)).toBe(false);
    s = [step(0, 'listen', { inputs: { message: 'hi' } }), ev('turn_ended', 0, { ended: 'waiting', next_action: 'listen' })].reduce(
      chatReducer,
      s,
    );
    expect(canSend(s)).toBe(true);
    expect(said(s)).toEqual(['user: hi']);
  });

  it('learns that a turn ended while it was offline from the subscribed frame', () => {
    let s = run(subscribed('waiting'), ev('turn_started', -1, {}));
    expect(canSend(s)).toBe(false);
    s = chatReducer(s, subscribed('waiting', 'listen', 3));
    expect(canSend(s)).toBe(true);
  });

  it('does not lock the input for a run found running without a turn seen', () => {
    const s = run(subscribed('running', 'think'));
    expect(canSend(s)).toBe(true);
    expect(statusLine(s).text).toBe('running: think');
  });

  it('waits for consent without an error, takes no message meanwhile, and shows the reply once the run continues', () => {
    let s = run(subscribed('waiting'), { type: 'send', text: 'save buy milk' }, ev('turn_started', -1, 'save buy milk'));
    s = [
      step(0, 'listen', { inputs: { message: 'save buy milk' }, next: 'think' }),
      ev('token', 0, { action: 'think', text: "I'll save that." }),
      ev('turn_ended', 0, {
        ended: 'waiting_consent',
        error: 'waiting for consent to fs.write(notes/chat.txt): request 210ce6eef591',
        next_action: 'think',
        steps: 1,
      }),
    ].reduce(chatReducer, s);
    expect(said(s)).toEqual(['user: save buy milk']);
    expect(s.streaming).toBeNull();
    expect(waitingConsent(s)).toBe(true);
    expect(canSend(s)).toBe(false);
    expect(statusLine(s)).toEqual({ text: 'waiting for your consent to fs.write(notes/chat.txt)', tone: 'warn' });

    // Approved: the run continues by itself.
    s = [
      ev('turn_started', 0, null),
      ev('token', 0, { action: 'think', text: 'Saved ' }),
      step(1, 'think', { delta: [{ op: 'set', key: 'reply', value: 'Saved to notes/chat.txt.' }], next: 'listen' }),
      ev('turn_ended', 1, { ended: 'waiting', next_action: 'listen', steps: 1 }),
    ].reduce(chatReducer, s);
    expect(said(s)).toEqual(['user: save buy milk', 'agent: Saved to notes/chat.txt.']);
    expect(waitingConsent(s)).toBe(false);
    expect(canSend(s)).toBe(true);
    expect(s.consent).toBeNull();
  });

  it('knows a run found waiting for consent, and what for from a hint', () => {
    const s = run(subscribed('waiting_consent', 'think', 0));
    expect(waitingConsent(s)).toBe(true);
    expect(canSend(s)).toBe(false);
    expect(statusLine(s).text).toBe('waiting for your consent');
    expect(statusLine(s, 'fs.write(notes/a.txt)').text).toBe('waiting for your consent to fs.write(notes/a.txt)');
    // Once it runs again, the wait is over.
    expect(waitingConsent(chatReducer(s, subscribed('waiting', 'listen', 1)))).toBe(false);
  });

  it('takes no more messages once the run completed', () => {
    const s = run(subscribed('completed', null));
    expect(canSend(s)).toBe(false);
    expect(statusLine(s).text).toBe('conversation ended');
  });

  it('counts any step given a message as the user speaking until the listening action is known', () => {
    const s = [step(0, 'ask', { inputs: { message: { text: 'hi' } } })].reduce(chatReducer, initialChat);
    expect(said(s)).toEqual(['user: hi']);
  });
});

describe('a fork', () => {
  it('shows its parents\' messages up to the fork first, marked as earlier', () => {
    const messages = [
      { role: 'user', text: 'one', sequence_id: 0 },
      { role: 'agent', text: 'reply one', sequence_id: 1 },
      { role: 'user', text: 'after the fork', sequence_id: 2 },
      { role: 'system', text: 'not a chat role', sequence_id: 0 },
    ];
    const state = chatReducer(initialChat, { type: 'earlier', messages, forkedAt: 1 });
    expect(bubbles(state).map((b) => [b.role, b.text, b.earlier])).toEqual([
      ['user', 'one', true],
      ['agent', 'reply one', true],
    ]);
    expect(earlierBubbles(messages, -1)).toEqual([]);
  });
});

describe('the agent\'s mode', () => {
  it('is what the last step that set `mode` left', () => {
    expect(modeOf([{ op: 'set', key: 'mode', value: 'PARANOID' }, { op: 'set', key: 'reply', value: 'x' }])).toBe('PARANOID');
    expect(modeOf([{ op: 'set', key: 'reply', value: 'x' }])).toBeNull();
    expect(modeOf([{ op: 'set', key: 'mode', value: 3 }])).toBeNull();
    expect(modeOf(null)).toBeNull();
  });
});
