import { describe, expect, it, vi } from "vitest";
import { ApiClient, ApiError, laterPosition, problemError, type ClientEvent } from "./client";

function memoryStorage() {
  const m = new Map<string, string>();
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
    map: m,
  };
}

function json(status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = body === undefined ? "" : JSON.stringify(body);
  return new Response(status === 204 ? null : text, {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

function client(responses: Response[]) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetch = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    const r = responses.shift();
    if (!r) throw new Error("no more responses");
    return r;
  });
  const storage = memoryStorage();
  const api = new ApiClient({ fetch: fetch as unknown as typeof globalThis.fetch, storage });
  return { api, calls, storage };
}

const header = (init: RequestInit, name: string) => (init.headers as Record<string, string>)[name];

describe("ApiClient", () => {
  it("sends the bearer token after sign-in and keeps the session", async () => {
    const { api, calls, storage } = client([
      json(200, { token: "t0k", user_id: "u1", username: "ana" }),
      json(200, { items: [], page: 1, limit: 50, total: 0 }),
    ]);
    expect(header({ headers: api.headers() }, "Authorization")).toBeUndefined();
    await api.login("ana", "secret-password");
    await api.get("/api/songs", { q: "blue", genre: "", page: 2 });
    expect(calls[1].url).toBe("/api/songs?q=blue&page=2");
    expect(header(calls[1].init, "Authorization")).toBe("Bearer t0k");
    expect(JSON.parse(storage.map.get("dspot.session")!).token).toBe("t0k");
    // A new client (a reload) picks the session up again.
    expect(new ApiClient({ fetch: vi.fn(), storage }).token).toBe("t0k");
  });

  it("turns problem documents into ApiError with the detail", async () => {
    const { api } = client([
      json(422, {
        type: "about:blank",
        title: "Unprocessable Content",
        status: 422,
        detail: "not an audio file",
      }),
    ]);
    const err = await api.post("/api/playlists", { name: "" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(422);
    expect((err as ApiError).detail).toBe("not an audio file");
    expect((err as ApiError).message).toBe("not an audio file");
  });

  it("copes with error bodies that are not problem JSON", () => {
    const e = problemError(502, "Bad Gateway", "<html>oops</html>");
    expect(e.status).toBe(502);
    expect(e.detail).toBe("<html>oops</html>");
    expect(problemError(500, "Internal Server Error", "").detail).toBe("Internal Server Error");
  });

  it("sends the log position of the last write with later reads (read your writes)", async () => {
    const { api, calls, storage } = client([
      json(201, { id: "p1" }, { "X-Log-Position": "2.17" }),
      json(200, { id: "p1" }),
      json(200, {}, { "X-Log-Position": "2.9" }), // an older position never replaces a newer one
      json(200, {}),
      json(200, {}, { "X-Log-Position": "3.1" }),
      json(200, {}),
    ]);
    api.setSession({ token: "t", user_id: "u", username: "x", role: "user", roles: ["user"] });
    await api.post("/api/playlists", { name: "a" });
    await api.get("/api/playlists/p1");
    expect(header(calls[1].init, "X-Log-Position")).toBe("2.17");
    await api.put("/api/songs/s1/like");
    await api.get("/api/songs");
    expect(header(calls[3].init, "X-Log-Position")).toBe("2.17");
    await api.delete("/api/songs/s1/like");
    await api.get("/api/songs");
    expect(header(calls[5].init, "X-Log-Position")).toBe("3.1");
    expect(storage.map.get("dspot.logPosition")).toBe("3.1");
  });

  it("forgets a log position the cluster never reaches and asks again without it", async () => {
    const { api, calls, storage } = client([
      json(503, {
        title: "Service Unavailable",
        status: 503,
        detail: "this replica has not reached log position 9.99 yet",
      }),
      json(200, { items: [] }),
    ]);
    api.notePosition("9.99"); // e.g. remembered from a cluster that was since wiped
    await api.get("/api/songs");
    expect(calls.map((c) => header(c.init, "X-Log-Position"))).toEqual(["9.99", undefined]);
    expect(api.logPosition).toBeNull();
    expect(storage.map.has("dspot.logPosition")).toBe(false);
  });

  it("does not retry other 503s", async () => {
    const { api, calls } = client([
      json(503, { title: "Service Unavailable", status: 503, detail: "no node is available" }),
    ]);
    api.notePosition("1.1");
    await expect(api.get("/api/songs")).rejects.toThrow("no node is available");
    expect(calls).toHaveLength(1);
    expect(api.logPosition).toBe("1.1");
  });

  it("orders log positions by epoch, then sequence", () => {
    expect(laterPosition("2.17", "2.9")).toBe("2.17");
    expect(laterPosition("2.17", "3.0")).toBe("3.0");
    expect(laterPosition(null, "1.1")).toBe("1.1");
    expect(laterPosition("1.1", "garbage")).toBe("1.1");
  });

  it("reports read-only (no quorum) and its end", async () => {
    const { api } = client([
      json(503, { title: "Service Unavailable", status: 503, detail: "read-only: no quorum" }),
      json(201, { id: "p" }, { "X-Log-Position": "1.2" }),
    ]);
    const events: ClientEvent[] = [];
    api.subscribe((e) => events.push(e));
    const err = (await api
      .post("/api/playlists", { name: "a" })
      .catch((e: unknown) => e)) as ApiError;
    expect(err.readOnly).toBe(true);
    expect(events).toEqual([{ kind: "readOnly", readOnly: true }]);
    await api.post("/api/playlists", { name: "a" });
    expect(events[1]).toEqual({ kind: "readOnly", readOnly: false });
  });

  it("forgets the session when the server no longer accepts the token", async () => {
    const { api } = client([
      json(401, { title: "Unauthorized", status: 401, detail: "token revoked" }),
    ]);
    api.setSession({ token: "old", user_id: "u", username: "x", role: "user", roles: ["user"] });
    await expect(api.get("/api/songs")).rejects.toThrow("token revoked");
    expect(api.session).toBeNull();
  });

  it("puts the token in media and event URLs", () => {
    const { api } = client([]);
    api.setSession({ token: "a b", user_id: "u", username: "x", role: "user", roles: ["user"] });
    expect(api.mediaUrl("s1", "stream")).toBe("/api/songs/s1/stream?token=a%20b");
    expect(api.eventsUrl({ protocol: "https:", host: "h:8443" })).toBe(
      "wss://h:8443/api/events?token=a%20b",
    );
  });

  it("uploads with progress, sending the file name and the log position", async () => {
    const sent: { method?: string; url?: string; headers: Record<string, string>; body?: unknown } =
      { headers: {} };
    class FakeXhr {
      status = 0;
      statusText = "";
      responseText = "";
      upload: { onprogress: ((e: ProgressEvent) => void) | null } = { onprogress: null };
      onload: (() => void) | null = null;
      onerror: (() => void) | null = null;
      onabort: (() => void) | null = null;
      open(method: string, url: string) {
        sent.method = method;
        sent.url = url;
      }
      setRequestHeader(k: string, v: string) {
        sent.headers[k] = v;
      }
      getResponseHeader(name: string) {
        return name.toLowerCase() === "x-log-position" ? "4.2" : null;
      }
      send(body: unknown) {
        sent.body = body;
        this.upload.onprogress?.({ loaded: 5, total: 10, lengthComputable: true } as ProgressEvent);
        this.upload.onprogress?.({
          loaded: 10,
          total: 10,
          lengthComputable: true,
        } as ProgressEvent);
        this.status = 201;
        this.responseText = JSON.stringify({ id: "s9", title: "Tone" });
        this.onload?.();
      }
      abort() {}
    }
    const api = new ApiClient({
      fetch: vi.fn(),
      storage: memoryStorage(),
      xhr: () => new FakeXhr() as unknown as XMLHttpRequest,
    });
    api.setSession({ token: "tk", user_id: "u", username: "x", role: "user", roles: ["user"] });
    api.notePosition("4.1");
    const progress: number[] = [];
    const file = new File([new Uint8Array(10)], "Blue Ñ.wav", { type: "audio/wav" });
    const r = await api.upload(file, (loaded) => progress.push(loaded)).promise;
    expect(r).toEqual({ status: 201, song: { id: "s9", title: "Tone" } });
    expect(progress).toEqual([5, 10]);
    expect(sent.method).toBe("POST");
    expect(sent.url).toBe("/api/songs?filename=Blue+%C3%91.wav");
    expect(sent.headers.Authorization).toBe("Bearer tk");
    expect(sent.headers["X-Log-Position"]).toBe("4.1");
    expect(sent.headers["Content-Type"]).toBe("audio/wav");
    expect(sent.body).toBe(file);
    expect(api.logPosition).toBe("4.2");
  });

  it("rejects a refused upload with the server's detail", async () => {
    class RefusingXhr {
      status = 415;
      statusText = "Unsupported Media Type";
      responseText = JSON.stringify({
        title: "Unsupported Media Type",
        status: 415,
        detail: "not a supported audio format",
      });
      upload = { onprogress: null };
      onload: (() => void) | null = null;
      open() {}
      setRequestHeader() {}
      getResponseHeader() {
        return null;
      }
      send() {
        this.onload?.();
      }
    }
    const api = new ApiClient({
      fetch: vi.fn(),
      storage: memoryStorage(),
      xhr: () => new RefusingXhr() as unknown as XMLHttpRequest,
    });
    const err = (await api
      .upload(new File(["x"], "notes.txt"), () => {})
      .promise.catch((e: unknown) => e)) as ApiError;
    expect(err.status).toBe(415);
    expect(err.detail).toBe("not a supported audio format");
  });
});
