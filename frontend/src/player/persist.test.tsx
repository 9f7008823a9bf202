import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { ApiClient, SubsonicFailure, savePlayQueue, subsonicCall } from "../api/client";
import type { Song } from "../api/types";
import { ok, page, setup, song, subsonicFailed, useFakeBrowser } from "../testing";
import { MAX_SAVED, fromSaved, loadLocal, queueKey, toSaved } from "./persist";

useFakeBrowser();

const second: Song = { ...song, id: "s2", title: "Second Tone", track: 2 };
const third: Song = { ...song, id: "s3", title: "Third Tone", track: 3 };

function subsonicOk(extra: Record<string, unknown> = {}) {
  return ok({ "subsonic-response": { status: "ok", version: "1.16.1", ...extra } });
}

const audio = () => document.querySelector("audio")!;

/** Pretend the element played up to `seconds`. */
function playTo(seconds: number) {
  act(() => {
    audio().currentTime = seconds;
    audio().dispatchEvent(new Event("playing"));
    audio().dispatchEvent(new Event("timeupdate"));
  });
}

async function playSecondSong() {
  const user = userEvent.setup();
  const table = await screen.findByRole("table", { name: "Songs" });
  await user.click(within(table).getByRole("button", { name: "Play Second Tone" }));
  await waitFor(() => expect(audio().getAttribute("src")).toContain("/api/songs/s2/stream"));
}

const songsPage = (url: URL) =>
  url.pathname === "/api/songs" ? ok(page([song, second, third])) : undefined;

describe("the play queue", () => {
  it("survives a reload: same songs, same song, same place, paused", async () => {
    window.history.replaceState(null, "", "/songs");
    const { reload } = setup(songsPage);
    await playSecondSong();
    playTo(42.5);
    act(() => void audio().dispatchEvent(new Event("pause")));
    const plays = vi.mocked(HTMLMediaElement.prototype.play).mock.calls.length;

    reload();
    const player = await screen.findByRole("contentinfo", { name: "Player" });
    expect(within(player).getByTestId("now-playing").textContent).toBe("Second Tone");
    expect(audio().getAttribute("src")).toContain("/api/songs/s2/stream");
    expect(audio().currentTime).toBe(42.5);
    expect(within(player).getByRole("slider", { name: "Seek" }).getAttribute("value")).toBe("42.5");
    // Not started by itself: a reload does not make noise.
    expect(vi.mocked(HTMLMediaElement.prototype.play).mock.calls.length).toBe(plays);
    const user = userEvent.setup();
    await user.click(within(player).getByRole("button", { name: "Queue" }));
    const queue = screen.getByRole("region", { name: "Queue" });
    expect(
      within(queue)
        .getAllByRole("listitem")
        .map((li) => li.textContent),
    ).toEqual(["Blue ToneThe Testers", "Second ToneThe Testers", "Third ToneThe Testers"]);
    expect(within(queue).getAllByRole("listitem")[1].getAttribute("aria-current")).toBe("true");
  });

  it("is kept per user, and junk in storage is ignored", () => {
    localStorage.setItem(queueKey("u1"), "{not json");
    expect(loadLocal(localStorage, "u1")).toBeNull();
    localStorage.setItem(queueKey("u1"), JSON.stringify({ items: [{ title: "no id" }] }));
    expect(loadLocal(localStorage, "u1")).toBeNull();
    expect(loadLocal(localStorage, "u2")).toBeNull();
    expect(fromSaved(null)).toEqual({ items: [], index: -1, serial: 0 });
  });

  it("keeps at most MAX_SAVED songs, around the current one", () => {
    const many = Array.from({ length: MAX_SAVED + 100 }, (_, i) => ({ ...song, id: `s${i}` }));
    const saved = toSaved({ items: many, index: 300, serial: 4 }, 12, 1000);
    expect(saved.items).toHaveLength(MAX_SAVED);
    expect(saved.items[saved.index].id).toBe("s300");
    expect(saved).toMatchObject({ position: 12, savedAt: 1000 });
  });
});

