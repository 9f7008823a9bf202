// State of the upload page: one row per chosen file, uploaded one at a time in the order
// chosen, starting as soon as files are chosen. Pure reducer; UploadView.tsx runs the requests.
import type { Song } from "../api/types";

export type UploadStatus = "queued" | "uploading" | "done" | "duplicate" | "failed" | "cancelled";

export interface UploadItem {
  id: string;
  name: string;
  size: number;
  status: UploadStatus;
  loaded: number;
  /** The song the server made (or already had), with the tags it found. */
  song?: Song;
  /** Why the server (or the browser) refused the file. */
  error?: string;
}

export type UploadAction =
  | { type: "add"; files: { id: string; name: string; size: number }[] }
  | { type: "start"; id: string }
  | { type: "progress"; id: string; loaded: number; total: number }
  | { type: "done"; id: string; song: Song; duplicate: boolean }
  | { type: "failed"; id: string; error: string }
  | { type: "cancel"; id: string }
  | { type: "cancelAll" }
  | { type: "dismiss"; id: string }
  | { type: "clearFinished" };

export const MAX_UPLOAD_BYTES = 512 * 1024 * 1024;

export function uploadReducer(items: UploadItem[], action: UploadAction): UploadItem[] {
  const update = (id: string, f: (i: UploadItem) => UploadItem) =>
    items.map((i) => (i.id === id ? f(i) : i));
  switch (action.type) {
    case "add":
      return [
        ...items,
        ...action.files.map((f): UploadItem => {
          if (f.size === 0) {
            return { ...f, status: "failed", loaded: 0, error: "the file is empty" };
          }
          if (f.size > MAX_UPLOAD_BYTES) {
            return { ...f, status: "failed", loaded: 0, error: "the file is larger than 512 MiB" };
          }
          return { ...f, status: "queued", loaded: 0 };
        }),
      ];
    case "start":
      return update(action.id, (i) => ({ ...i, status: "uploading", loaded: 0 }));
    case "progress":
      return update(action.id, (i) =>
        i.status === "uploading" ? { ...i, loaded: Math.min(action.loaded, i.size) } : i,
      );
    case "done":
      return update(action.id, (i) => ({
        ...i,
        status: action.duplicate ? "duplicate" : "done",
        loaded: i.size,
        song: action.song,
      }));
    case "failed":
      return update(action.id, (i) => ({ ...i, status: "failed", error: action.error }));
    case "cancel":
      return update(action.id, (i) =>
        i.status === "queued" || i.status === "uploading" ? { ...i, status: "cancelled" } : i,
      );
    case "cancelAll":
      return items.map((i) =>
        i.status === "queued" || i.status === "uploading" ? { ...i, status: "cancelled" } : i,
      );
    case "dismiss":
      return items.filter((i) => i.id !== action.id);
    case "clearFinished":
      return items.filter((i) => i.status === "queued" || i.status === "uploading");
  }
}

/** The next file to send, unless one is already being sent. */
export function nextToUpload(items: UploadItem[]): UploadItem | undefined {
  if (items.some((i) => i.status === "uploading")) return undefined;
  return items.find((i) => i.status === "queued");
}

/** Fraction sent, 0..1. */
export function fraction(item: UploadItem): number {
  return item.size > 0 ? Math.min(1, item.loaded / item.size) : 0;
}

export interface UploadSummary {
  pending: number;
  /** New songs. */
  done: number;
  /** Files the library already had (not counted as uploaded). */
  duplicate: number;
  failed: number;
  cancelled: number;
}

export function summary(items: UploadItem[]): UploadSummary {
  const s: UploadSummary = { pending: 0, done: 0, duplicate: 0, failed: 0, cancelled: 0 };
  for (const i of items) {
    if (i.status === "queued" || i.status === "uploading") s.pending += 1;
    else s[i.status] += 1;
  }
  return s;
}

/** "2 uploaded · 1 already in the library · 1 refused": what happened, the zeros left out
 * (but always the uploaded count). */
export function summaryText(s: UploadSummary): string {
  const parts = [s.pending > 0 ? `${s.pending} to go` : "All done", `${s.done} uploaded`];
  if (s.duplicate) parts.push(`${s.duplicate} already in the library`);
  if (s.failed) parts.push(`${s.failed} refused`);
  if (s.cancelled) parts.push(`${s.cancelled} cancelled`);
  return parts.join(" · ");
}
