// The live events WebSocket, reconnected with exponential backoff (and jitter) after any
// close, until stopped.
import type { ClusterEvent } from "../api/types";

export type LiveStatus = "connecting" | "open" | "closed";

export interface LiveOptions {
  url: () => string;
  onEvent: (e: ClusterEvent) => void;
  onStatus?: (s: LiveStatus) => void;
  socket?: (url: string) => WebSocket;
  minDelay?: number;
  maxDelay?: number;
  random?: () => number;
}

/** The wait before reconnect attempt `attempt` (0-based): min·2^attempt, capped, ±25 %. */
export function backoffDelay(
  attempt: number,
  min: number,
  max: number,
  random: () => number,
): number {
  const base = Math.min(max, min * 2 ** attempt);
  return Math.round(base * (0.75 + 0.5 * random()));
}

export class LiveEvents {
  private ws: WebSocket | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private attempt = 0;
  private stopped = false;
  private readonly o: Required<Omit<LiveOptions, "onStatus">> & Pick<LiveOptions, "onStatus">;

  constructor(options: LiveOptions) {
    this.o = {
      socket: (url) => new WebSocket(url),
      minDelay: 500,
      maxDelay: 15000,
      random: Math.random,
      ...options,
    };
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.onerror = null;
      ws.onopen = null;
      ws.close();
    }
  }

  private connect(): void {
    if (this.stopped) return;
    this.o.onStatus?.("connecting");
    let ws: WebSocket;
    try {
      ws = this.o.socket(this.o.url());
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.o.onStatus?.("open");
    };
    ws.onmessage = (m: MessageEvent) => {
      if (typeof m.data !== "string") return;
      try {
        const event = JSON.parse(m.data) as ClusterEvent;
        if (event && typeof event.type === "string") this.o.onEvent(event);
      } catch {
        // not an event: ignore
      }
    };
    ws.onclose = () => {
      this.ws = null;
      this.o.onStatus?.("closed");
      this.retry();
    };
  }

  private retry(): void {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt, this.o.minDelay, this.o.maxDelay, this.o.random);
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
