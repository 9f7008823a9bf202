import { describe, expect, it } from "vitest";
import type { Song } from "../api/types";
import {
  fraction,
  nextToUpload,
  summary,
  summaryText,
  uploadReducer,
  type UploadItem,
} from "./queue";

const song = { id: "s1", title: "Tone" } as Song;

describe("upload queue", () => {
  it("sends files one at a time, in the order chosen", () => {
    let s: UploadItem[] = uploadReducer([], {
      type: "add",
      files: [
        { id: "a", name: "a.mp3", size: 100 },
        { id: "b", name: "b.flac", size: 200 },
      ],
    });
    expect(nextToUpload(s)?.id).toBe("a");
    s = uploadReducer(s, { type: "start", id: "a" });
    expect(nextToUpload(s)).toBeUndefined();
    s = uploadReducer(s, { type: "progress", id: "a", loaded: 40, total: 100 });
    expect(fraction(s[0])).toBeCloseTo(0.4);
    s = uploadReducer(s, { type: "done", id: "a", song, duplicate: false });
    expect(s[0]).toMatchObject({ status: "done", loaded: 100, song });
    expect(nextToUpload(s)?.id).toBe("b");
    s = uploadReducer(s, { type: "start", id: "b" });
    s = uploadReducer(s, { type: "failed", id: "b", error: "not a supported audio format" });
    expect(s[1]).toMatchObject({ status: "failed", error: "not a supported audio format" });
    expect(nextToUpload(s)).toBeUndefined();
    expect(summary(s)).toEqual({ pending: 0, done: 1, duplicate: 0, failed: 1, cancelled: 0 });
  });

  it("refuses empty and oversized files before sending them", () => {
    const s = uploadReducer([], {
      type: "add",
      files: [
        { id: "e", name: "empty.mp3", size: 0 },
        { id: "h", name: "huge.wav", size: 600 * 1024 * 1024 },
      ],
    });
    expect(s.map((i) => i.status)).toEqual(["failed", "failed"]);
    expect(s[0].error).toMatch(/empty/);
    expect(s[1].error).toMatch(/larger/);
    expect(nextToUpload(s)).toBeUndefined();
  });

  it("marks duplicates, ignores late progress, cancels and clears finished rows", () => {
    let s = uploadReducer([], {
      type: "add",
      files: [
        { id: "a", name: "a", size: 10 },
        { id: "b", name: "b", size: 10 },
      ],
    });
    s = uploadReducer(s, { type: "start", id: "a" });
    s = uploadReducer(s, { type: "done", id: "a", song, duplicate: true });
    s = uploadReducer(s, { type: "progress", id: "a", loaded: 3, total: 10 });
    expect(s[0]).toMatchObject({ status: "duplicate", loaded: 10 });
    s = uploadReducer(s, { type: "cancel", id: "b" });
    expect(s[1].status).toBe("cancelled");
    expect(uploadReducer(s, { type: "cancel", id: "a" })[0].status).toBe("duplicate");
    expect(uploadReducer(s, { type: "clearFinished" })).toEqual([]);
    expect(uploadReducer(s, { type: "dismiss", id: "a" }).map((i) => i.id)).toEqual(["b"]);
  });

  it("counts a duplicate apart from the uploaded songs", () => {
    let s = uploadReducer([], {
      type: "add",
      files: ["a", "b", "c", "d"].map((id) => ({ id, name: id, size: 10 })),
    });
    s = uploadReducer(s, { type: "done", id: "a", song, duplicate: false });
    s = uploadReducer(s, { type: "done", id: "b", song, duplicate: true });
    s = uploadReducer(s, { type: "failed", id: "c", error: "not audio" });
    expect(summary(s)).toEqual({ pending: 1, done: 1, duplicate: 1, failed: 1, cancelled: 0 });
    expect(summaryText(summary(s))).toBe(
      "1 to go · 1 uploaded · 1 already in the library · 1 refused",
    );
    s = uploadReducer(s, { type: "cancelAll" });
    expect(s[3].status).toBe("cancelled");
    expect(s[0].status).toBe("done"); // finished rows stay as they were
    expect(summaryText(summary(s))).toBe(
      "All done · 1 uploaded · 1 already in the library · 1 refused · 1 cancelled",
    );
  });
});
