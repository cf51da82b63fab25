import type { AgentDetail } from './api';

/** One line of an agent's contract in the catalog: a label and what the contract says. */
export interface Fact {
  label: string;
  value: string;
  /** A short remark (a capability that asks consent, a model this server does not serve). */
  note?: string;
  tone?: 'warn' | 'good';
}

export interface FactGroup {
  title: string;
  facts: Fact[];
}

const LATENCY: Record<string, string> = {
  HRT: 'hard real-time: every step within its deadline',
  SRT: 'soft real-time: onset and turn time against its SLO',
  DT: 'delay-tolerant: in the background',
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Bytes as the contract would say them: 4 GiB, 512 MiB, 1000 B. */
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const) {
    if (n >= size) {
      const v = n / size;
      return `${Number.isInteger(v) ? v : v.toFixed(1)} ${unit}`;
    }
  }
  return `${n} B`;
}

/** Milliseconds as a person reads them: 250 ms, 1.5 s. */
export function formatMs(ms: number): string {
  return ms >= 1000 ? `${Number.isInteger(ms / 1000) ? ms / 1000 : (ms / 1000).toFixed(1)} s` : `${ms} ms`;
}

/**
 * An agent's contract as groups of labelled facts, in the order of the document: its latency
 * class and service levels, its modes (each with its own class), its capabilities (those that ask consent marked), its models (those
 * this server does not serve marked), the tools it may use here, compute, budget, memory,
 * security and observability. Unknown or malformed fields are left out, never guessed.
 */
