import { describe, expect, it } from "vitest";
import type { Song } from "../api/types";
import {
  currentSong,
  emptyQueue,
  hasNext,
  hasPrevious,
  queueReducer,
  upcoming,
  type QueueState,
} from "./queue";

const s = (id: string) => ({ id, title: id.toUpperCase() }) as Song;
const ids = (q: QueueState) => q.items.map((x) => x.id);

describe("play queue", () => {
  it("plays a list from a chosen song and walks it", () => {
    let q = queueReducer(emptyQueue, { type: "play", songs: [s("a"), s("b"), s("c")], start: 1 });
    expect(currentSong(q)?.id).toBe("b");
    expect(hasPrevious(q) && hasNext(q)).toBe(true);
    const serial = q.serial;
    q = queueReducer(q, { type: "next" });
    expect(currentSong(q)?.id).toBe("c");
    expect(q.serial).toBe(serial + 1);
    expect(queueReducer(q, { type: "next" })).toBe(q); // at the end: nothing changes
    q = queueReducer(q, { type: "previous" });
    q = queueReducer(q, { type: "previous" });
    expect(currentSong(q)?.id).toBe("a");
    expect(queueReducer(q, { type: "previous" })).toBe(q);
  });

  it("restarts when the same song is played again", () => {
    const q = queueReducer(emptyQueue, { type: "play", songs: [s("a")] });
    const again = queueReducer(q, { type: "play", songs: [s("a")] });
    expect(again.serial).toBeGreaterThan(q.serial);
  });

  it("enqueues at the end and plays next after the current song", () => {
    let q = queueReducer(emptyQueue, { type: "enqueue", songs: [s("a")] });
    expect(currentSong(q)?.id).toBe("a"); // an empty queue starts playing what is added
    q = queueReducer(q, { type: "enqueue", songs: [s("b")] });
    q = queueReducer(q, { type: "playNext", song: s("x") });
    expect(ids(q)).toEqual(["a", "x", "b"]);
    expect(upcoming(q).map((x) => x.id)).toEqual(["x", "b"]);
    expect(currentSong(q)?.id).toBe("a");
  });

  it("keeps the current song when others move or go", () => {
    let q = queueReducer(emptyQueue, {
      type: "play",
      songs: [s("a"), s("b"), s("c"), s("d")],
      start: 2,
    });
    q = queueReducer(q, { type: "move", from: 0, to: 3 });
    expect(ids(q)).toEqual(["b", "c", "d", "a"]);
    expect(currentSong(q)?.id).toBe("c");
    q = queueReducer(q, { type: "move", from: 3, to: 0 });
    expect(currentSong(q)?.id).toBe("c");
    q = queueReducer(q, { type: "move", from: 2, to: 0 });
    expect(ids(q)).toEqual(["c", "a", "b", "d"]);
    expect(q.index).toBe(0);
    q = queueReducer(q, { type: "remove", index: 3 });
    expect(currentSong(q)?.id).toBe("c");
    const before = q.serial;
    q = queueReducer(q, { type: "remove", index: 0 }); // the current one: the next takes over
    expect(currentSong(q)?.id).toBe("a");
    expect(q.serial).toBe(before + 1);
    q = queueReducer(q, { type: "jump", index: 1 });
    q = queueReducer(q, { type: "remove", index: 1 }); // the last one: the one before plays
    expect(currentSong(q)?.id).toBe("a");
    q = queueReducer(q, { type: "clear" });
    expect(currentSong(q)).toBeNull();
    expect(queueReducer(q, { type: "move", from: 0, to: 1 })).toBe(q);
  });
});
