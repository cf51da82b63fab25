// The run debugger's pure parts: the run list's search, the agent graph's layout, the step
// timeline's windowing, and a state diff as rows of compact JSON.

import type { RunRecord, StepRecord } from './api';

// ---- runs ----

/** The runs whose agent, id or status contains every word of `query` (case-insensitive). */
export function filterRuns(runs: readonly RunRecord[], query: string): RunRecord[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return [...runs];
  return runs.filter((r) => {
    const hay = `${r.agent} ${r.run_id} ${r.status}`.toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}

/** The sequence ids a run's steps take: from `first` to `last` (none when `count` is 0). */
export function stepRange(
  run: Pick<RunRecord, 'start_after' | 'last_sequence'> & { parent_step?: number | null },
): { first: number; count: number } {
  // A run's first step follows its start: -1 for a new run, the fork point for a fork (or the step
  // a child run was started from), which the API reports as `parent_step`.
  const after = typeof run.start_after === 'number' ? run.start_after : typeof run.parent_step === 'number' ? run.parent_step : -1;
  const first = after + 1;
  const last = typeof run.last_sequence === 'number' ? run.last_sequence : first - 1;
  return { first, count: Math.max(0, last - first + 1) };
}

/**
 * The run after a step committed live: its last sequence id and next action move on (a step that
 * is not newer changes nothing).
 */
export function withStep(run: RunRecord, step: Pick<StepRecord, 'sequence_id' | 'next'>): RunRecord {
  if (typeof run.last_sequence === 'number' && step.sequence_id <= run.last_sequence) return run;
  return { ...run, last_sequence: step.sequence_id, next_action: step.next === undefined ? run.next_action : step.next };
}

/**
 * How a run came from its parent, as its hint reads: `fork of` (the same agent: a fork), `child of`
 * (another agent: a run a `map` or `agent` step started), or `from` when the parent is not at hand.
 */
export function parentRelation(run: Pick<RunRecord, 'agent' | 'parent_run'>, known: readonly RunRecord[]): string {
  const parent = known.find((r) => r.run_id === run.parent_run);
  if (!parent) return 'from';
  return parent.agent === run.agent ? 'fork of' : 'child of';
}

/** Runs started from a run, grouped by the step they started from (in step order; none last). */
export function childGroups(children: readonly RunRecord[]): [number | null, RunRecord[]][] {
  const groups = new Map<number | null, RunRecord[]>();
  for (const c of children) {
    const at = typeof c.parent_step === 'number' ? c.parent_step : null;
    const list = groups.get(at) ?? [];
    list.push(c);
    groups.set(at, list);
  }
  return [...groups.entries()]
    .map(([at, list]): [number | null, RunRecord[]] => [at, [...list].sort((a, b) => (a.created_ms ?? 0) - (b.created_ms ?? 0) || a.run_id.localeCompare(b.run_id))])
    .sort((a, b) => (a[0] ?? Infinity) - (b[0] ?? Infinity));
}

/** What can be done to a run in its status: continue it, give it input, cancel it. */
export function runActions(status: string): { resume: boolean; input: boolean; cancel: boolean } {
  const over = status === 'completed' || status === 'cancelled';
  return {
    resume: !over && status !== 'running' && status !== 'waiting',
    input: status === 'waiting',
    cancel: !over,
  };
}

/** The inputs typed as a JSON object, or why they are not one. */
export function parseInputs(text: string): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  if (!text.trim()) return { ok: true, value: {} };
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return { ok: true, value: v as Record<string, unknown> };
    return { ok: false, error: 'The inputs are a JSON object, such as {"approved": true}.' };
  } catch (e) {
    return { ok: false, error: `Not JSON: ${(e as Error).message}` };
  }
}

/** The state keys a step changed, from its delta ops (docs/graph-yaml.md, "State deltas"). */
export function changedKeys(step: Pick<StepRecord, 'delta'>): string[] {
  const ops = Array.isArray(step.delta) ? step.delta : [];
  const keys: string[] = [];
  for (const op of ops) {
    const key = (op as { key?: unknown } | null)?.key;
    if (typeof key === 'string' && !keys.includes(key)) keys.push(key);
  }
  return keys;
}

