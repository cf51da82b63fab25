// Times as the desktop shows them: "just now", "5 min ago", "in 7 days", a clock time.

/** How long ago `ms` was, roughly ("" when unknown). */
export function ago(ms?: number | null, now = Date.now()): string {
  if (!ms) return '';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

/** How long until `ms`, roughly ("" when unknown; "now" once past). */
export function fromNow(ms?: number | null, now = Date.now()): string {
  if (!ms) return '';
  const s = Math.round((ms - now) / 1000);
  if (s <= 0) return 'now';
  if (s < 60) return 'in less than a minute';
  if (s < 3600) return `in ${Math.floor(s / 60)} min`;
  if (s < 86400) return `in ${Math.floor(s / 3600)} h`;
  const days = Math.floor(s / 86400);
  return `in ${days} day${days === 1 ? '' : 's'}`;
}

/** A moment in full, for a title or a log: local date and time with seconds. */
export function stamp(ms?: number | null): string {
  if (!ms) return '';
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString([], { dateStyle: 'short', timeStyle: 'medium' });
}
