import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import type { Song } from "./api/types";
import { albumCoverTrack, artistCoverSong } from "./components/covers";
import { album, artist, ok, page, setup, song, useFakeBrowser } from "./testing";

useFakeBrowser();

const track = (id: string, n: number, cover: string | null): Song => ({
  ...song,
  id,
  title: `Track ${n}`,
  track: n,
  cover_sha256: cover,
});

const coverOf = (img: Element) => new URL(img.getAttribute("src")!, "https://x").pathname;

describe("covers", () => {
  it("pick the album's own cover, else the first track that has art", () => {
    const tracks = [track("t1", 1, null), track("t2", 2, "bb"), track("t3", 3, "aa")];
    expect(albumCoverTrack("aa", tracks)).toBe("t3");
    expect(albumCoverTrack(null, tracks)).toBe("t2");
    expect(albumCoverTrack(null, [track("t1", 1, null)])).toBeNull();
    expect(artistCoverSong([{ ...tracks[1], album_id: null }, tracks[2]])).toBe("t3");
    expect(artistCoverSong([{ ...tracks[1], album_id: null }])).toBe("t2");
  });

  it("show an album whose first track has no art with a later track's cover", async () => {
    window.history.replaceState(null, "", "/albums/al1");
    const tracks = [track("t1", 1, null), track("t2", 2, "cc")];
    setup((url) => {
      if (url.pathname === "/api/albums/al1") return ok({ ...album, cover_sha256: null, tracks });
      if (url.pathname === "/api/albums") return ok(page([{ ...album, cover_sha256: null }]));
      if (url.pathname === "/api/songs" && url.searchParams.get("album") === "al1")
        return ok(page(tracks));
      return undefined;
    });
    const hero = await screen.findByRole("img", { name: "Cover of Fixtures" });
    expect(coverOf(hero)).toBe("/api/songs/t2/cover");
    // The album grid finds it too.
    const user = userEvent.setup();
    await user.click(screen.getByRole("link", { name: "Albums" }));
    const grid = await screen.findByRole("list", { name: "Albums" });
    const card = () => within(grid).getByRole("img", { name: "Cover of Fixtures" });
    await waitFor(() => expect(card().tagName).toBe("IMG"));
    expect(coverOf(card())).toBe("/api/songs/t2/cover");
  });

  it("show each artist with a cover of one of their albums", async () => {
    window.history.replaceState(null, "", "/artists");
    setup((url) => {
      if (url.pathname === "/api/artists") return ok(page([artist]));
      if (url.pathname === "/api/songs" && url.searchParams.get("artist") === "a1")
        return ok(page([track("t1", 1, null), track("t2", 2, "cc")]));
      return undefined;
    });
    const grid = await screen.findByRole("list", { name: "Artists" });
    await waitFor(() => expect(grid.querySelector("img")).not.toBeNull());
    expect(coverOf(grid.querySelector("img")!)).toBe("/api/songs/t2/cover");
    expect(grid.querySelector(".avatar")).toBeNull();
  });

  it("put a thumbnail on each song row", async () => {
    window.history.replaceState(null, "", "/songs");
    setup((url) =>
      url.pathname === "/api/songs"
        ? ok(
            page([
              { ...song, cover_sha256: "cc" },
              { ...song, id: "s2", title: "Bare" },
            ]),
          )
        : undefined,
    );
    const table = await screen.findByRole("table", { name: "Songs" });
    const rows = within(table).getAllByRole("row").slice(1);
    const img = rows[0].querySelector("img.cover-thumb")!;
    expect(coverOf(img)).toBe("/api/songs/s1/cover");
    expect(img.getAttribute("alt")).toBe(""); // the row names the song already
    expect(rows[1].querySelector(".cover-thumb.cover-placeholder")).not.toBeNull();
  });
});

describe("album cards", () => {
  it("play the album from the grid, and pause it", async () => {
    const tracks = [track("t1", 1, null), track("t2", 2, null)];
    setup((url) => {
      if (url.pathname === "/api/albums") return ok(page([album]));
      if (url.pathname === "/api/albums/al1") return ok({ ...album, tracks });
      return undefined;
    });
    const grid = await screen.findByRole("list", { name: "Albums" });
    const user = userEvent.setup();
    await user.click(within(grid).getByRole("button", { name: "Play Fixtures" }));
    const audio = document.querySelector("audio")!;
    await waitFor(() => expect(audio.getAttribute("src")).toContain("/api/songs/t1/stream"));
    expect(window.location.pathname).toBe("/"); // played from the card, not opened
    audio.dispatchEvent(new Event("playing"));
    const pause = await within(grid).findByRole("button", { name: "Pause Fixtures" });
    await user.click(pause);
    expect(HTMLMediaElement.prototype.pause).toHaveBeenCalled();
  });
});

describe("the tab title", () => {
  it("says what plays, and the app's name otherwise", async () => {
    window.history.replaceState(null, "", "/songs");
    setup((url) => (url.pathname === "/api/songs" ? ok(page([song])) : undefined));
    expect(document.title).toBe("dspot");
    const user = userEvent.setup();
    const table = await screen.findByRole("table", { name: "Songs" });
    await user.click(within(table).getByRole("button", { name: "Play Blue Tone" }));
    const audio = document.querySelector("audio")!;
    audio.dispatchEvent(new Event("playing"));
    await waitFor(() => expect(document.title).toBe("Blue Tone · The Testers"));
    audio.dispatchEvent(new Event("pause"));
    await waitFor(() => expect(document.title).toBe("dspot"));
  });
});
