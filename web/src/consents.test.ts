import { describe, expect, it } from 'vitest';
import type { ConsentRecord } from './api';
import { answerText, argumentPairs, describeCall, inboxRows, parseConsentWait, pendingCount, shortId, sortConsents } from './consents';

const consent = (id: string, extra: Partial<ConsentRecord> = {}): ConsentRecord => ({
  id,
  agent: 'scribe',
  run_id: 'run-1',
  step: 1,
  capability: 'fs.write',
  argument: 'notes/chat.txt',
  arguments: { content: '[redacted]', path: 'notes/chat.txt' },
  status: 'pending',
  created_ms: 1000,
  ...extra,
});

describe('consent requests', () => {
  it('describes a call as capability(argument)', () => {
    expect(describeCall('fs.write', 'notes/chat.txt')).toBe('fs.write(notes/chat.txt)');
    expect(describeCall('shell.exec', null)).toBe('shell.exec');
    expect(describeCall('agent.call', '')).toBe('agent.call');
  });

  it('shortens an id to its last characters', () => {
    expect(shortId('01a222c8-d899-777e-b9e2-f919fcc7e446')).toBe('…fcc7e446');
    expect(shortId('210ce6eef5')).toBe('210ce6eef5');
  });

  it('shows the arguments as key/value pairs, marking redacted ones', () => {
    expect(argumentPairs({ path: 'notes/chat.txt', content: 'buy milk', mode: 420, opts: { a: [1] } })).toEqual([
      { key: 'path', text: 'notes/chat.txt', redacted: false },
      { key: 'content', text: 'buy milk', redacted: false },
      { key: 'mode', text: '420', redacted: false },
      { key: 'opts', text: '{"a":[1]}', redacted: false },
    ]);
    expect(argumentPairs({ content: '[redacted]' })).toEqual([{ key: 'content', text: '[redacted]', redacted: true }]);
    expect(argumentPairs(null)).toEqual([]);
    expect(argumentPairs(undefined)).toEqual([]);
    expect(argumentPairs(['x'])).toEqual([{ key: 'arguments', text: '["x"]', redacted: false }]);
  });

  it('reads what a turn waits for from its turn_ended error', () => {
    expect(parseConsentWait('waiting for consent to fs.write(notes/chat.txt): request 210ce6eef591')).toEqual({
      what: 'fs.write(notes/chat.txt)',
      id: '210ce6eef591',
    });
    // An argument with ": request" in it: the last one names the request.
    expect(parseConsentWait('waiting for consent to shell.exec(echo a: request b): request abc')).toEqual({
      what: 'shell.exec(echo a: request b)',
      id: 'abc',
    });
    expect(parseConsentWait('waiting for consent to agent.call(helper)')).toEqual({ what: 'agent.call(helper)', id: null });
    expect(parseConsentWait('something else')).toEqual({ what: null, id: null });
    expect(parseConsentWait(undefined)).toEqual({ what: null, id: null });
  });

  it('sorts pending requests first, oldest first; then answered ones, latest answer first', () => {
    const list = [
      consent('a', { status: 'approved', answered_ms: 50 }),
      consent('b', { created_ms: 30 }),
      consent('c', { status: 'denied', answered_ms: 90 }),
      consent('d', { created_ms: 10 }),
    ];
    expect(sortConsents(list).map((c) => c.id)).toEqual(['d', 'b', 'c', 'a']);
  });

  it('lists pending requests and those answered here; with showAnswered every one, an answer winning', () => {
    const pending = [consent('p1'), consent('p2', { created_ms: 2000 })];
    const answeredHere = new Map([['p1', consent('p1', { status: 'approved', answered_by: 'local/local', answered_ms: 3000 })]]);
    expect(inboxRows(pending, null, answeredHere, false).map((c) => `${c.id}:${c.status}`)).toEqual(['p2:pending', 'p1:approved']);

    const all = [consent('old', { status: 'denied', answered_ms: 500 }), consent('p2', { created_ms: 2000 }), consent('p1')];
    expect(inboxRows(pending, all, answeredHere, true).map((c) => `${c.id}:${c.status}`)).toEqual([
      'p2:pending',
      'p1:approved',
      'old:denied',
    ]);
    // Without showAnswered, what `all` holds is not shown.
    expect(inboxRows(pending, all, new Map(), false).map((c) => c.id)).toEqual(['p1', 'p2']);
    expect(inboxRows(null, null, new Map(), false)).toEqual([]);
  });

  it('counts the requests still waiting for an answer', () => {
    const pending = [consent('p1'), consent('p2')];
    expect(pendingCount(pending, new Map())).toBe(2);
    expect(pendingCount(pending, new Map([['p1', consent('p1', { status: 'approved' })]]))).toBe(1);
    expect(pendingCount(null, new Map())).toBe(0);
  });

  it('words an answer', () => {
    expect(answerText(consent('a', { status: 'approved', answered_by: 'local/local', reason: 'fine' }))).toBe(
      'Approved by local/local: fine',
    );
    expect(answerText(consent('a', { status: 'denied', answered_by: 'acme/ana' }))).toBe('Denied by acme/ana');
    expect(answerText(consent('a', { status: 'expired' }))).toBe('Expired unanswered');
    expect(answerText(consent('a'))).toBe('Waiting for an answer');
  });
});
