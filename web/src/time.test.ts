import { describe, expect, it } from 'vitest';
import { ago, fromNow, stamp } from './time';

const NOW = 1_800_000_000_000;

describe('times', () => {
  it('says how long ago', () => {
    expect(ago(NOW - 5_000, NOW)).toBe('just now');
    expect(ago(NOW - 5 * 60_000, NOW)).toBe('5 min ago');
    expect(ago(NOW - 3 * 3_600_000, NOW)).toBe('3 h ago');
    expect(ago(null, NOW)).toBe('');
    expect(ago(NOW + 10_000, NOW)).toBe('just now');
  });

  it('says how long until', () => {
    expect(fromNow(NOW + 7 * 86_400_000, NOW)).toBe('in 7 days');
    expect(fromNow(NOW + 86_400_000, NOW)).toBe('in 1 day');
    expect(fromNow(NOW + 2 * 3_600_000, NOW)).toBe('in 2 h');
    expect(fromNow(NOW + 10 * 60_000, NOW)).toBe('in 10 min');
    expect(fromNow(NOW + 10_000, NOW)).toBe('in less than a minute');
    expect(fromNow(NOW - 1, NOW)).toBe('now');
    expect(fromNow(undefined, NOW)).toBe('');
  });

  it('stamps a moment, or nothing', () => {
    expect(stamp(NOW)).not.toBe('');
    expect(stamp(0)).toBe('');
  });
});
