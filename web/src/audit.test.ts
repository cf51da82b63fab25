import { describe, expect, it } from 'vitest';
import { auditRow, auditRows, decisionTone, runFilter, verifyNotes, verifySummary, withOlder } from './audit';

const entry = {
  agent: 'scribe',
  argument: 'notes/chat.txt',
  capability: 'fs.write',
  decision: 'allow',
  details: { arguments: { content: '[redacted]', path: 'notes/chat.txt' } },
  kind: 'consent.request',
  reason: '',
  run: '01a222c8-d899',
  seq: 7,
  step: 1,
  tenant: 'local',
  time_ms: 1795879917775,
  user: 'local',
};

describe('audit entries', () => {
  it('reads the documented keys into columns, the details and unknown keys as pairs', () => {
    const r = auditRow({ ...entry, extra: 3 });
    expect(r).toMatchObject({
      key: 's7',
      seq: 7,
      timeMs: 1795879917775,
      kind: 'consent.request',
      who: 'local@local',
      agent: 'scribe',
      run: '01a222c8-d899',
      step: 1,
      call: 'fs.write(notes/chat.txt)',
      decision: 'allow',
      tone: 'good',
      reason: '',
    });
    expect(r.details).toEqual([
      { key: 'arguments', text: '{"content":"[redacted]","path":"notes/chat.txt"}' },
      { key: 'extra', text: '3' },
    ]);
  });

  it('takes other names for the same things, and missing ones as empty', () => {
    const r = auditRow({ sequence: '12', ts: '2026-01-02T03:04:05Z', type: 'admission', actor: 'ana', run_id: 'r9', outcome: 'denied' }, 4);
    expect(r.seq).toBe(12);
    expect(r.timeMs).toBe(Date.parse('2026-01-02T03:04:05Z'));
    expect(r.kind).toBe('admission');
    expect(r.who).toBe('ana');
    expect(r.run).toBe('r9');
    expect(r.decision).toBe('denied');
    expect(r.tone).toBe('bad');
    expect(r.call).toBe('');
    expect(r.step).toBeNull();
    expect(auditRow({}, 4).key).toBe('i4');
  });

  it('tones decisions', () => {
    expect(decisionTone('allow')).toBe('good');
    expect(decisionTone('ok')).toBe('good');
    expect(decisionTone('deny')).toBe('bad');
    expect(decisionTone('failed')).toBe('bad');
    expect(decisionTone('')).toBe('neutral');
    expect(decisionTone('pending')).toBe('neutral');
  });

  it('shows the newest first', () => {
    expect(auditRows([{ seq: 1 }, { seq: 2 }, { seq: 3 }]).map((r) => r.seq)).toEqual([3, 2, 1]);
    expect(auditRows([{ kind: 'a' }, { kind: 'b' }]).map((r) => r.kind)).toEqual(['b', 'a']);
    expect(auditRows(null)).toEqual([]);
    expect(auditRows([null as unknown as Record<string, unknown>, { seq: 1 }]).length).toBe(1);
  });
});

describe('verification', () => {
  it('says intact or tampered, with the problem', () => {
    expect(verifySummary({ ok: true, entries: 12, verified: 12, problem: null })).toEqual({
      state: 'intact',
      text: 'Chain intact ✓ (12 entries verified)',
    });
    expect(verifySummary({ ok: true, entries: 1 })).toEqual({ state: 'intact', text: 'Chain intact ✓ (1 entry verified)' });
    expect(verifySummary({ ok: false, verified: 4, problem: 'entry 5: does not match its MAC', problem_at: 5 })).toEqual({
      state: 'tampered',
      text: 'Chain tampered ✗: entry 5: does not match its MAC',
    });
    expect(verifySummary({ ok: false, problem_at: 5 }).text).toBe('Chain tampered ✗ at entry 5');
    expect(verifySummary(null).state).toBe('unknown');
  });

  it('reads notes as lines', () => {
    expect(verifyNotes({ ok: true, notes: ['a', 'b'] })).toEqual(['a', 'b']);
    expect(verifyNotes({ ok: true, notes: 'one' })).toEqual(['one']);
    expect(verifyNotes({ ok: true, notes: [] })).toEqual([]);
    expect(verifyNotes(null)).toEqual([]);
  });
});

describe('the run filter', () => {
  it('takes a run id, trimmed, and refuses anything else', () => {
    expect(runFilter('  01a222c8-d899-777e ')).toBe('01a222c8-d899-777e');
    expect(runFilter('a b')).toBeNull();
    expect(runFilter('x/y')).toBeNull();
    expect(runFilter('')).toBeNull();
  });
});

describe('older pages', () => {
  it('go in front of the entries shown, each entry once', () => {
    const e = (seq: number) => ({ ...entry, seq });
    expect(withOlder([e(1), e(2), e(3)], [e(3), e(4)]).map((x) => x.seq)).toEqual([1, 2, 3, 4]);
    expect(withOlder([], [e(5)]).map((x) => x.seq)).toEqual([5]);
    // Entries without a seq are kept as they come.
    expect(withOlder([{ kind: 'x' }], [{ kind: 'y' }]).map((x) => x.kind)).toEqual(['x', 'y']);
  });
});
