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
  const aborted: string[] = [];
  vi.spyOn(api, "upload").mockImplementation((file, progress) => {
    let p!: Pending;
    const promise = new Promise<UploadResult>((resolve, reject) => {
      p = { file: file as File, progress, resolve, reject };
    });
    pending.push(p);
    return {
      promise,
      abort: () => {
        aborted.push((file as File).name);
        p.reject(new ApiError(0, "Cancelled", "the upload was cancelled"));
      },
    };
  });
  render(
    <AppProvider api={api}>
      <UploadView />
    </AppProvider>,
  );
  return { api, pending, aborted };
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
    // Sending starts at once, one file at a time; nothing waits for another button.
    expect(screen.queryByRole("button", { name: "Upload" })).toBeNull();
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
    expect(screen.getByTestId("upload-summary").textContent).toBe(
      "All done · 1 uploaded · 1 refused",
    );
  });

  it("says when the library already had the file, and does not count it as uploaded", async () => {
    const { pending } = setup();
    fireEvent.change(screen.getByLabelText("Audio files to upload"), {
      target: {
        files: [
          new File([new Uint8Array(5)], "again.flac"),
          new File([new Uint8Array(5)], "new.flac"),
        ],
      },
    });
    expect(pending).toHaveLength(1); // started by choosing the files
    await act(async () => pending[0].resolve({ status: 200, song: { ...song, duplicate: true } }));
    const again = screen.getByRole("listitem", { name: "again.flac" });
    expect(within(again).getByTestId("upload-status").textContent).toBe("Already in the library");
    await act(async () => pending[1].resolve({ status: 201, song: { ...song, id: "s2" } }));
    expect(screen.getByTestId("upload-summary").textContent).toBe(
      "All done · 1 uploaded · 1 already in the library",
    );
  });

  it("cancels a file being sent, and the rest with one button", async () => {
    const { pending, aborted } = setup();
    fireEvent.change(screen.getByLabelText("Audio files to upload"), {
      target: {
        files: ["one", "two", "three"].map((n) => new File([new Uint8Array(5)], `${n}.flac`)),
      },
    });
    expect(pending).toHaveLength(1);
    await act(async () => fireEvent.click(screen.getByRole("button", { name: "Cancel one.flac" })));
    expect(aborted).toEqual(["one.flac"]);
    const one = screen.getByRole("listitem", { name: "one.flac" });
    expect(within(one).getByTestId("upload-status").textContent).toBe("Cancelled");
    expect(pending).toHaveLength(2); // the next one goes
    expect(pending[1].file.name).toBe("two.flac");
    await act(async () => fireEvent.click(screen.getByRole("button", { name: "Cancel all" })));
    expect(aborted).toEqual(["one.flac", "two.flac"]);
    expect(pending).toHaveLength(2); // "three" never started
    expect(screen.getByTestId("upload-summary").textContent).toBe(
      "All done · 0 uploaded · 3 cancelled",
    );
    expect(screen.getAllByTestId("upload-status").map((s) => s.textContent)).toEqual([
      "Cancelled",
      "Cancelled",
      "Cancelled",
    ]);
  });
});