describe("the play queue on the server (Subsonic savePlayQueue / getPlayQueue)", () => {
  it("is left alone, credentials and all, by a server that does not implement it", async () => {
    window.history.replaceState(null, "", "/songs");
    const { calls, reload } = setup(songsPage); // /rest/*: error 0, "not implemented"
    await playSecondSong();
    playTo(10);
    act(() => void audio().dispatchEvent(new Event("pause")));
    await waitFor(() =>
      expect(calls.some((c) => c.url.pathname === "/rest/getPlayQueue")).toBe(true),
    );
    expect(calls.filter((c) => c.url.pathname.startsWith("/rest/")).length).toBe(1);
    expect(calls.some((c) => c.url.pathname === "/api/me/subsonic")).toBe(false);
    reload();
    expect((await screen.findByTestId("now-playing")).textContent).toBe("Second Tone");
  });

  function subsonicServer(saved: { ids: string[]; current: string; ms: number; changed: Date }) {
    const saves: URLSearchParams[] = [];
    const handler = (url: URL) => {
      const key = url.searchParams.get("apiKey");
      if (url.pathname.startsWith("/rest/")) {
        expect(url.searchParams.get("f")).toBe("json");
        if (key !== "KEY") return subsonicFailed(44, "invalid API key");
      }
      if (url.pathname === "/rest/getPlayQueue")
        return subsonicOk({
          playQueue: {
            entry: saved.ids.map((id) => ({ id, title: id })),
            current: saved.current,
            position: saved.ms,
            username: "ana",
            changed: saved.changed.toISOString(),
            changedBy: "another app",
          },
        });
      if (url.pathname === "/rest/savePlayQueue") {
        saves.push(url.searchParams);
        return subsonicOk();
      }
      if (url.pathname === "/api/me/subsonic")
        return ok({
          username: "ana",
          password: "pw",
          api_key: "KEY",
          updated_at: 1,
          path: "/rest",
        });
      const one = /^\/api\/songs\/(s\d)$/.exec(url.pathname);
      if (one) return ok([song, second, third].find((s) => s.id === one[1]));
      return songsPage(url);
    };
    return { handler, saves };
  }

  it("follows the user: a newer queue saved elsewhere is picked up, paused where it was", async () => {
    window.history.replaceState(null, "", "/songs");
    const server = subsonicServer({
      ids: ["s3", "s1"],
      current: "s1",
      ms: 73_250,
      changed: new Date(Date.now() + 60_000),
    });
    setup(server.handler);
    await waitFor(() => expect(screen.getByTestId("now-playing").textContent).toBe("Blue Tone"));
    // The title shows as soon as the queue is in; the position is applied just after.
    await waitFor(() => expect(audio().currentTime).toBe(73.25));
    expect(HTMLMediaElement.prototype.play).not.toHaveBeenCalled();
    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: "Queue" }));
    const queue = screen.getByRole("region", { name: "Queue" });
    expect(
      within(queue)
        .getAllByRole("listitem")
        .map((li) => li.textContent),
    ).toEqual(["Third ToneThe Testers", "Blue ToneThe Testers"]);
  });

  it("saves the queue there on a pause: ids in order, the current one, the position in ms", async () => {
    window.history.replaceState(null, "", "/songs");
    const server = subsonicServer({ ids: ["s3"], current: "s3", ms: 0, changed: new Date(0) });
    const { calls } = setup(server.handler);
    await waitFor(() =>
      expect(calls.some((c) => c.url.searchParams.get("apiKey") === "KEY")).toBe(true),
    );
    // (The server's queue, dated 1970, is not newer than this empty browser's.)
    await playSecondSong();
    playTo(61.2);
    act(() => void audio().dispatchEvent(new Event("pause")));
    await waitFor(() => expect(server.saves.length).toBeGreaterThan(0));
    const last = server.saves.at(-1)!;
    expect(last.getAll("id")).toEqual(["s1", "s2", "s3"]);
    expect(last.get("current")).toBe("s2");
    expect(last.get("position")).toBe("61200");
    expect(last.get("c")).toBe("dspot-web");
  });

  it("keeps this browser's queue when it is newer than the server's", async () => {
    localStorage.setItem(
      queueKey("u1"),
      JSON.stringify({ items: [second], index: 0, position: 5, savedAt: Date.now() }),
    );
    const server = subsonicServer({
      ids: ["s3"],
      current: "s3",
      ms: 1000,
      changed: new Date(Date.now() - 60_000),
    });
    const { calls } = setup(server.handler);
    await waitFor(() =>
      expect(
        calls.some(
          (c) =>
            c.url.pathname === "/rest/getPlayQueue" && c.url.searchParams.get("apiKey") === "KEY",
        ),
      ).toBe(true),
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(screen.getByTestId("now-playing").textContent).toBe("Second Tone");
    expect(calls.some((c) => c.url.pathname === "/api/songs/s3")).toBe(false);
    // ...and gives the server this newer copy (the last page's save may have been cut short).
    await waitFor(() => expect(server.saves.length).toBe(1));
    expect(server.saves[0].getAll("id")).toEqual(["s2"]);
    expect(server.saves[0].get("current")).toBe("s2");
    expect(server.saves[0].get("position")).toBe("5000");
  });
});

describe("the Subsonic client", () => {
  function client(body: unknown) {
    const urls: URL[] = [];
    const fetch = vi.fn(async (input: RequestInfo | URL) => {
      urls.push(new URL(String(input), "https://x"));
      return new Response(JSON.stringify(body), { status: 200 });
    });
    const api = new ApiClient({
      fetch: fetch as unknown as typeof globalThis.fetch,
      storage: null,
    });
    return { api, urls };
  }

  it("sends the JSON form with the API key, ids repeated", async () => {
    const { api, urls } = client({ "subsonic-response": { status: "ok" } });
    await savePlayQueue(api, "K", ["a", "b"], "b", 1234.4);
    const q = urls[0].searchParams;
    expect(urls[0].pathname).toBe("/rest/savePlayQueue");
    expect([q.get("f"), q.get("apiKey"), q.get("v")]).toEqual(["json", "K", "1.16.1"]);
    expect(q.getAll("id")).toEqual(["a", "b"]);
    expect([q.get("current"), q.get("position")]).toEqual(["b", "1234"]);
    expect(q.has("u") || q.has("p") || q.has("t")).toBe(false);
  });

  it("turns a failed answer into SubsonicFailure with its code", async () => {
    const { api } = client({
      "subsonic-response": { status: "failed", error: { code: 0, message: "not implemented: x" } },
    });
    const e = await subsonicCall(api, "K", "x").catch((err: unknown) => err);
    expect(e).toBeInstanceOf(SubsonicFailure);
    expect((e as SubsonicFailure).code).toBe(0);
    expect((e as SubsonicFailure).message).toBe("not implemented: x");
  });
});
