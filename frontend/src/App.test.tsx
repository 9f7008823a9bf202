import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { album, artist, cluster, ok, page, problem, setup, song, useFakeBrowser } from "./testing";

useFakeBrowser();

describe("the app", () => {
  it("signs in, showing the server's reason when it refuses", async () => {
    let attempts = 0;
    setup((url) => {
      if (url.pathname === "/api/auth/login") {
        attempts += 1;
        return attempts === 1
          ? problem(401, "wrong username or password")
          : ok({ token: "t", user_id: "u", username: "ana" });
      }
      if (url.pathname === "/api/albums") return ok({ ...page([album]), limit: 24 });
      return undefined;
    }, false);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Username"), "ana");
    await user.type(screen.getByLabelText("Password"), "bad password");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect((await screen.findByRole("alert")).textContent).toBe("wrong username or password");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("navigation", { name: "Main" })).toBeTruthy();
    const grid = await screen.findByRole("list", { name: "Albums" });
    expect(within(grid).getByRole("link", { name: "Fixtures by The Testers" })).toBeTruthy();
  });

  it("shows the read-only banner when the cluster has no quorum", async () => {
    setup((url) => (url.pathname === "/api/cluster" ? ok(cluster(false)) : undefined));
    const banner = await screen.findByText(/catalog is read-only/);
    expect(banner.getAttribute("role")).toBe("alert");
  });

  it("shows the banner when a write is refused for lack of quorum", async () => {
    window.history.replaceState(null, "", "/playlists");
    setup((url, init) =>
      url.pathname === "/api/playlists" && init.method === "POST"
        ? problem(503, "read-only: no quorum")
        : undefined,
    );
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText("New playlist name"), "Mix");
    await user.click(screen.getByRole("button", { name: "Create playlist" }));
    expect(await screen.findByText(/catalog is read-only/)).toBeTruthy();
    expect(screen.getByText("read-only: no quorum")).toBeTruthy();
  });

  it("searches songs, plays one through the token URL and records the play", async () => {
    window.history.replaceState(null, "", "/songs");
    const { calls } = setup((url) => {
      if (url.pathname === "/api/songs" && url.searchParams.get("q") === "blue")
        return ok({ items: [song], page: 1, limit: 50, total: 1 });
      if (url.pathname === "/api/songs/s1/plays") return ok({ ...song, plays: 1 });
      return undefined;
    });
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Search songs"), "blue");
    const table = await screen.findByRole("table", { name: "Songs" });
    expect(window.location.search).toBe("?q=blue");
    await user.click(within(table).getByRole("button", { name: "Play Blue Tone" }));
    const audio = document.querySelector("audio")!;
    expect(audio.getAttribute("src") ?? audio.src).toContain("/api/songs/s1/stream?token=tok");
    audio.dispatchEvent(new Event("playing"));
    await waitFor(() =>
      expect(
        calls.some((c) => c.url.pathname === "/api/songs/s1/plays" && c.init.method === "POST"),
      ).toBe(true),
    );
    const player = screen.getByRole("contentinfo", { name: "Player" });
    expect(within(player).getByTestId("now-playing").textContent).toBe("Blue Tone");
    expect(within(player).getByRole("button", { name: "Pause" })).toBeTruthy();
    for (const name of ["Previous", "Next", "Like", "Queue", "Mute"]) {
      expect(within(player).getByRole("button", { name })).toBeTruthy();
    }
    expect(within(player).getByRole("slider", { name: "Seek" })).toBeTruthy();
    expect(within(player).getByRole("slider", { name: "Volume" })).toBeTruthy();
  });

  it("pages through songs and filters them by artist", async () => {
    window.history.replaceState(null, "", "/songs");
    const { calls } = setup((url) => {
      if (url.pathname === "/api/artists")
        return ok({
          items: [{ id: "a1", name: "The Testers", album_count: 1, song_count: 120 }],
          page: 1,
          limit: 200,
          total: 1,
        });
      if (url.pathname === "/api/songs") {
        const page = Number(url.searchParams.get("page") ?? 1);
        return ok({
          items: [{ ...song, id: `s${page}`, title: `Song on page ${page}` }],
          page,
          limit: 50,
          total: 120,
        });
      }
      return undefined;
    });
    const user = userEvent.setup();
    expect(await screen.findByText("Page 1 of 3")).toBeTruthy();
    await user.click(screen.getByRole("button", { name: "Next page" }));
    expect(await screen.findByText("Song on page 2")).toBeTruthy();
    expect(window.location.search).toBe("?page=2");
    await user.selectOptions(await screen.findByRole("combobox", { name: "Artist" }), "a1");
    await screen.findByText("Song on page 1");
    const last = calls.filter((c) => c.url.pathname === "/api/songs").at(-1)!;
    expect(last.url.searchParams.get("artist")).toBe("a1");
    expect(last.url.searchParams.get("page")).toBe("1");
  });

  it("filters songs by a genre picked from the catalog's genres, kept in the URL", async () => {
    window.history.replaceState(null, "", "/songs?genre=jazz");
    const { calls } = setup((url) => {
      if (url.pathname === "/api/genres")
        return ok({
          items: [
            { genre: "Ambient", songs: 3 },
            { genre: "Jazz", songs: 1 },
          ],
        });
      if (url.pathname === "/api/songs") return ok(page([song]));
      return undefined;
    });
    const user = userEvent.setup();
    const select = await screen.findByRole("combobox", { name: "Genre" });
    const options = () =>
      within(select)
        .getAllByRole("option")
        .map((o) => o.textContent);
    await waitFor(() => expect(options()).toEqual(["All genres", "Ambient (3)", "Jazz (1)"]));
    // The URL's genre matches the catalog's ignoring case.
    expect((select as HTMLSelectElement).value).toBe("Jazz");
    const songCalls = () => calls.filter((c) => c.url.pathname === "/api/songs");
    expect(songCalls()[0].url.searchParams.get("genre")).toBe("jazz");

    await user.selectOptions(select, "Ambient");
    expect(window.location.search).toBe("?genre=Ambient");
    await waitFor(() => expect(songCalls().at(-1)!.url.searchParams.get("genre")).toBe("Ambient"));
    await user.selectOptions(select, "All genres");
    expect(window.location.search).toBe("");
    await waitFor(() => expect(songCalls().at(-1)!.url.searchParams.has("genre")).toBe(false));

    // A genre the catalog no longer has stays shown while it filters.
    window.history.replaceState(null, "", "/songs?genre=Polka");
    window.dispatchEvent(new PopStateEvent("popstate"));
    await waitFor(() => expect((select as HTMLSelectElement).value).toBe("Polka"));
    expect(options()).toContain("Polka");
  });

  it("likes and unlikes an album on its page", async () => {
    window.history.replaceState(null, "", "/albums/al1");
    const { calls } = setup((url) => {
      if (url.pathname === "/api/albums/al1") return ok({ ...album, tracks: [song] });
      if (url.pathname === "/api/albums/al1/like") return ok({ ...album, tracks: [song] });
      return undefined;
    });
    const user = userEvent.setup();
    await screen.findByRole("heading", { name: "Fixtures" });
    await user.click(screen.getByRole("button", { name: "Like" }));
    expect(await screen.findByRole("button", { name: "Unlike" })).toBeTruthy();
    const likes = () =>
      calls.filter((c) => c.url.pathname === "/api/albums/al1/like").map((c) => c.init.method);
    expect(likes()).toEqual(["PUT"]);
    await user.click(screen.getByRole("button", { name: "Unlike" }));
    expect(await screen.findByRole("button", { name: "Like" })).toBeTruthy();
    expect(likes()).toEqual(["PUT", "DELETE"]);
  });

  it("shows an artist the user likes as liked, and undoes a refused unlike", async () => {
    window.history.replaceState(null, "", "/artists/a1");
    const { calls } = setup((url, init) => {
      if (url.pathname === "/api/me/likes/artists") return ok(page([artist]));
      if (url.pathname === "/api/artists/a1")
        return ok({ ...artist, albums: [album], singles: [] });
      if (url.pathname === "/api/artists/a1/like" && init.method === "DELETE")
        return problem(503, "read-only: no quorum");
      return undefined;
    });
    const user = userEvent.setup();
    await screen.findByRole("heading", { name: "The Testers" });
    const unlike = await screen.findByRole("button", { name: "Unlike" });
    await user.click(unlike);
    expect(await screen.findByText("Could not unlike: read-only: no quorum")).toBeTruthy();
    expect(screen.getByRole("button", { name: "Unlike" })).toBeTruthy();
    expect(
      calls.some((c) => c.url.pathname === "/api/artists/a1/like" && c.init.method === "DELETE"),
    ).toBe(true);
  });

  it("shows liked albums and artists above the liked songs", async () => {
    window.history.replaceState(null, "", "/likes");
    setup((url) => {
      if (url.pathname === "/api/me/likes") return ok(page([song]));
      if (url.pathname === "/api/me/likes/albums") return ok(page([album]));
      if (url.pathname === "/api/me/likes/artists") return ok(page([artist]));
      return undefined;
    });
    const albums = await screen.findByRole("list", { name: "Liked albums" });
    expect(within(albums).getByRole("link", { name: "Fixtures by The Testers" })).toBeTruthy();
    const artists = await screen.findByRole("list", { name: "Liked artists" });
    expect(within(artists).getByRole("link", { name: /The Testers/ })).toBeTruthy();
    const songs = await screen.findByRole("table", { name: "Liked songs" });
    expect(within(songs).getByText("Blue Tone")).toBeTruthy();
    // Albums, then artists, then songs.
    const order = [albums, artists, songs];
    for (let i = 1; i < order.length; i++) {
      expect(
        order[i - 1].compareDocumentPosition(order[i]) & Node.DOCUMENT_POSITION_FOLLOWING,
      ).toBeTruthy();
    }
  });

  it("says what the liked view is for when nothing is liked", async () => {
    window.history.replaceState(null, "", "/likes");
    setup(() => undefined);
    expect(await screen.findByText(/Songs, albums and artists you like show up here/)).toBeTruthy();
    expect(screen.queryByRole("table", { name: "Liked songs" })).toBeNull();
  });
});