export function contractGroups(detail: AgentDetail | null | undefined): FactGroup[] {
  const c = detail?.contract;
  if (!isObject(c)) return [];
  const groups: FactGroup[] = [];
  const add = (title: string, facts: (Fact | null)[]) => {
    const kept = facts.filter((f): f is Fact => f !== null);
    if (kept.length > 0) groups.push({ title, facts: kept });
  };

  const cls = isObject(c.class) ? c.class : {};
  const slo = isObject(cls.slo) ? cls.slo : {};
  const latency = typeof cls.latency === 'string' ? cls.latency : 'SRT';
  const ms = (key: string, label: string): Fact | null => {
    const v = num(slo[key]);
    return v === null ? null : { label, value: formatMs(v) };
  };
  const jitter = num(slo.jitter_p95_pct);
  add('Latency class', [
    { label: 'Class', value: latency, note: LATENCY[latency] },
    ms('deadline_ms', 'Step deadline'),
    ms('onset_ms', 'Onset (first output)'),
    ms('turn_ms', 'Turn'),
    jitter === null ? null : { label: 'Jitter p95', value: `${jitter}%` },
  ]);

  // Each mode's own class: `CALM · SRT`, its levels, and the actions that run in it.
  const modes = isObject(c.modes) ? c.modes : {};
  add(
    'Modes',
    Object.entries(modes).map(([name, m]): Fact | null => {
      if (!isObject(m) || typeof m.latency !== 'string') return null;
      const levels = isObject(m.slo) ? m.slo : {};
      const parts = [
        num(levels.deadline_ms) === null ? null : `deadline ${formatMs(num(levels.deadline_ms)!)}`,
        num(levels.onset_ms) === null ? null : `onset ${formatMs(num(levels.onset_ms)!)}`,
        num(levels.turn_ms) === null ? null : `turn ${formatMs(num(levels.turn_ms)!)}`,
      ].filter((p): p is string => p !== null);
      const actions = strings(m.actions);
      return {
        label: name,
        value: [m.latency, ...parts].join(' · '),
        ...(actions.length > 0 ? { note: `${actions.length === 1 ? 'action' : 'actions'} ${actions.join(', ')}` } : {}),
        ...(m.latency === 'HRT' ? { tone: 'warn' as const } : {}),
      };
    }),
  );

  const security = isObject(c.security) ? c.security : {};
  const consent = new Set(strings(security.consent_for));
  const caps = Array.isArray(c.capabilities) ? c.capabilities : [];
  add(
    'Capabilities',
    caps.length === 0
      ? [{ label: 'None', value: 'it may call no tool, model or other agent' }]
      : caps.map((cap): Fact | null => {
          const name = typeof cap === 'string' ? cap : isObject(cap) && typeof cap.name === 'string' ? cap.name : null;
          if (name === null) return null;
          const allow = isObject(cap) ? strings(cap.allow) : [];
          return {
            label: name,
            value: allow.length > 0 ? `only ${allow.join(', ')}` : 'any argument',
            ...(consent.has(name) ? { note: 'asks consent for each call', tone: 'warn' as const } : {}),
          };
        }),
  );

  const policy = isObject(c.modelPolicy) ? c.modelPolicy : {};
  const served = new Map((detail?.models ?? []).map((m) => [m.alias, m.served]));
  const maxContext = num(policy.max_context_tokens);
  const placement = strings(policy.placement);
  add('Models', [
    ...strings(policy.allow).map(
      (alias): Fact =>
        served.get(alias) === false
          ? { label: alias, value: 'allowed', note: 'not served by this server', tone: 'warn' }
          : { label: alias, value: 'allowed', ...(served.get(alias) ? { note: 'served here', tone: 'good' as const } : {}) },
    ),
    maxContext === null ? null : { label: 'Context', value: `at most ${maxContext.toLocaleString('en')} tokens` },
    placement.length === 0 ? null : { label: 'Placement', value: placement.join(', ') },
  ]);

  const tools = (detail?.tools ?? []).map((t) => t.name).filter((n) => typeof n === 'string');
  if (tools.length > 0) add('Tools it may use here', [{ label: `${tools.length} ${tools.length === 1 ? 'tool' : 'tools'}`, value: tools.join(', ') }]);

  const compute = isObject(c.compute) ? c.compute : {};
  const cpu = num(compute.cpu);
  const mem = num(compute.mem);
  const gpu = num(compute.gpu_mem);
  add('Compute', [
    cpu === null ? null : { label: 'CPU', value: `${cpu} ${cpu === 1 ? 'core' : 'cores'}` },
    mem === null ? null : { label: 'Memory', value: formatBytes(mem) },
    gpu === null ? null : { label: 'GPU memory', value: formatBytes(gpu) },
  ]);

  const budget = isObject(c.budget) ? c.budget : {};
  const perTurn = num(budget.max_tokens_per_turn);
  const perRun = num(budget.max_tokens_per_run);
  const cost = num(budget.max_cost_usd_per_run);
  add('Budget', [
    perTurn === null ? null : { label: 'Tokens per turn', value: perTurn.toLocaleString('en') },
    perRun === null ? null : { label: 'Tokens per run', value: perRun.toLocaleString('en') },
    cost === null ? null : { label: 'Cost per run', value: `$${cost.toFixed(2)}` },
  ]);

  const memory = isObject(c.memory) ? c.memory : {};
  const rag = isObject(memory.rag) ? memory.rag : {};
  const retention = num(memory.retention_days);
  const topK = num(rag.top_k);
  add('Memory', [
    typeof memory.namespace === 'string' ? { label: 'Namespace', value: memory.namespace } : null,
    retention === null ? null : { label: 'Retention', value: `${retention} ${retention === 1 ? 'day' : 'days'}` },
    topK === null ? null : { label: 'Retrieval', value: `top ${topK}${rag.require_grounding === true ? ', answers must be grounded' : ''}` },
  ]);

  const scopes = strings(security.data_scopes);
  add('Security', [
    consent.size === 0 ? null : { label: 'Consent for', value: [...consent].join(', ') },
    scopes.length === 0 ? null : { label: 'Data scopes', value: scopes.join(', ') },
  ]);

  const obs = isObject(c.observability) ? c.observability : {};
  const fields = strings(obs.log_fields);
  add('Observability', [
    typeof obs.tracing === 'string' ? { label: 'Tracing', value: obs.tracing } : null,
    fields.length === 0 ? null : { label: 'Logged arguments', value: fields.join(', '), note: 'the others are redacted' },
  ]);
  return groups;
}
