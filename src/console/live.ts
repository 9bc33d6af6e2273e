/**
 * Live updates: one EventSource on /v1/events (server-sent events; `change` carries
 * `{kind, name}` when a resource or a connection's, endpoint's or client's state changes). Pages
 * subscribe to the kinds they show and refetch on a change. While the stream is down the console
 * polls: every subscriber is told to refetch every 2 s, until the stream is open again.
 */
import { useEffect, useRef } from 'preact/hooks';

export const POLL_INTERVAL_MS = 2000;

type Listener = { kinds: readonly string[] | null; fn: () => void };
const listeners = new Set<Listener>();
let source: EventSource | null = null;
let poll: ReturnType<typeof setInterval> | null = null;
let retry: ReturnType<typeof setTimeout> | null = null;

function notify(kind: string | null): void {
  for (const l of listeners) if (kind === null || l.kinds === null || l.kinds.includes(kind)) l.fn();
}

function startPolling(): void {
  poll ??= setInterval(() => notify(null), POLL_INTERVAL_MS);
}

function stopPolling(): void {
  if (poll) clearInterval(poll);
  poll = null;
}

/** Opens the stream (after login); polling covers any gap. */
export function startLive(): void {
  if (source || typeof EventSource === 'undefined') {
    if (!source) startPolling();
    return;
  }
  const es = new EventSource('/v1/events', { withCredentials: true });
  source = es;
  es.addEventListener('open', () => {
    stopPolling();
    notify(null); // anything missed while down
  });
  es.addEventListener('change', (e) => {
    let kind: string | null = null;
    try {
      kind = (JSON.parse((e as MessageEvent<string>).data) as { kind?: string }).kind ?? null;
    } catch {
      /* refetch everything */
    }
    notify(kind);
  });
  es.addEventListener('error', () => {
    startPolling();
    if (es.readyState === EventSource.CLOSED) {
      // the browser gave up (e.g. a non-200 answer): try again later, poll meanwhile
      source = null;
      retry ??= setTimeout(() => {
        retry = null;
        if (listeners.size) startLive();
      }, 10_000);
    }
  });
}

export function stopLive(): void {
  source?.close();
  source = null;
  stopPolling();
  if (retry) clearTimeout(retry);
  retry = null;
}

/** Calls `fn` whenever one of `kinds` changes (null: on any change and every poll). */
export function useLive(kinds: readonly string[] | null, fn: () => void): void {
  const ref = useRef(fn);
  ref.current = fn;
  const key = kinds ? kinds.join(',') : '*';
  useEffect(() => {
    const l: Listener = { kinds, fn: () => ref.current() };
    listeners.add(l);
    return () => void listeners.delete(l);
  }, [key]);
}
