// The play queue as a pure reducer: what plays now, what comes next. The <audio> element
// and the Media Session live in Player.tsx; this module only decides the order.
import type { Song } from "../api/types";

export interface QueueState {
  items: Song[];
  /** Index of the current song in `items`; -1 when nothing is selected. */
  index: number;
  /** Bumped on every (re)start of a track, so playing the same song again restarts it. */
  serial: number;
}

export type QueueAction =
  | { type: "play"; songs: Song[]; start?: number }
  | { type: "enqueue"; songs: Song[] }
  | { type: "playNext"; song: Song }
  | { type: "next" }
  | { type: "previous" }
  | { type: "jump"; index: number }
  | { type: "remove"; index: number }
  | { type: "move"; from: number; to: number }
  | { type: "clear" };

export const emptyQueue: QueueState = { items: [], index: -1, serial: 0 };

export function currentSong(state: QueueState): Song | null {
  return state.items[state.index] ?? null;
}

export function hasNext(state: QueueState): boolean {
  return state.index + 1 < state.items.length;
}

export function hasPrevious(state: QueueState): boolean {
  return state.index > 0;
}

/** Songs after the current one, in play order. */
export function upcoming(state: QueueState): Song[] {
  return state.items.slice(state.index + 1);
}

export function queueReducer(state: QueueState, action: QueueAction): QueueState {
  switch (action.type) {
    case "play": {
      if (action.songs.length === 0) return state;
      const start = Math.min(Math.max(action.start ?? 0, 0), action.songs.length - 1);
      return { items: [...action.songs], index: start, serial: state.serial + 1 };
    }
    case "enqueue": {
      if (action.songs.length === 0) return state;
      const items = [...state.items, ...action.songs];
      if (state.index === -1) return { items, index: state.items.length, serial: state.serial + 1 };
      return { ...state, items };
    }
    case "playNext": {
      if (state.index === -1) return { items: [action.song], index: 0, serial: state.serial + 1 };
      const items = [...state.items];
      items.splice(state.index + 1, 0, action.song);
      return { ...state, items };
    }
    case "next":
      return hasNext(state)
        ? { ...state, index: state.index + 1, serial: state.serial + 1 }
        : state;
    case "previous":
      return hasPrevious(state)
        ? { ...state, index: state.index - 1, serial: state.serial + 1 }
        : state;
    case "jump":
      if (action.index < 0 || action.index >= state.items.length) return state;
      return { ...state, index: action.index, serial: state.serial + 1 };
    case "remove": {
      const i = action.index;
      if (i < 0 || i >= state.items.length) return state;
      const items = state.items.filter((_, j) => j !== i);
      if (i < state.index) return { ...state, items, index: state.index - 1 };
      if (i > state.index) return { ...state, items };
      // Removing the current song: the next one (if any) takes its place and starts.
      const index = items.length === 0 ? -1 : Math.min(i, items.length - 1);
      return { items, index, serial: state.serial + 1 };
    }
    case "move": {
      const { from, to } = action;
      const n = state.items.length;
      if (from < 0 || from >= n || to < 0 || to >= n || from === to) return state;
      const items = [...state.items];
      const [song] = items.splice(from, 1);
      items.splice(to, 0, song);
      let index = state.index;
      if (from === state.index) index = to;
      else if (from < state.index && to >= state.index) index -= 1;
      else if (from > state.index && to <= state.index) index += 1;
      return { ...state, items, index };
    }
    case "clear":
      return { items: [], index: -1, serial: state.serial + 1 };
  }
}
