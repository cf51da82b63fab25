import { describe, expect, it } from 'vitest';
import type { RunRecord } from './api';
import { changedKeys, childGroups, parentRelation, compactJson, diffRows, filterRuns, layoutGraph, NODE_H, pagesFor, parseInputs, runActions, scrollToShow, stepRange, visibleSlice, withStep } from './runs';

const run = (run_id: string, agent: string, status: string, extra: Partial<RunRecord> = {}): RunRecord => ({ run_id, agent, status, ...extra });

describe('filterRuns', () => {
  const runs = [run('0190aaaa1111', 'assistant', 'waiting'), run('0190bbbb2222', 'scribe', 'completed'), run('0190cccc3333', 'assistant', 'halted')];
  it('matches agent, id and status, every word, ignoring case', () => {
    expect(filterRuns(runs, '').length).toBe(3);
    expect(filterRuns(runs, 'ASSIST').map((r) => r.run_id)).toEqual(['0190aaaa1111', '0190cccc3333']);
    expect(filterRuns(runs, 'bbbb').map((r) => r.agent)).toEqual(['scribe']);
    expect(filterRuns(runs, 'assistant halted').map((r) => r.run_id)).toEqual(['0190cccc3333']);
    expect(filterRuns(runs, 'nothing')).toEqual([]);
  });
});

describe('stepRange and changedKeys', () => {
  it('counts a run from its first step (a fork starts after its fork point)', () => {
    expect(stepRange({ last_sequence: 3 })).toEqual({ first: 0, count: 4 });
    expect(stepRange({ start_after: -1, last_sequence: 9999 })).toEqual({ first: 0, count: 10000 });
    expect(stepRange({ start_after: 1, last_sequence: 1 })).toEqual({ first: 2, count: 0 });
    expect(stepRange({ start_after: 1, last_sequence: 3 })).toEqual({ first: 2, count: 2 });
    // As the API reports runs: a fork's start is its parent_step.
    expect(stepRange({ parent_step: 1, last_sequence: 4 })).toEqual({ first: 2, count: 3 });
    expect(stepRange({ parent_step: null, last_sequence: 3 })).toEqual({ first: 0, count: 4 });
    expect(stepRange({ last_sequence: null })).toEqual({ first: 0, count: 0 });
  });
  it('lists the keys a delta touches, once each', () => {
    expect(changedKeys({ delta: [{ op: 'set', key: 'reply', value: 'hi' }, { op: 'append', key: 'messages', value: 1 }, { op: 'set', key: 'reply', value: 'x' }] })).toEqual(['reply', 'messages']);
    expect(changedKeys({ delta: null })).toEqual([]);
  });
});

describe('layoutGraph', () => {
  it('layers by BFS from the entrypoint; a loop back is a back edge', () => {
    const g = layoutGraph({
      entrypoint: 'listen',
      actions: [{ name: 'think', type: 'llm' }, { name: 'listen', type: 'human' }],
      transitions: [
        { from: 'listen', to: 'think', condition: 'default' },
        { from: 'think', to: 'listen', condition: 'default' },
      ],
    });
    const byName = Object.fromEntries(g.nodes.map((n) => [n.name, n]));
    expect(byName.listen.layer).toBe(0);
    expect(byName.think.layer).toBe(1);
    expect(byName.think.y).toBeGreaterThan(byName.listen.y + NODE_H);
    expect(g.edges.map((e) => [e.from, e.to, e.back])).toEqual([
      ['listen', 'think', false],
      ['think', 'listen', true],
    ]);
    expect(g.height).toBeGreaterThan(byName.think.y + NODE_H);
    for (const n of g.nodes) expect(n.x + n.w).toBeLessThanOrEqual(g.width);
  });

  it('puts branches side by side, keeps conditions, and places unreachable actions last', () => {
    const g = layoutGraph({
      entrypoint: 'check',
      actions: [{ name: 'check' }, { name: 'a' }, { name: 'b' }, { name: 'orphan' }],
      transitions: [
        { from: 'check', to: 'a', condition: 'x > 1' },
        { from: 'check', to: 'b', condition: 'default' },
        { from: 'a', to: 'a' },
        { from: 'b', to: 'nowhere' },
      ],
    });
    const byName = Object.fromEntries(g.nodes.map((n) => [n.name, n]));
    expect(byName.a.layer).toBe(1);
    expect(byName.b.layer).toBe(1);
    expect(byName.a.y).toBe(byName.b.y);
    expect(byName.a.x).toBeLessThan(byName.b.x);
    expect(byName.orphan.layer).toBe(2);
    expect(g.edges.find((e) => e.to === 'a' && e.from === 'check')?.label).toBe('x > 1');
    expect(g.edges.find((e) => e.to === 'b')?.label).toBe('');
    expect(g.edges.find((e) => e.from === 'a' && e.to === 'a')?.back).toBe(true);
    expect(g.edges.some((e) => e.to === 'nowhere')).toBe(false);
  });

  it('draws nothing without a graph', () => {
    expect(layoutGraph(null).nodes).toEqual([]);
    expect(layoutGraph({ actions: [] }).edges).toEqual([]);
  });
});

