import { act, cleanup, fireEvent, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiClient, ApiError, type UploadResult } from "../api/client";
import type { Song } from "../api/types";
import { AppProvider } from "../app/context";
import { UploadView } from "../views/UploadView";

afterEach(cleanup);

interface Pending {
  file: File;
  progress: (loaded: number, total: number) => void;
  resolve: (r: UploadResult) => void;
  reject: (e: unknown) => void;
}

function setup() {
  const api = new ApiClient({ fetch: vi.fn(), storage: null });
  const pending: Pending[] = [];
  vi.spyOn(api, "upload").mockImplementation((file, progress) => {
    let p!: Pending;
    const promise = new Promise<UploadResult>((resolve, reject) => {
      p = { file: file as File, progress, resolve, reject };
    });
    pending.push(p);
    return { promise, abort: () => {} };
  });
  render(
    <AppProvider api={api}>
      <UploadView />
    </AppProvider>,
  );
  return { api, pending };
}

const song = {
  id: "s1",
  title: "Blue Tone",
  artist_id: "a",
  artist_name: "The Testers",
  album_id: "al",
  album_title: "Fixtures",
  track: 3,
  year: 2024,
  genres: ["Ambient"],
  duration: 75,
  mime: "audio/flac",
} as Song;

describe("upload page", () => {
  it("takes dropped files, sends them one at a time with progress, shows tags and refusals", async () => {
    const { pending } = setup();
    const a = new File([new Uint8Array(1000)], "blue.flac", { type: "audio/flac" });
    const b = new File([new Uint8Array(10)], "notes.txt", { type: "text/plain" });
    fireEvent.drop(screen.getByTestId("dropzone"), { dataTransfer: { files: [a, b] } });
    const rows = screen.getAllByTestId("upload-row");
    expect(rows.map((r) => r.getAttribute("aria-label"))).toEqual(["blue.flac", "notes.txt"]);
    expect(pending).toHaveLength(0); // nothing is sent before "Upload"

    fireEvent.click(screen.getByRole("button", { name: "Upload" }));
    expect(pending).toHaveLength(1);
    expect(pending[0].file).toBe(a);
    act(() => pending[0].progress(400, 1000));
    const bar = screen.getByRole("progressbar", { name: "Progress of blue.flac" });
    expect(bar.getAttribute("value")).toBe("40");
    expect(within(rows[0]).getByTestId("upload-status").textContent).toBe("Uploading 40%");

    await act(async () => pending[0].resolve({ status: 201, song }));
    expect(within(rows[0]).getByTestId("upload-status").textContent).toBe("Uploaded");
    const tags = screen.getByLabelText("Tags found in blue.flac");
    for (const text of ["Blue Tone", "The Testers", "Fixtures", "2024", "Ambient", "1:15"]) {
      expect(tags.textContent).toContain(text);
    }

    expect(pending).toHaveLength(2); // the next file goes once the first is done
    await act(async () =>
      pending[1].reject(
        new ApiError(415, "Unsupported Media Type", "not a supported audio format"),
      ),
    );
    expect(within(rows[1]).getByTestId("upload-status").textContent).toBe("Refused");
    expect(within(rows[1]).getByRole("alert").textContent).toBe(
      "notes.txt: not a supported audio format",
    );
    expect(screen.getByText(/1 uploaded · 1 refused/)).toBeTruthy();
  });

  it("says when the library already had the file", async () => {
    const { pending } = setup();
    fireEvent.change(screen.getByLabelText("Audio files to upload"), {
      target: { files: [new File([new Uint8Array(5)], "again.flac")] },
    });
    fireEvent.click(screen.getByRole("button", { name: "Upload" }));
    await act(async () => pending[0].resolve({ status: 200, song: { ...song, duplicate: true } }));
    expect(screen.getByTestId("upload-status").textContent).toBe("Already in the library");
  });
});
