import { describe, expect, it } from 'vitest';
import { contractGroups, formatBytes, formatMs } from './catalog';

const scribe = {
  name: 'scribe',
  contract: {
    apiVersion: 'agentos/v0.2',
    kind: 'AgentContract',
    name: 'scribe',
    class: { latency: 'SRT', slo: { onset_ms: 250, turn_ms: 1500 } },
    capabilities: [{ name: 'fs.write', allow: ['notes/**'] }, 'model.call'],
    compute: { cpu: 0.5, mem: 2 ** 31 },
    modelPolicy: { allow: ['local/chat', 'cloud/70B'], max_context_tokens: 32000 },
    security: { consent_for: ['fs.write'] },
    observability: { tracing: 'none', log_fields: ['path'] },
    budget: { max_tokens_per_run: 200000, max_cost_usd_per_run: 2.5 },
    memory: { namespace: 'notes', retention_days: 30, rag: { top_k: 8, require_grounding: true } },
  },
  tools: [{ name: 'fs.write' }],
  models: [
    { alias: 'local/chat', served: true },
    { alias: 'cloud/70B', served: false },
  ],
};

describe('the agent catalog', () => {
  it('shows the contract group by group, in the order of the document', () => {
    const groups = contractGroups(scribe);
    expect(groups.map((g) => g.title)).toEqual([
      'Latency class',
      'Capabilities',
      'Models',
      'Tools it may use here',
      'Compute',
      'Budget',
      'Memory',
      'Security',
      'Observability',
    ]);
    const facts = Object.fromEntries(groups.map((g) => [g.title, g.facts]));
    expect(facts['Latency class']).toEqual([
      { label: 'Class', value: 'SRT', note: 'soft real-time: onset and turn time against its SLO' },
      { label: 'Onset (first output)', value: '250 ms' },
      { label: 'Turn', value: '1.5 s' },
    ]);
    expect(facts.Capabilities).toEqual([
      { label: 'fs.write', value: 'only notes/**', note: 'asks consent for each call', tone: 'warn' },
      { label: 'model.call', value: 'any argument' },
    ]);
    expect(facts.Models).toEqual([
      { label: 'local/chat', value: 'allowed', note: 'served here', tone: 'good' },
      { label: 'cloud/70B', value: 'allowed', note: 'not served by this server', tone: 'warn' },
      { label: 'Context', value: 'at most 32,000 tokens' },
    ]);
    expect(facts.Compute).toEqual([
      { label: 'CPU', value: '0.5 cores' },
      { label: 'Memory', value: '2 GiB' },
    ]);
    expect(facts.Budget).toEqual([
      { label: 'Tokens per run', value: '200,000' },
      { label: 'Cost per run', value: '$2.50' },
    ]);
    expect(facts.Memory[2]).toEqual({ label: 'Retrieval', value: 'top 8, answers must be grounded' });
    expect(facts.Observability[1]).toMatchObject({ label: 'Logged arguments', value: 'path' });
  });

  it('says an agent without capabilities may call nothing, and shows nothing it does not know', () => {
    const groups = contractGroups({ name: 'counter', contract: { name: 'counter', class: { latency: 'DT' }, capabilities: [] } });
    expect(groups).toEqual([
      { title: 'Latency class', facts: [{ label: 'Class', value: 'DT', note: 'delay-tolerant: in the background' }] },
      { title: 'Capabilities', facts: [{ label: 'None', value: 'it may call no tool, model or other agent' }] },
    ]);
    expect(contractGroups({ name: 'x', contract: null })).toEqual([]);
    expect(contractGroups(null)).toEqual([]);
    // Malformed fields are left out, not guessed.
    const odd = contractGroups({ name: 'x', contract: { class: 'fast', capabilities: [7, { allow: ['a'] }], budget: { max_cost_usd_per_run: 'lots' } } });
    expect(odd).toEqual([{ title: 'Latency class', facts: [{ label: 'Class', value: 'SRT', note: 'soft real-time: onset and turn time against its SLO' }] }]);
  });

  it('writes sizes and durations as people read them', () => {
    expect(formatBytes(4 * 2 ** 30)).toBe('4 GiB');
    expect(formatBytes(1536 * 2 ** 20)).toBe('1.5 GiB');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatMs(250)).toBe('250 ms');
    expect(formatMs(2000)).toBe('2 s');
  });
});

describe('an agent with modes', () => {
  it('shows each mode with its own class, levels and actions', () => {
    const copilot = {
      name: 'copilot',
      contract: {
        name: 'copilot',
        class: { latency: 'SRT', slo: { onset_ms: 300 } },
        modes: {
          PARANOID: { latency: 'HRT', slo: { deadline_ms: 10 }, actions: ['paranoid'] },
          CURIOUS: { latency: 'DT', slo: { turn_ms: 60000 }, actions: ['curious', 'ask'] },
          BROKEN: { slo: {} },
        },
        capabilities: [],
      },
    };
    const groups = contractGroups(copilot);
    expect(groups.map((g) => g.title)).toEqual(['Latency class', 'Modes', 'Capabilities']);
    const modes = groups[1].facts;
    expect(modes).toEqual([
      { label: 'PARANOID', value: 'HRT · deadline 10 ms', note: 'action paranoid', tone: 'warn' },
      { label: 'CURIOUS', value: 'DT · turn 60 s', note: 'actions curious, ask' },
    ]);
  });
});