// ---- the graph ----

export interface GraphAction {
  name: string;
  type?: string;
  awaits_input?: boolean;
}

export interface GraphTransition {
  from: string;
  to: string | string[];
  condition?: unknown;
}

export interface AgentGraph {
  actions?: GraphAction[];
  transitions?: GraphTransition[];
  entrypoint?: string;
}

export interface NodeBox {
  name: string;
  type: string;
  layer: number;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface EdgePath {
  from: string;
  to: string;
  /** An SVG path, from the bottom of `from` to the top of `to` (or around, for a loop back). */
  d: string;
  /** The transition goes up (or to itself): drawn as a curve on the right. */
  back: boolean;
  /** The condition, unless it is the default. */
  label: string;
}

export interface GraphLayout {
  width: number;
  height: number;
  nodes: NodeBox[];
  edges: EdgePath[];
}

export const NODE_W = 120;
export const NODE_H = 34;
const GAP_X = 28;
const GAP_Y = 38;
const PAD = 16;
/** Room on the right for the loops back. */
const LOOP_ROOM = 44;

function targets(t: GraphTransition): string[] {
  return (Array.isArray(t.to) ? t.to : [t.to]).filter((x): x is string => typeof x === 'string');
}

function conditionLabel(c: unknown): string {
  if (c === undefined || c === null || c === 'default' || c === '') return '';
  return typeof c === 'string' ? c : JSON.stringify(c);
}

/**
 * Layers by breadth-first search from the entrypoint (actions it cannot reach go below, in the
 * order given), each layer a row of boxes centred; transitions as paths, the ones going back up
 * curving round on the right.
 */
export function layoutGraph(graph: AgentGraph | null | undefined): GraphLayout {
  const actions = (graph?.actions ?? []).filter((a) => a && typeof a.name === 'string');
  const transitions = (graph?.transitions ?? []).filter((t) => t && typeof t.from === 'string');
  const names = actions.map((a) => a.name);
  const known = new Set(names);
  const out = new Map<string, string[]>();
  for (const t of transitions) for (const to of targets(t)) if (known.has(t.from) && known.has(to)) out.set(t.from, [...(out.get(t.from) ?? []), to]);

  const layer = new Map<string, number>();
  const entry = graph?.entrypoint && known.has(graph.entrypoint) ? graph.entrypoint : names[0];
  if (entry !== undefined) {
    layer.set(entry, 0);
    const queue = [entry];
    while (queue.length) {
      const n = queue.shift()!;
      for (const m of out.get(n) ?? []) {
        if (!layer.has(m)) {
          layer.set(m, layer.get(n)! + 1);
          queue.push(m);
        }
      }
    }
  }
  let deepest = Math.max(-1, ...layer.values());
  for (const n of names) if (!layer.has(n)) layer.set(n, ++deepest);

  const rows: string[][] = [];
  for (const n of names) (rows[layer.get(n)!] ??= []).push(n);
  const widest = Math.max(1, ...rows.map((r) => r?.length ?? 0));
  const inner = widest * NODE_W + (widest - 1) * GAP_X;
  const width = PAD * 2 + inner + LOOP_ROOM;
  const height = rows.length === 0 ? PAD * 2 : PAD * 2 + rows.length * NODE_H + (rows.length - 1) * GAP_Y;

  const boxes = new Map<string, NodeBox>();
  rows.forEach((row, i) => {
    if (!row) return;
    const rowW = row.length * NODE_W + (row.length - 1) * GAP_X;
    row.forEach((name, j) => {
      const a = actions.find((x) => x.name === name)!;
      boxes.set(name, {
        name,
        type: a.type ?? '',
        layer: i,
        x: PAD + (inner - rowW) / 2 + j * (NODE_W + GAP_X),
        y: PAD + i * (NODE_H + GAP_Y),
        w: NODE_W,
        h: NODE_H,
      });
    });
  });

  const edges: EdgePath[] = [];
  for (const t of transitions) {
    for (const to of targets(t)) {
      const a = boxes.get(t.from);
      const b = boxes.get(to);
      if (!a || !b) continue;
      const back = b.layer <= a.layer;
      let d: string;
      if (!back) {
        const x1 = a.x + a.w / 2;
        const y1 = a.y + a.h;
        const x2 = b.x + b.w / 2;
        const y2 = b.y;
        const my = (y1 + y2) / 2;
        d = `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`;
      } else {
        // Out of the right side of `from`, round, into the right side of `to`.
        const x1 = a.x + a.w;
        const y1 = a.y + a.h / 2;
        const x2 = b.x + b.w;
        const y2 = b.y + b.h / 2;
        const reach = Math.max(x1, x2) + 24 + 8 * (a.layer - b.layer);
        d = a === b ? `M${x1},${y1 - 8} C${x1 + 30},${y1 - 22} ${x1 + 30},${y1 + 22} ${x1},${y1 + 8}` : `M${x1},${y1} C${reach},${y1} ${reach},${y2} ${x2},${y2}`;
      }
      edges.push({ from: t.from, to, d, back, label: conditionLabel(t.condition) });
    }
  }
  return { width, height, nodes: [...boxes.values()], edges };
}

// ---- windowing ----

export interface Slice {
  /** The first row rendered. */
  start: number;
  /** One past the last row rendered. */
  end: number;
  /** The spacers' heights above and below the rendered rows. */
  padTop: number;
  padBottom: number;
}

/** The rows to render of `total` rows of `rowH` px, scrolled to `scrollTop` in a `viewH` px view. */
export function visibleSlice(scrollTop: number, viewH: number, rowH: number, total: number, overscan = 10): Slice {
  if (total <= 0 || rowH <= 0) return { start: 0, end: 0, padTop: 0, padBottom: 0 };
  const first = Math.floor(Math.max(0, scrollTop) / rowH);
  const shown = Math.ceil(Math.max(0, viewH) / rowH) + 1;
  const start = Math.max(0, Math.min(total - 1, first) - overscan);
  const end = Math.min(total, first + shown + overscan);
  return { start, end, padTop: start * rowH, padBottom: (total - end) * rowH };
}

/** The pages (of `pageSize` rows) that rows [start, end) fall in. */
export function pagesFor(start: number, end: number, pageSize: number): number[] {
  if (end <= start) return [];
  const pages: number[] = [];
  for (let p = Math.floor(start / pageSize); p <= Math.floor((end - 1) / pageSize); p++) pages.push(p);
  return pages;
}

/** The scroll position that shows row `index` whole, moving as little as it can. */
export function scrollToShow(index: number, scrollTop: number, viewH: number, rowH: number): number {
  const top = index * rowH;
  if (top < scrollTop) return top;
  if (top + rowH > scrollTop + viewH) return Math.max(0, top + rowH - viewH);
  return scrollTop;
}

// ---- values and diffs ----

/** A value as one line of JSON; `long` when it is longer than `max` (then `short` is cut with "…"). */
export function compactJson(value: unknown, max = 80): { text: string; short: string; long: boolean } {
  let text: string;
  try {
    text = value === undefined ? 'undefined' : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  const long = text.length > max;
  return { text, short: long ? `${text.slice(0, Math.max(1, max - 1))}…` : text, long };
}

export interface StateDiff {
  from?: number;
  to?: number;
  added?: Record<string, unknown> | null;
  removed?: Record<string, unknown> | null;
  changed?: Record<string, { from?: unknown; to?: unknown }> | null;
}

export interface DiffRow {
  key: string;
  kind: 'added' | 'removed' | 'changed';
  /** The value before (removed, changed). */
  before?: unknown;
  /** The value after (added, changed). */
  after?: unknown;
}

/** A diff's keys in order of name, each added, removed or changed. */
export function diffRows(diff: StateDiff | null | undefined): DiffRow[] {
  const rows: DiffRow[] = [];
  for (const [key, after] of Object.entries(diff?.added ?? {})) rows.push({ key, kind: 'added', after });
  for (const [key, before] of Object.entries(diff?.removed ?? {})) rows.push({ key, kind: 'removed', before });
  for (const [key, c] of Object.entries(diff?.changed ?? {})) rows.push({ key, kind: 'changed', before: c?.from, after: c?.to });
  return rows.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