describe('windowing', () => {
  it('renders only the visible rows and an overscan, with spacers for the rest', () => {
    const s = visibleSlice(28 * 5000, 560, 28, 10_000, 10);
    expect(s.start).toBe(4990);
    expect(s.end).toBe(5000 + 21 + 10);
    expect(s.end - s.start).toBeLessThan(100);
    expect(s.padTop).toBe(4990 * 28);
    expect(s.padTop + (s.end - s.start) * 28 + s.padBottom).toBe(10_000 * 28);
  });
  it('stays within the rows at both ends', () => {
    expect(visibleSlice(0, 560, 28, 4)).toEqual({ start: 0, end: 4, padTop: 0, padBottom: 0 });
    const end = visibleSlice(1e9, 560, 28, 100, 5);
    expect(end.end).toBe(100);
    expect(end.start).toBe(94);
    expect(visibleSlice(0, 560, 28, 0)).toEqual({ start: 0, end: 0, padTop: 0, padBottom: 0 });
  });
  it('knows the pages a slice needs', () => {
    expect(pagesFor(0, 40, 200)).toEqual([0]);
    expect(pagesFor(190, 230, 200)).toEqual([0, 1]);
    expect(pagesFor(9990, 10000, 200)).toEqual([49]);
    expect(pagesFor(5, 5, 200)).toEqual([]);
  });
  it('scrolls as little as it can to show a row', () => {
    expect(scrollToShow(0, 100, 280, 28)).toBe(0);
    expect(scrollToShow(5, 0, 280, 28)).toBe(0);
    expect(scrollToShow(10, 0, 280, 28)).toBe(28);
    expect(scrollToShow(2, 280, 280, 28)).toBe(56);
  });
});

describe('values and diffs', () => {
  it('prints JSON compactly and cuts long values', () => {
    expect(compactJson({ a: [1, 2] })).toEqual({ text: '{"a":[1,2]}', short: '{"a":[1,2]}', long: false });
    const long = compactJson('x'.repeat(200), 20);
    expect(long.long).toBe(true);
    expect(long.short.length).toBe(20);
    expect(long.short.endsWith('…')).toBe(true);
    expect(compactJson(undefined).text).toBe('undefined');
  });
  it('lists added, removed and changed keys in order of name', () => {
    expect(
      diffRows({ added: { reply: 'hi' }, removed: { draft: 1 }, changed: { messages: { from: [], to: ['a'] } } }),
    ).toEqual([
      { key: 'draft', kind: 'removed', before: 1 },
      { key: 'messages', kind: 'changed', before: [], after: ['a'] },
      { key: 'reply', kind: 'added', after: 'hi' },
    ]);
    expect(diffRows(null)).toEqual([]);
  });
});

describe('following a run live', () => {
  const run = { run_id: 'r', agent: 'a', status: 'running', last_sequence: 3, next_action: 'b' } as RunRecord;
  it('moves the last step and next action on with each newer step', () => {
    const after = withStep(run, { sequence_id: 4, next: 'c' });
    expect(after.last_sequence).toBe(4);
    expect(after.next_action).toBe('c');
    expect(withStep(after, { sequence_id: 5, next: null }).next_action).toBeNull();
    expect(withStep(after, { sequence_id: 6 }).next_action).toBe('c');
  });
  it('ignores a step it has seen', () => {
    expect(withStep(run, { sequence_id: 3, next: 'z' })).toBe(run);
    expect(withStep(run, { sequence_id: 1, next: 'z' })).toBe(run);
  });
  it('starts a run without steps', () => {
    const fresh = { ...run, last_sequence: null };
    expect(withStep(fresh, { sequence_id: 0, next: 'b' }).last_sequence).toBe(0);
  });
});

describe('what a run allows', () => {
  it('continues, takes input or cancels by status', () => {
    expect(runActions('halted')).toEqual({ resume: true, input: false, cancel: true });
    expect(runActions('waiting')).toEqual({ resume: false, input: true, cancel: true });
    expect(runActions('running')).toEqual({ resume: false, input: false, cancel: true });
    expect(runActions('completed')).toEqual({ resume: false, input: false, cancel: false });
    expect(runActions('cancelled')).toEqual({ resume: false, input: false, cancel: false });
    expect(runActions('failed').resume).toBe(true);
  });
  it('reads the inputs as a JSON object', () => {
    expect(parseInputs('')).toEqual({ ok: true, value: {} });
    expect(parseInputs('{"approved": true}')).toEqual({ ok: true, value: { approved: true } });
    expect(parseInputs('[1]').ok).toBe(false);
    expect(parseInputs('{nope').ok).toBe(false);
  });
});

describe('runs started from a run', () => {
  it('groups them by the step they started from, in step order', () => {
    const child = (id: string, step: number | null, created: number) =>
      ({ run_id: id, agent: 'researcher', status: 'completed', parent_step: step, created_ms: created }) as RunRecord;
    const groups = childGroups([child('c', 3, 5), child('a', 1, 2), child('b', 1, 1), child('d', null, 0)]);
    expect(groups.map(([at, list]) => [at, list.map((r) => r.run_id)])).toEqual([
      [1, ['b', 'a']],
      [3, ['c']],
      [null, ['d']],
    ]);
    expect(childGroups([])).toEqual([]);
  });
});

describe('a run\'s parent', () => {
  it('is a fork of a run of the same agent, a child of another agent\'s, or unknown', () => {
    const parent = { run_id: 'p', agent: 'orchestrator', status: 'completed' } as RunRecord;
    expect(parentRelation({ agent: 'orchestrator', parent_run: 'p' }, [parent])).toBe('fork of');
    expect(parentRelation({ agent: 'researcher', parent_run: 'p' }, [parent])).toBe('child of');
    expect(parentRelation({ agent: 'researcher', parent_run: 'q' }, [parent])).toBe('from');
  });
});
